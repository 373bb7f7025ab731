"""Zero-shot image classification and text->image search from an ImageNet classifier and a
sentence encoder, with no image-text training (ConSE, Norouzi et al. 2014).

No PyPI package ships an image-text model (docs/towers.md), so the bridge is the classifier's
1000 class names: an image's embedding is the average of the sentence embeddings of its ``top``
most probable ImageNet classes, weighted by their probabilities; a label or a query is embedded
by the same sentence encoder; cosine similarity ranks them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from trimodal.towers.efficientnet import EfficientNetLite0
from trimodal.towers.minilm import MiniLMTower


@dataclass
class ConSE:
    """An ImageNet classifier and a text tower sharing the text tower's space."""

    classifier: EfficientNetLite0
    text: MiniLMTower
    class_names: Sequence[str]
    top: int = 10
    class_embeddings: torch.Tensor = field(init=False, repr=False)
    """``[1000, E]`` unit embeddings of the class names, computed once."""

    def __post_init__(self) -> None:
        self.class_embeddings = self.text.embed(list(self.class_names))

    @torch.no_grad()
    def image_embeddings(self, images: torch.Tensor) -> torch.Tensor:
        """Preprocessed images ``[N, 3, 224, 224]`` -> unit embeddings ``[N, E]``."""
        probabilities = self.classifier(images).softmax(dim=-1)  # (N, 1000)
        weights, classes = probabilities.topk(self.top, dim=-1)  # (N, top)
        mixed = (weights.unsqueeze(-1) * self.class_embeddings[classes]).sum(dim=1)
        return F.normalize(mixed, dim=-1)

    def classify(self, images: torch.Tensor, labels: Sequence[str]) -> torch.Tensor:
        """Index into ``labels`` of each image's best label ``[N]``."""
        scores = self.image_embeddings(images) @ self.text.embed(list(labels)).T  # (N, L)
        return scores.argmax(dim=-1)

    def search(self, queries: Sequence[str], images: torch.Tensor) -> torch.Tensor:
        """Gallery indices of ``images`` ranked for each query ``[Q, N]`` (best first)."""
        scores = self.text.embed(list(queries)) @ self.image_embeddings(images).T  # (Q, N)
        return scores.argsort(dim=-1, descending=True)
