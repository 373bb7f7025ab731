"""Classes, targets and balancing weights, against scikit-learn's "balanced" weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.utils.class_weight import compute_class_weight

from trimodal.classify.labels import LabelSpace


def test_multi_class_targets_and_balanced_weights() -> None:
    rows = [("b",), ("a",), ("b",), ("c",), ("b",), ("a",)]
    space = LabelSpace.from_rows(rows, multi_label=False)
    assert space.classes == ("a", "b", "c")
    targets = space.targets(rows, [f"f:{i}" for i in range(len(rows))])
    assert targets.tolist() == [1, 0, 1, 2, 1, 0]
    expected = compute_class_weight("balanced", classes=np.arange(3), y=targets.numpy())
    assert torch.allclose(space.loss_weights(targets), torch.tensor(expected, dtype=torch.float32))
    with pytest.raises(ValueError, match=r"f:1: label 'z' is not one of the model's classes"):
        space.targets([("a",), ("z",)], ["f:0", "f:1"])


def test_multi_label_targets_and_pos_weight() -> None:
    rows = [("x",), ("x", "y"), (), ("x",)]
    space = LabelSpace.from_rows(rows, multi_label=True)
    targets = space.targets(rows, ["r"] * 4)
    assert targets.tolist() == [[1, 0], [1, 1], [0, 0], [1, 0]]
    # x: 3 positives, 1 negative -> 1/3; y: 1 positive, 3 negatives -> 3.
    assert torch.allclose(space.loss_weights(targets), torch.tensor([1 / 3, 3.0]))
    everywhere = torch.ones(3, 2)
    assert space.loss_weights(everywhere).tolist() == [1.0, 1.0]


def test_decisions_and_too_few_classes() -> None:
    space = LabelSpace(("a", "b", "c"), multi_label=False)
    assert space.decide(torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]])) == [("b",), ("a",)]
    multi = LabelSpace(("a", "b"), multi_label=True)
    assert multi.decide(torch.tensor([[0.9, 0.6], [0.1, 0.4]])) == [("a", "b"), ()]
    with pytest.raises(ValueError, match="needs at least 2"):
        LabelSpace.from_rows([("only",)] * 3, multi_label=False)
