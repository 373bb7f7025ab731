"""Zero-shot classification by prompts against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from trimodal.eval.zero_shot import (
    class_embeddings,
    multilabel_hit_rate,
    scene_classes,
    world_prompts,
    world_zero_shot,
    zero_shot_predict,
)


def test_class_embedding_is_normalized_mean_of_normalized_prompts() -> None:
    table = {
        "a": torch.tensor([3.0, 0.0]),
        "b": torch.tensor([0.0, 2.0]),
        "c": torch.tensor([1.0, 1.0]),
    }

    def embed(texts: list[str]) -> torch.Tensor:
        return torch.stack([table[t] for t in texts])

    classes = class_embeddings(embed, [["a", "b"], ["c"]])
    # mean of (1, 0) and (0, 1) is (0.5, 0.5) -> normalized (1/sqrt2, 1/sqrt2); c -> the same.
    expected = torch.full((2, 2), 1 / math.sqrt(2))
    assert torch.allclose(classes, expected)
    with pytest.raises(ValueError, match="at least one prompt"):
        class_embeddings(embed, [["a"], []])


def test_predict_and_multilabel_hit_rate() -> None:
    classes = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    images = torch.tensor([[2.0, 1.0], [0.1, 5.0], [1.0, 0.9]])
    predicted = zero_shot_predict(images, classes)
    assert predicted.tolist() == [0, 1, 0]
    present = torch.tensor([[True, False], [True, False], [True, True]])
    assert multilabel_hit_rate(predicted, present) == pytest.approx(2 / 3)
    assert math.isnan(multilabel_hit_rate(predicted[:0], present[:0]))


def test_world_prompts_and_scene_classes() -> None:
    tasks = world_prompts(["red", "blue"], ["star"], ["small", "large"])
    names, prompts = tasks["color"]
    assert names == ["red", "blue"]
    assert prompts[0] == ["a photo of a red star", "a small red star", "a large red star"]
    assert tasks["color_shape"][0] == ["red star", "blue star"]
    scene = {"objects": [{"color": "red", "shape": "star"}, {"color": "blue", "shape": "circle"}]}
    assert scene_classes(scene, "color") == {"red", "blue"}
    assert scene_classes(scene, "color_shape") == {"red star", "blue circle"}
    assert scene_classes(None, "shape") == set()


def test_world_zero_shot_with_an_oracle_colour_embedder() -> None:
    colors, shapes = ["red", "blue"], ["star", "circle"]
    attributes = [f"color:{c}" for c in colors] + [f"shape:{s}" for s in shapes] + ["size:small"]

    def embed(texts: list[str]) -> torch.Tensor:
        # Knows colours perfectly, and thinks everything is a star.
        return torch.stack(
            [torch.tensor([float("red" in t), float("blue" in t), 1.0]) for t in texts]
        )

    scenes = [
        {"objects": [{"color": "red", "shape": "circle"}]},
        {"objects": [{"color": "blue", "shape": "star"}]},
        {"objects": [{"color": "blue", "shape": "circle"}, {"color": "red", "shape": "star"}]},
    ]
    images = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0], [0.0, 1.0, 1.0]])
    results = world_zero_shot(embed, images, scenes, attributes)
    assert results["color"]["accuracy"] == 1.0
    assert results["color"]["single_object_accuracy"] == 1.0
    assert results["color"]["chance_single_object"] == 0.5
    # Shape prompts embed identically, so argmax picks class 0 ("star"): right for scenes 1, 2.
    assert results["shape"]["accuracy"] == pytest.approx(2 / 3)
    assert results["shape"]["single_object_accuracy"] == pytest.approx(1 / 2)
    assert results["color_shape"]["classes"] == 4
