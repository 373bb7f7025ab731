"""The real-photo check of the pretrained towers: photos that ship with scikit-image and
scikit-learn, labelled by hand in ``real_photos.json`` beside this module (label and caption per photo).

``python -m trimodal.towers.photos`` prints zero-shot top-1 among the labels and text->image R@1
of the captions for ConSE (EfficientNet-Lite0 + all-MiniLM-L6-v2, no training).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

PHOTOS_FILE = Path(__file__).resolve().parent / "real_photos.json"


@dataclass(frozen=True)
class Photo:
    """One labelled real photo."""

    source: str
    label: str
    caption: str
    image: Image.Image


def _image(source: str) -> Image.Image:
    """``skimage:NAME`` (a scikit-image sample) or ``sklearn:FILE`` (a scikit-learn one)."""
    kind, _, name = source.partition(":")
    if kind == "skimage":
        import skimage.data

        array = getattr(skimage.data, name)()
        array = array[0] if isinstance(array, tuple) else array  # stereo pairs: the left image
        if array.dtype == bool:
            array = np.where(array, 0, 255).astype(np.uint8)  # a silhouette: black on white
        return Image.fromarray(array).convert("RGB")
    if kind == "sklearn":
        from sklearn.datasets import load_sample_image

        return Image.fromarray(load_sample_image(name)).convert("RGB")
    raise ValueError(f"{PHOTOS_FILE}: unknown photo source {source!r} (skimage:... or sklearn:...)")


def load_photos(path: Path = PHOTOS_FILE) -> list[Photo]:
    """The labelled photos of ``path``."""
    entries = json.loads(path.read_text())["photos"]
    return [Photo(e["source"], e["label"], e["caption"], _image(e["source"])) for e in entries]


def evaluate_conse(photos: list[Photo]) -> dict[str, float]:
    """Zero-shot top-1 among the photos' labels and caption->photo R@1, with ConSE."""
    from trimodal.towers.conse import ConSE
    from trimodal.towers.efficientnet import (
        EfficientNetLite0,
        imagenet_class_names,
        load_efficientnet_lite0,
    )
    from trimodal.towers.minilm import MiniLMTower

    conse = ConSE(load_efficientnet_lite0(), MiniLMTower.load(), imagenet_class_names())
    images = torch.stack([EfficientNetLite0.preprocess(p.image) for p in photos])
    labels = sorted({p.label for p in photos})
    predicted = conse.classify(images, [f"a photo of a {label}" for label in labels])
    truth = torch.tensor([labels.index(p.label) for p in photos])
    ranking = conse.search([p.caption for p in photos], images)
    return {
        "photos": float(len(photos)),
        "labels": float(len(labels)),
        "zero-shot top-1": float((predicted == truth).float().mean()),
        "caption->photo R@1": float((ranking[:, 0] == torch.arange(len(photos))).float().mean()),
    }


if __name__ == "__main__":
    for name, value in evaluate_conse(load_photos()).items():
        print(f"{name:22s} {value:.3f}")
