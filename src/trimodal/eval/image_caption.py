"""The standard image-caption retrieval protocol on a manifest (COCO 5k, Flickr30k 1k).

Rows are grouped by image file, so a manifest with one row per image and its ``captions``
(``trimodal convert coco`` / ``karpathy``) and one with a row per caption sharing an image give
the same gallery. Every caption of an image is a query (text->image) and a gallery item
(image->text); ties count against the query (:mod:`trimodal.eval.retrieval`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from trimodal.data.manifest import Sample
from trimodal.data.tensors import SceneTensors, to_float_images, tokenized
from trimodal.data.tokenizer import TextTokenizer
from trimodal.eval.retrieval import image_caption_retrieval
from trimodal.models.trimodal import TriModalModel


@dataclass(frozen=True)
class CaptionGallery:
    """Unique images and their captions.

    Attributes:
        image_rows: for each unique image, the first manifest row with a caption that shows it.
        captions: every distinct caption of every image, image by image.
        caption_image: ``[C]`` index into ``image_rows`` of each caption's image.
    """

    image_rows: list[int]
    captions: list[str]
    caption_image: torch.Tensor


def uses_image_caption_protocol(samples: Sequence[Sample]) -> bool:
    """Whether ``samples`` are a COCO / Flickr30k style set: some carry a ``captions`` list, or
    some image file is shown by more than one row (one row per caption)."""
    if any(sample.captions for sample in samples):
        return True
    images = [sample.image for sample in samples if sample.image is not None]
    return len(set(images)) < len(images)


def caption_gallery(samples: Sequence[Sample], rows: Sequence[int]) -> CaptionGallery:
    """Group ``rows`` of ``samples`` by image file, keeping every caption of each image.

    A row's captions are its ``captions`` list, or its ``text`` when it has none (one row per
    caption). Every caption counts, repeated ones too, as in the published protocol; only a
    second ``captions`` list for an image already listed (the same image on several rows) is
    left out. Rows without an image or without any caption take no part.
    """
    image_index: dict[Path, int] = {}
    image_rows: list[int] = []
    listed: set[int] = set()
    captions: list[str] = []
    owners: list[int] = []
    for row in rows:
        sample = samples[row]
        texts = sample.captions or ((sample.text,) if sample.text else ())
        if sample.image is None or not texts:
            continue
        if sample.image not in image_index:
            image_index[sample.image] = len(image_rows)
            image_rows.append(row)
        image = image_index[sample.image]
        if sample.captions:
            if image in listed:
                continue
            listed.add(image)
        captions += texts
        owners += [image] * len(texts)
    return CaptionGallery(
        image_rows, captions, torch.tensor(owners, dtype=torch.long, device="cpu")
    )


@torch.no_grad()
def image_caption_metrics(
    model: TriModalModel,
    tokenizer: TextTokenizer,
    tensors: SceneTensors,
    samples: Sequence[Sample],
    rows: Sequence[int],
    batch: int = 256,
) -> dict[str, Any] | None:
    """R@1/5/10 both ways, median ranks and RSUM under the standard protocol on ``rows``.

    Returns:
        :func:`~trimodal.eval.retrieval.image_caption_retrieval`'s dict, or ``None`` when the
        rows hold no image with a caption.
    """
    gallery = caption_gallery(samples, rows)
    if not gallery.image_rows:
        return None
    image_rows = torch.tensor(gallery.image_rows, dtype=torch.long, device=tensors.images.device)
    images = torch.cat(
        [
            model.encode("image", to_float_images(tensors.images[image_rows[i : i + batch]])).pooled
            for i in range(0, len(image_rows), batch)
        ]
    )  # (I, E)
    max_length = model.config.model.text.max_length
    captions = []
    for start in range(0, len(gallery.captions), batch):
        ids, mask = tokenized(tokenizer, gallery.captions[start : start + batch], max_length)
        captions.append(model.encode_padded_text(ids, mask).pooled)  # (B, E)
    return image_caption_retrieval(  # scored on the host, with the gallery's owner list
        F.normalize(images.float(), dim=-1).cpu(),
        F.normalize(torch.cat(captions).float(), dim=-1).cpu(),
        gallery.caption_image,
    )
