"""Zero-shot classification by prompts, CLIP style.

Each class is described by one or more prompts ("a photo of a red star", "a red star"); a class
embedding is the renormalized mean of its prompts' normalized text embeddings (prompt
ensembling), and an image is assigned the class whose embedding is most similar.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

TextEmbedder = Callable[[list[str]], torch.Tensor]


def class_embeddings(embed_texts: TextEmbedder, prompts: Sequence[Sequence[str]]) -> torch.Tensor:
    """``[C, E]`` normalized class embeddings from ``C`` lists of prompts.

    Args:
        embed_texts: maps ``P`` strings to ``[P, E]`` embeddings (normalized or not).
        prompts: for each class, its prompts (at least one).
    """
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("every class needs at least one prompt")
    flat = [text for group in prompts for text in group]
    embedded = F.normalize(embed_texts(flat), dim=-1)  # (P, E)
    means, start = [], 0
    for group in prompts:
        means.append(embedded[start : start + len(group)].mean(0))
        start += len(group)
    return F.normalize(torch.stack(means), dim=-1)


def zero_shot_predict(images: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Index of the most similar class ``[N]`` for image embeddings ``[N, E]``, classes ``[C, E]``."""
    return (F.normalize(images, dim=-1) @ classes.T).argmax(dim=1)


def multilabel_hit_rate(predicted: torch.Tensor, present: torch.Tensor) -> float:
    """Fraction of rows whose predicted class is among the present ones.

    Args:
        predicted: ``[N]`` class indices.
        present: ``[N, C]`` bool, the classes present in each image (a multi-object scene may
            show several colours; any of them is a correct answer).
    """
    if len(predicted) == 0:
        return float("nan")
    rows = torch.arange(len(predicted), device=predicted.device)
    return float(present.to(predicted.device)[rows, predicted].float().mean())


def attribute_values(attribute_names: Sequence[str], kind: str) -> list[str]:
    """Values of one attribute kind from ``kind:value`` names (``color:red`` -> ``red``)."""
    return [name.split(":", 1)[1] for name in attribute_names if name.startswith(f"{kind}:")]


def world_prompts(
    colors: Sequence[str], shapes: Sequence[str], sizes: Sequence[str]
) -> dict[str, tuple[list[str], list[list[str]]]]:
    """Class names and prompt ensembles for the world's colour, shape and colour+shape tasks.

    A colour class is described by every "a photo of a {size} {colour} {shape}" over shapes and
    sizes (the other attributes averaged out, as CLIP's prompt ensembles average templates).
    """

    def phrases(color: str, shape: str) -> list[str]:
        return [f"a photo of a {color} {shape}"] + [f"a {size} {color} {shape}" for size in sizes]

    return {
        "color": (
            list(colors),
            [[p for shape in shapes for p in phrases(color, shape)] for color in colors],
        ),
        "shape": (
            list(shapes),
            [[p for color in colors for p in phrases(color, shape)] for shape in shapes],
        ),
        "color_shape": (
            [f"{color} {shape}" for color in colors for shape in shapes],
            [phrases(color, shape) for color in colors for shape in shapes],
        ),
    }


def scene_classes(scene: dict[str, Any] | None, task: str) -> set[str]:
    """The classes of ``task`` present in a scene graph (``{"red star", ...}`` for color_shape)."""
    objects = (scene or {}).get("objects", [])
    if task == "color_shape":
        return {f"{o['color']} {o['shape']}" for o in objects}
    return {o[task] for o in objects}


def world_zero_shot(
    embed_texts: TextEmbedder,
    image_embeddings: torch.Tensor,
    scenes: Sequence[dict[str, Any] | None],
    attribute_names: Sequence[str],
) -> dict[str, Any]:
    """Zero-shot colour / shape / colour+shape classification of images ``[N, E]``.

    A prediction is correct when the predicted class is present in the scene; accuracy is
    reported over all scenes and over single-object scenes (where it is plain accuracy), with
    chance levels for comparison. Scored on the CPU (the scene lists live there; text
    embeddings come back there).
    """
    image_embeddings = image_embeddings.float().cpu()
    tasks = world_prompts(
        attribute_values(attribute_names, "color"),
        attribute_values(attribute_names, "shape"),
        attribute_values(attribute_names, "size"),
    )
    single = torch.tensor([len((s or {}).get("objects", [])) == 1 for s in scenes], device="cpu")
    results: dict[str, Any] = {}
    for task, (names, prompts) in tasks.items():
        if not names:
            continue
        predicted = zero_shot_predict(image_embeddings, class_embeddings(embed_texts, prompts))
        present = torch.tensor(
            [[name in scene_classes(scene, task) for name in names] for scene in scenes],
            device="cpu",
        ).reshape(len(scenes), len(names))
        results[task] = {
            "classes": len(names),
            "accuracy": multilabel_hit_rate(predicted, present),
            "single_object_accuracy": multilabel_hit_rate(predicted[single], present[single]),
            "chance_single_object": 1.0 / len(names),
        }
    return results
