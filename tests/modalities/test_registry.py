"""The modality registry, and one contract test run over every registered modality."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trimodal.config import load_config
from trimodal.modalities import Modality, get_modality, register, registered_modalities
from trimodal.models.checkpoint import Vocabulary
from trimodal.models.trimodal import TriModalModel

ROOT = Path(__file__).resolve().parents[2]
VOCAB = 40


def _model() -> TriModalModel:
    torch.manual_seed(0)
    overrides = ["model.video.depth=1", "model.video.heads=2"]
    config = load_config(ROOT / "configs" / "tiny.yaml", overrides)
    return TriModalModel(config, VOCAB, Vocabulary(["yes", "no"], ["color:red"])).eval()


def test_registration_order_is_build_order() -> None:
    names = [modality.name for modality in registered_modalities()]
    assert names == ["text", "image", "audio", "video"]
    assert list(_model().encoders) == names


def test_a_recipe_builds_only_the_encoders_it_enables() -> None:
    """``model.video.depth`` 0 (the default): no video encoder, and no video parameters."""
    torch.manual_seed(0)
    config = load_config(ROOT / "configs" / "tiny.yaml")
    model = TriModalModel(config, VOCAB, Vocabulary(["yes", "no"], ["color:red"]))
    assert list(model.encoders) == ["text", "image", "audio"]
    assert not any(name.startswith("encoders.video.") for name in model.state_dict())


def test_unknown_and_duplicate_modalities_are_errors() -> None:
    with pytest.raises(KeyError, match=r"unknown modality 'smell' \(registered: text, image"):
        get_modality("smell")
    with pytest.raises(ValueError, match="'image' is already registered"):
        register(get_modality("image"))


@pytest.mark.parametrize("modality", registered_modalities(), ids=lambda m: m.name)
def test_every_modality_meets_the_encoder_contract(modality: Modality) -> None:
    """tokens [B, T, D], mask [B, T] with a real token per row, pooled [B, E]; rows are
    independent of each other; gradients reach the encoder."""
    model = _model()
    config = model.config
    torch.manual_seed(1)
    inputs = modality.example_inputs(config, 3, VOCAB)
    out = model.encode(modality.name, *inputs)
    assert out.tokens.shape[0] == 3 and out.tokens.shape[2] == config.model.dim
    assert out.mask.shape == out.tokens.shape[:2] and bool(out.mask.any(1).all())
    assert out.pooled.shape == (3, config.model.embed_dim)
    alone = model.encode(modality.name, *(x[1:2] for x in inputs))
    torch.testing.assert_close(alone.pooled, out.pooled[1:2], atol=1e-5, rtol=1e-4)
    model.train()
    model.encode(modality.name, *inputs).pooled.sum().backward()
    grads = [p.grad for p in model.encoders[modality.name].parameters() if p.requires_grad]
    assert any(g is not None and bool(g.abs().sum() > 0) for g in grads)


LEGACY = [modality for modality in registered_modalities() if modality.legacy_prefix]


def test_checkpoints_from_before_the_registry_load() -> None:
    """Weights saved under ``image_encoder.`` (and text, audio) load under ``encoders.image.``;
    a modality registered after the registry (video) has no old name."""
    assert [modality.name for modality in LEGACY] == ["text", "image", "audio"]
    model = _model()
    legacy = {}
    for key, value in model.state_dict().items():
        for modality in LEGACY:
            key = key.replace(f"encoders.{modality.name}.", modality.legacy_prefix)
        legacy[key] = value.clone() + 1.0
    assert any(key.startswith("image_encoder.") for key in legacy)
    fresh = _model()
    fresh.load_state_dict(legacy)
    for key, value in fresh.state_dict().items():
        for modality in LEGACY:
            key = key.replace(f"encoders.{modality.name}.", modality.legacy_prefix)
        torch.testing.assert_close(value, legacy[key])
