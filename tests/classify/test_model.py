"""The classifier from the family's parts: shapes per variant, refusals, config round trip."""

from __future__ import annotations

import pytest
import torch

from trimodal.classify.model import ClassifierConfig, ImageTextClassifier
from trimodal.config import from_dict, to_dict


def _config(modalities: list[str], fusion: str = "concat") -> ClassifierConfig:
    return ClassifierConfig(
        classes=["a", "b", "c"],
        multi_label=False,
        vocab_size=50,
        modalities=modalities,
        image_size=32,
        dim=32,
        fusion=fusion,
    )


@pytest.mark.parametrize("modalities", [["image", "text"], ["image"], ["text"]])
def test_each_variant_reads_only_its_inputs(modalities: list[str]) -> None:
    torch.manual_seed(0)
    model = ImageTextClassifier(_config(modalities)).eval()
    images, ids = torch.randn(4, 3, 32, 32), torch.randint(0, 50, (4, 7))
    mask = torch.ones(4, 7, dtype=torch.bool)
    mask[0, 3:] = False
    logits = model(images, ids, mask)
    assert logits.shape == (4, 3)
    # An input the variant does not read changes nothing.
    if "image" not in modalities:
        assert torch.equal(model(torch.zeros_like(images), ids, mask), logits)
    if "text" not in modalities:
        assert torch.equal(model(images, torch.zeros_like(ids), mask), logits)
    # Padding does not leak: the padded tail of row 0 can hold anything.
    if "text" in modalities:
        changed = ids.clone()
        changed[0, 3:] = 1
        assert torch.allclose(model(images, changed, mask)[0], logits[0], atol=1e-5)


def test_missing_inputs_and_bad_configs_are_refused() -> None:
    model = ImageTextClassifier(_config(["image", "text"]))
    with pytest.raises(ValueError, match="reads text"):
        model(torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match="reads images"):
        model(None, torch.zeros(1, 2, dtype=torch.long), torch.ones(1, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="modalities"):
        _config(["audio"])
    with pytest.raises(ValueError, match="fusion 'nope'"):
        _config(["image"], fusion="nope")


def test_config_round_trip_and_other_fusions() -> None:
    config = _config(["image", "text"], fusion="gated")
    again = from_dict(ClassifierConfig, to_dict(config))
    assert again == config
    model = ImageTextClassifier(again)
    out = model(
        torch.randn(2, 3, 32, 32), torch.randint(0, 50, (2, 5)), torch.ones(2, 5, dtype=torch.bool)
    )
    assert out.shape == (2, 3)
