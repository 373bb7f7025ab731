"""Judging generated images with the checkpoint's own trained towers.

For test scenes of the world, one image is generated from each caption, then:

- **VQA on the generated image**: the checkpoint answers the scene's own questions about it
  (typed); attribute accuracy is over the colour, shape and size families, and every family is
  reported. The same questions on the real images and on the tokenizer's reconstructions of
  them give the ceiling and the tokenizer's share of the loss.
- **Retrieval**: each generated image is a query against the real test images (the
  checkpoint's image embeddings); a hit is a real image whose caption is the same text.
- **Frechet distance** between the generated and the real test images' embeddings (the FID
  formula in the checkpoint's 128-d space), beside the same distance for real training images
  (the floor) and for reconstructions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from scipy import linalg

from trimodal.data.manifest import Sample, load_manifest
from trimodal.eval.vqa import normalize_answer
from trimodal.imagine.painter import to_pixels, to_unit
from trimodal.imagine.run import ImagineRun, load_pixels
from trimodal.inference import Model, Question

ATTRIBUTE_FAMILIES = ("color", "shape", "size")
BATCH = 128


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """``|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` of two samples ``[N, E]``."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root, _ = linalg.sqrtm(cov_a @ cov_b, disp=False)
    root = np.real(root)
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2 * root))


def vqa_scores(
    model: Model, images: Sequence[Image.Image], samples: Sequence[Sample]
) -> dict[str, float]:
    """Accuracy per family and over the attribute families, of the samples' questions asked
    about ``images`` (image ``i`` stands for sample ``i``)."""
    questions, answers, families = [], [], []
    for image, sample in zip(images, samples, strict=True):
        for question in sample.questions:
            questions.append(Question(image=image, text=question.question))
            answers.append(normalize_answer(question.answer))
            families.append(question.family or "other")
    predicted = []
    for start in range(0, len(questions), BATCH):
        batch = model.ask_batch(questions[start : start + BATCH])
        predicted += [normalize_answer(a[0][0]) for a in batch]
    correct = np.array([p == a for p, a in zip(predicted, answers, strict=True)])
    family_array = np.array(families)
    scores = {f"vqa_{f}": float(correct[family_array == f].mean()) for f in sorted(set(families))}
    attribute = np.isin(family_array, ATTRIBUTE_FAMILIES)
    scores["attribute_accuracy"] = float(correct[attribute].mean())
    scores["vqa_all"] = float(correct.mean())
    return scores


def retrieval_r1(queries: np.ndarray, real: np.ndarray, captions: Sequence[str]) -> float:
    """R@1 of query embeddings ``[N, E]`` against the real images' ``[N, E]`` (row ``i`` of
    both stands for caption ``i``); a hit shares the query's caption."""
    nearest = (queries @ real.T).argmax(1).tolist()
    return float(np.mean([captions[n] == captions[i] for i, n in enumerate(nearest)]))


def embeddings(model: Model, images: Sequence[Image.Image]) -> np.ndarray:
    """The checkpoint's (unit) image embeddings ``[N, E]``."""
    return (
        torch.cat([model.embed_images(images[s : s + BATCH]) for s in range(0, len(images), BATCH)])
        .numpy()
        .astype(np.float64)
    )


def _judged(
    model: Model,
    images: Sequence[Image.Image],
    samples: Sequence[Sample],
    real: np.ndarray,
    captions: Sequence[str],
) -> dict[str, float]:
    """VQA, R@1 against the real images and the Frechet distance to them, of one image set
    (embedded once)."""
    vectors = embeddings(model, images)
    return {
        **vqa_scores(model, images, samples),
        "r1_against_real": retrieval_r1(vectors, real, captions),
        "frechet": frechet_distance(vectors, real),
    }


def evaluate_imagine(
    run: ImagineRun,
    manifest: str,
    scenes: int = 300,
    seed: int = 0,
    temperature: float = 1.0,
    top_k: int = 0,
    guidance: float | None = None,
    steps: int | None = None,
    split: str = "test",
) -> dict[str, Any]:
    """Every figure on the first ``scenes`` scenes of ``split`` (see the module docstring; the
    ``val`` split is for choosing sampling settings without looking at the test scenes);
    ``guidance`` and ``steps`` None take the run's defaults. A method without a round trip
    (diffusion) has no ``reconstructed`` figures."""
    loaded = load_manifest(manifest)
    test = [s for s in loaded.split(split) if s.image is not None and s.text][:scenes]
    train = [s for s in loaded.split("train") if s.image is not None][: len(test)]
    if not test:
        raise ValueError(f"{manifest}: no {split} scenes with an image and a caption")
    captions = [s.text or "" for s in test]
    if guidance is None:
        guidance = run.settings.guidance
    generated = run.imagine(captions, seed, temperature, top_k, guidance, steps)
    real_pixels = to_unit(load_pixels(test))
    real = to_pixels(real_pixels)
    round_trip = run.painter.reconstruct(real_pixels.to(run.checkpoint.device))
    train_images = to_pixels(to_unit(load_pixels(train)))
    model = run.checkpoint
    real_embeddings = embeddings(model, real)
    figures: dict[str, Any] = {
        "method": run.settings.method,
        "split": split,
        "scenes": len(test),
        "seed": seed,
        "temperature": temperature,
        "top_k": top_k,
        "guidance": guidance,
        "steps": steps,
        "generated": _judged(model, generated, test, real_embeddings, captions),
    }
    if round_trip is not None:
        reconstructed = to_pixels(round_trip)
        figures["reconstructed"] = _judged(model, reconstructed, test, real_embeddings, captions)
    return {
        **figures,
        "real": {
            **vqa_scores(model, real, test),
            "frechet_train_vs_test": frechet_distance(
                embeddings(model, train_images), real_embeddings
            ),
        },
    }
