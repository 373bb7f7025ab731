"""The object-head probe against a per-object loop over single images."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trimodal.data.tensors import attribute_groups, to_float_images
from trimodal.eval.objects import centre_cells, object_head_accuracy, trains_object_head
from trimodal.models.trimodal import TriModalModel
from trimodal.train.loop import prepare_data
from trimodal.world.generate import WorldSummary


def test_centre_cells_by_hand() -> None:
    boxes = torch.tensor([[[0.1, 0.9, 0.05], [0.5, 0.5, 0.2], [1.0, 0.0, 0.1]]])
    # (x=0.1, y=0.9) -> row 3, column 0; (0.5, 0.5) -> row 2, column 2; x=1.0 clamps to column 3.
    assert centre_cells(boxes, 4).tolist() == [[12, 10, 3]]


def test_object_head_accuracy_matches_a_per_object_loop(
    tiny_run: Path, tiny_world: tuple[Path, WorldSummary]
) -> None:
    model = TriModalModel.from_pretrained(tiny_run)
    assert trains_object_head(model)  # configs/tiny.yaml trains the objects task
    data = prepare_data(model.config, tiny_world[0], model.tokenizer)
    assert data.vocabulary == model.vocabulary
    tensors = data.tensors
    rows = tensors.rows_in("test", "val")
    groups = attribute_groups(model.vocabulary.attributes)
    hits = {"color": 0, "shape": 0, "size": 0}
    total = 0
    with torch.no_grad():
        result = object_head_accuracy(model, tensors, rows, batch=5)
        for row in rows.tolist():
            image = model.encode("image", to_float_images(tensors.images[row : row + 1]))
            logits = model.object_logits(image)
            grid = round(logits[0].shape[1] ** 0.5)
            for k in range(tensors.object_labels.shape[1]):
                labels = tensors.object_labels[row, k].tolist()
                if labels[0] < 0:
                    continue
                x, y, _ = tensors.object_boxes[row, k].tolist()
                cell = min(int(y * grid), grid - 1) * grid + min(int(x * grid), grid - 1)
                total += 1
                for g, name in enumerate(("color", "shape", "size")):
                    predicted = int(logits[g][0, cell].argmax())
                    hits[name] += predicted == labels[g]
                    assert predicted <= len(groups[name])  # values plus "no object"
    assert result is not None and result["objects"] == total > 0
    for name, count in hits.items():
        assert result[name] == pytest.approx(count / total)
