"""A small real-photo manifest from scikit-image's bundled images, for ``trimodal eval``.

Every photo here ships inside the scikit-image wheel (``skimage/data/*.png|jpg``), so nothing is
downloaded: the loaders used were checked with an empty data cache and no network. Each photo
gets a caption and one or two questions with single-word answers, written by hand after looking
at the image. The rows follow the manifest format of docs/data.md, so the evaluation harness
treats them as it would any COCO- or VQA-converted manifest::

    python examples/skimage_manifest.py --out /tmp/skimage
    trimodal eval --checkpoint runs/default --manifest /tmp/skimage/manifest.jsonl \\
        --out /tmp/skimage_eval --no-robustness --examples 2

Splits: 14 photos are ``test`` (what is evaluated). Five textures and patterns are ``train``:
the harness evaluates none of them, but it estimates its blind question-prior baseline from the
``train`` split, so they give that baseline data. They reuse the test questions' wording
("is there a person in this picture?"), which is what the prior keys on.
"""

from __future__ import annotations

import argparse
import io
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from trimodal.data.manifest import Manifest, load_manifest
from trimodal.io import atomic_write_bytes, write_jsonl_atomic

PERSON = "is there a person in this picture?"


@dataclass(frozen=True)
class Photo:
    """One bundled photo: its ``skimage.data`` loader, split, caption and questions."""

    name: str
    split: str
    caption: str
    questions: tuple[tuple[str, str, str], ...]
    """``(question, single-word answer, family)``."""


PHOTOS: tuple[Photo, ...] = (
    Photo(
        "astronaut",
        "test",
        "a smiling astronaut in an orange spacesuit in front of an american flag and a model of "
        "the space shuttle, her helmet in the lower right corner",
        ((PERSON, "yes", "exist"), ("what color is the spacesuit?", "orange", "color")),
    ),
    Photo(
        "camera",
        "test",
        "a black and white photo of a man in a dark coat filming with a camera on a tripod, "
        "standing on a grassy field with buildings far behind",
        ((PERSON, "yes", "exist"), ("what is the camera standing on?", "tripod", "object")),
    ),
    Photo(
        "chelsea",
        "test",
        "a close-up of the face of a tabby cat with green eyes and a pink nose",
        (("what animal is this?", "cat", "object"), (PERSON, "no", "exist")),
    ),
    Photo(
        "coffee",
        "test",
        "a cup of espresso on a red saucer with a small spoon, on a wooden table",
        (
            ("what color is the saucer?", "red", "color"),
            ("what drink is in the cup?", "coffee", "object"),
        ),
    ),
    Photo(
        "rocket",
        "test",
        "a white rocket on its launch pad at dusk between tall lattice towers, with bright lights "
        "along the ground",
        (("what color is the rocket?", "white", "color"), (PERSON, "no", "exist")),
    ),
    Photo(
        "stereo_motorcycle",
        "test",
        "a red motorcycle parked in a garage in front of metal shelves full of boxes",
        (
            ("what color is the motorcycle?", "red", "color"),
            ("how many wheels does it have?", "two", "count"),
        ),
    ),
    Photo(
        "horse",
        "test",
        "the black silhouette of a standing horse facing right on a white background",
        (
            ("what animal is this?", "horse", "object"),
            ("what color is the horse?", "black", "color"),
        ),
    ),
    Photo(
        "coins",
        "test",
        "a black and white photo of four rows of old coins on a dark background",
        (
            ("what are these objects?", "coins", "object"),
            ("how many rows of coins are there?", "four", "count"),
        ),
    ),
    Photo(
        "moon",
        "test",
        "a grey close-up of the surface of the moon with small craters and dark patches",
        (("is this the surface of the moon?", "yes", "other"), (PERSON, "no", "exist")),
    ),
    Photo(
        "hubble_deep_field",
        "test",
        "hundreds of distant galaxies and stars, small coloured points on a black sky",
        (("what color is the background?", "black", "color"), (PERSON, "no", "exist")),
    ),
    Photo(
        "page",
        "test",
        "a photo of a printed book page about region-based segmentation with a line of python code "
        "at the bottom",
        (("is there text in this picture?", "yes", "other"),),
    ),
    Photo(
        "text",
        "test",
        "handwritten mathematical formulas on lined paper, photographed at a slant",
        (("is this handwriting?", "yes", "other"), (PERSON, "no", "exist")),
    ),
    Photo(
        "clock",
        "test",
        "a round clock blurred by motion against a plain grey wall",
        (("is the picture sharp?", "no", "other"),),
    ),
    Photo(
        "retina",
        "test",
        "a photograph of the back of a human eye, orange-red with branching blood vessels and a "
        "bright optic disc on the left",
        (("what body part is this?", "eye", "object"),),
    ),
    Photo(
        "brick",
        "train",
        "a grey brick pavement seen at an angle, long bricks in staggered rows",
        ((PERSON, "no", "exist"), ("what color are the bricks?", "grey", "color")),
    ),
    Photo(
        "grass",
        "train",
        "a black and white close-up of grass with a few small leaves",
        ((PERSON, "no", "exist"),),
    ),
    Photo(
        "gravel",
        "train",
        "a close-up of small grey gravel stones",
        ((PERSON, "no", "exist"), ("what color are the stones?", "grey", "color")),
    ),
    Photo(
        "checkerboard",
        "train",
        "a black and white checkerboard of eight by eight squares",
        (
            ("what shape are the tiles?", "square", "shape"),
            ("how many squares are in each row?", "eight", "count"),
        ),
    ),
    Photo(
        "colorwheel",
        "train",
        "a colour wheel: a disc of every hue, white at the centre and dark at the rim, on black",
        (("what shape is it?", "circle", "shape"), (PERSON, "no", "exist")),
    ),
)


