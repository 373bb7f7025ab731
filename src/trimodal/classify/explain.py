"""Why the fused classifier decided: Grad-CAM over the image and the words that moved it.

Grad-CAM (the same relevance as the VQA harness, :mod:`trimodal.eval.attention`) weights the
image encoder's output tokens by the gradient of the predicted class's logit. Words are scored
by their Shapley values for the predicted class's probability, sampled over word orders
(:func:`word_influence`; positive: the word supported the decision).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from trimodal.classify.run import ClassifierRun
from trimodal.classify.train import normalized_images
from trimodal.data.tensors import tokenized
from trimodal.eval.attention import grad_cam_weights, upsample_grid
from trimodal.modules.encoders.base import EncoderOutput
from trimodal.modules.layers import TokenSequence


@dataclass(frozen=True)
class Explanation:
    """One row's decision and its evidence.

    Attributes:
        predicted: the predicted class (multi-label: the most probable class).
        probability: its calibrated probability.
        heat: Grad-CAM ``[S, S]`` in [0, 1] over the image.
        words: ``(word, influence)`` for every word, most supporting first.
    """

    predicted: str
    probability: float
    heat: torch.Tensor
    words: list[tuple[str, float]]


def explain(run: ClassifierRun, pixels: torch.Tensor, text: str) -> Explanation:
    """Explain the fused model's decision on one row: pixels uint8 ``[3, S, S]`` and its text."""
    model = run.models["fused"]
    model.eval()
    temperature = run.temperatures["fused"]
    images = normalized_images(pixels.unsqueeze(0), run.device)
    ids, mask = tokenized(run.tokenizer, [text], run.max_length)
    ids, mask = ids.to(run.device), mask.to(run.device)
    with torch.enable_grad():
        encoded = model.image_encoder(images)
        tokens = encoded.tokens.detach().requires_grad_(True)  # (1, T, D)
        inputs = {
            "image": EncoderOutput(tokens, encoded.mask, encoded.pooled).sequence(),
            "text": model.text_encoder(ids, mask).sequence(),
        }
        logits = model.classify(inputs)[0] / temperature  # (C,)
        predicted = int(logits.argmax())
        (gradients,) = torch.autograd.grad(logits[predicted], tokens)
    heat = upsample_grid(grad_cam_weights(tokens[0].detach(), gradients[0]), pixels.shape[-1])
    probability = float(run.labels.probabilities(logits.detach().unsqueeze(0))[0, predicted])
    return Explanation(
        run.labels.classes[predicted],
        probability,
        heat.cpu(),
        word_influence(run, images, text, predicted),
    )


SHAPLEY_PERMUTATIONS = 24


def word_influence(
    run: ClassifierRun,
    images: torch.Tensor,
    text: str,
    target: int,
    permutations: int = SHAPLEY_PERMUTATIONS,
    seed: int = 0,
) -> list[tuple[str, float]]:
    """``(word, Shapley value)`` per whitespace-separated word, most supporting first.

    A word's value is its mean marginal effect on class ``target``'s calibrated probability
    when the words are added one by one, in random orders, to an empty text (the image
    fixed): permutation-sampled Shapley values (Strumbelj and Kononenko 2014), ``permutations``
    orders with their reverses (antithetic pairs), seeded. They add up exactly to
    ``p(text) - p(no text)``, and words that say the same thing share the credit; leaving one
    word out at a time finds nothing when a report repeats itself. ``images`` is the row's
    normalized ``[1, 3, S, S]`` image.
    """
    words = text.split()
    if not words:
        return []
    orders = permutation_pairs(len(words), permutations, seed)  # (P, W)
    texts = [
        " ".join(words[j] for j in sorted(order[:k].tolist()))
        for order in orders
        for k in range(len(words) + 1)
    ]
    probabilities = _class_probabilities(run, images, texts, target)
    steps = probabilities.view(len(orders), len(words) + 1).diff(dim=1)  # (P, W)
    values = torch.zeros(len(words), dtype=torch.float64)
    values.index_add_(0, orders.reshape(-1), steps.reshape(-1).double())
    values /= len(orders)
    return sorted(zip(words, values.tolist(), strict=True), key=lambda pair: -pair[1])


def permutation_pairs(count: int, pairs: int, seed: int) -> torch.Tensor:
    """``[2 * pairs, count]``: ``pairs`` seeded random orders of ``range(count)`` and their
    reverses."""
    generator = torch.Generator().manual_seed(seed)
    forward = torch.stack([torch.randperm(count, generator=generator) for _ in range(pairs)])
    return torch.cat([forward, forward.flip(1)])


def _class_probabilities(
    run: ClassifierRun, images: torch.Tensor, texts: list[str], target: int, batch: int = 256
) -> torch.Tensor:
    """Calibrated ``p(target)`` ``[len(texts)]`` of the fused model for one image and each text
    (an empty text reads as no text tokens at all)."""
    model = run.models["fused"]
    outputs = []
    with torch.no_grad():
        image = model.image_encoder(images).sequence()  # encoded once for every text
        for start in range(0, len(texts), batch):
            chunk = texts[start : start + batch]
            ids, mask = tokenized(run.tokenizer, chunk, run.max_length)
            rows = len(chunk)
            logits = model.classify(
                {
                    "image": TokenSequence(
                        image.tokens.expand(rows, -1, -1), image.mask.expand(rows, -1)
                    ),
                    "text": model.text_encoder(ids.to(run.device), mask.to(run.device)).sequence(),
                }
            )
            scaled = logits.float().cpu() / run.temperatures["fused"]
            outputs.append(run.labels.probabilities(scaled)[:, target])
    return torch.cat(outputs)
