"""Why the fused classifier decided: Grad-CAM over the image and the words that moved it.

Grad-CAM (the same relevance as the VQA harness, :mod:`trimodal.eval.attention`) weights the
image encoder's output tokens by the gradient of the predicted class's logit. Words are scored
by occlusion: the predicted class's probability with the whole text minus its probability with
that one word removed (positive: the word supported the decision).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from trimodal.classify.run import ClassifierRun
from trimodal.classify.train import normalized_images
from trimodal.data.tensors import tokenized
from trimodal.eval.attention import grad_cam_weights, upsample_grid
from trimodal.modules.encoders.base import EncoderOutput


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
        word_influence(run, images, text, predicted, probability),
    )


def word_influence(
    run: ClassifierRun, images: torch.Tensor, text: str, target: int, probability: float
) -> list[tuple[str, float]]:
    """``(word, p(text) - p(text without the word))`` for class ``target``, most supporting
    first; ``images`` is the normalized ``[1, 3, S, S]`` image of the row."""
    words = text.split()
    if len(words) < 2:
        return [(word, probability) for word in words]
    model = run.models["fused"]
    variants = [" ".join(words[:i] + words[i + 1 :]) for i in range(len(words))]
    ids, mask = tokenized(run.tokenizer, variants, run.max_length)
    with torch.no_grad():
        logits = model(
            images.expand(len(variants), -1, -1, -1), ids.to(run.device), mask.to(run.device)
        )
    without = run.labels.probabilities(logits.float().cpu() / run.temperatures["fused"])[:, target]
    influence = [(word, probability - float(p)) for word, p in zip(words, without, strict=True)]
    return sorted(influence, key=lambda pair: -pair[1])