def load_photo(name: str) -> np.ndarray:
    """The array ``skimage.data.<name>()`` returns (the left view for ``stereo_motorcycle``)."""
    import skimage.data

    loaded = getattr(skimage.data, name)()
    return np.asarray(loaded[0] if name == "stereo_motorcycle" else loaded)


def to_rgb(array: np.ndarray) -> Image.Image:
    """Any skimage image (bool, float in [0, 1], grey, RGB, RGBA) as an 8-bit RGB image."""
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    elif np.issubdtype(array.dtype, np.floating):
        array = (np.clip(array, 0.0, 1.0) * 255).round().astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(array.astype(np.uint8))).convert("RGB")


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def build_manifest(out: str | Path, max_side: int = 512) -> Manifest:
    """Write ``out/images/<name>.png`` and ``out/manifest.jsonl``; return the validated manifest.

    Args:
        out: output folder (created if needed).
        max_side: longest image side in pixels; larger photos are shrunk (aspect kept).

    A photo whose loader fails (a future scikit-image that stops bundling it) is left out with
    a warning; the manifest is validated with :func:`load_manifest` (files decoded) before
    it is returned.
    """
    root = Path(out)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for photo in PHOTOS:
        try:
            array = load_photo(photo.name)
        except Exception as error:
            warnings.warn(f"skipping skimage.data.{photo.name}: {error}", stacklevel=2)
            continue
        image = to_rgb(array)
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        relative = f"images/{photo.name}.png"
        atomic_write_bytes(root / relative, _png_bytes(image))
        rows.append(
            {
                "id": f"skimage-{photo.name}",
                "split": photo.split,
                "image": relative,
                "text": photo.caption,
                "questions": [
                    {"question": question, "answer": answer, "family": family}
                    for question, answer, family in photo.questions
                ],
                "meta": {"source": f"skimage.data.{photo.name}"},
            }
        )
    if not rows:
        raise RuntimeError("no scikit-image photo could be loaded")
    path = root / "manifest.jsonl"
    write_jsonl_atomic(path, rows)
    return load_manifest(path)


def main(argv: Sequence[str] | None = None) -> int:
    """``python examples/skimage_manifest.py --out DIR [--max-side PX]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--max-side", type=int, default=512, help="longest image side (px)")
    args = parser.parse_args(argv)
    manifest = build_manifest(args.out, max_side=args.max_side)
    splits = {name: len(manifest.split(name)) for name in ("train", "test")}
    questions = sum(len(sample.questions) for sample in manifest.samples)
    print(
        f"wrote {manifest.path}: {len(manifest.samples)} photos "
        f"({splits['test']} test, {splits['train']} train), {questions} questions"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
