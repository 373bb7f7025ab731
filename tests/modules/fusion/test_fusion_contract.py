"""The fusion contract, checked for every registered fusion and every modality subset."""

from __future__ import annotations

from itertools import combinations

import pytest
import torch

from trimodal.modules.fusion import FUSIONS, Fusion, build_fusion
from trimodal.modules.layers import TokenSequence

NAMES = ["concat", "cross_attention", "bilinear", "tensor", "low_rank_tensor", "gated"]
MODALITIES = ("audio", "image", "text", "video")
LENGTHS = {"audio": 5, "image": 7, "text": 3, "video": 6}
DIM, BATCH = 16, 4
SUBSETS = [c for size in range(1, len(MODALITIES) + 1) for c in combinations(MODALITIES, size)]
PROPER_SUBSETS = [s for s in SUBSETS if len(s) < len(MODALITIES)]
TOKEN_PRESERVING = {"concat", "gated"}
POOLING = {"bilinear", "tensor", "low_rank_tensor"}

Inputs = dict[str, TokenSequence]


def subset_id(subset: tuple[str, ...]) -> str:
    """Readable pytest id for a subset."""
    return "+".join(subset)


def random_mask(length: int, generator: torch.Generator) -> torch.Tensor:
    """``[B, T]`` bool mask: >= 1 real token per row, and row 0 has exactly one (so padding)."""
    real = torch.randint(0, length, (BATCH,), generator=generator)
    mask = torch.rand(BATCH, length, generator=generator) < 0.5
    mask[0] = False
    mask[torch.arange(BATCH), real] = True
    return mask


def make_inputs(seed: int, subset: tuple[str, ...] = MODALITIES) -> Inputs:
    """Random inputs for ``subset``; the same seed gives the same tensors per modality."""
    inputs = {}
    for index, name in enumerate(MODALITIES):
        generator = torch.Generator().manual_seed(seed * 10 + index)
        tokens = torch.randn(BATCH, LENGTHS[name], DIM, generator=generator)
        mask = random_mask(LENGTHS[name], generator)
        if name in subset:
            inputs[name] = TokenSequence(tokens, mask)
    return inputs


def make_fusion(name: str) -> Fusion:
    """A seeded fusion in eval mode."""
    torch.manual_seed(0)
    return build_fusion(name, DIM, MODALITIES).eval()


def expected_length(name: str, subset: tuple[str, ...]) -> int:
    """``T'`` the contract promises for ``name`` on ``subset``."""
    if name in TOKEN_PRESERVING:
        return sum(LENGTHS[m] for m in subset)
    if name == "cross_attention":
        return LENGTHS["text" if "text" in subset else subset[0]]
    return 1


def real_outputs(output: TokenSequence) -> torch.Tensor:
    """Output tokens at real positions: ``[N, D]``."""
    return output.tokens[output.mask]


@pytest.fixture(params=NAMES)
def name(request: pytest.FixtureRequest) -> str:
    """Each registered fusion name."""
    return str(request.param)


def test_registry_lists_every_name() -> None:
    assert sorted(FUSIONS) == sorted(NAMES)


def test_unknown_name_lists_known_names() -> None:
    with pytest.raises(ValueError, match="cross_attention"):
        build_fusion("nope", DIM, MODALITIES)


@pytest.mark.parametrize("subset", SUBSETS, ids=subset_id)
def test_output_shapes_and_mask(name: str, subset: tuple[str, ...]) -> None:
    inputs = make_inputs(1, subset)
    output = make_fusion(name)(inputs)
    length = expected_length(name, subset)
    assert output.tokens.shape == (BATCH, length, DIM)
    assert output.mask.shape == (BATCH, length)
    assert output.mask.dtype == torch.bool
    assert torch.isfinite(output.tokens).all()
    if name in TOKEN_PRESERVING:
        assert torch.equal(output.mask, torch.cat([inputs[m].mask for m in subset], dim=1))
    elif name == "cross_attention":
        query = "text" if "text" in subset else subset[0]
        assert torch.equal(output.mask, inputs[query].mask)
    else:
        assert output.mask.all()


@pytest.mark.parametrize("subset", SUBSETS, ids=subset_id)
def test_gradients_reach_present_inputs_and_parameters(name: str, subset: tuple[str, ...]) -> None:
    fusion = make_fusion(name)
    inputs = {
        m: TokenSequence(seq.tokens.requires_grad_(), seq.mask)
        for m, seq in make_inputs(2, subset).items()
    }
    outputs = real_outputs(fusion(inputs))
    # A random weighting of the features: a plain sum of LayerNorm-ed tokens has zero gradient
    # (each token's normalized features sum to zero), so only rounding noise would flow back.
    weights = torch.randn(outputs.shape[-1], generator=torch.Generator().manual_seed(0))
    (outputs * weights).sum().backward()
    for seq in inputs.values():
        assert seq.tokens.grad is not None
        assert torch.isfinite(seq.tokens.grad).all()
        assert seq.tokens.grad.abs().sum() > 0
    grads = {n: p.grad for n, p in fusion.named_parameters()}
    assert any(g is not None and g.abs().sum() > 0 for g in grads.values())
    if len(subset) == len(MODALITIES):
        # Only TensorFusion's heads for other subsets may stay unused.
        full_head = "heads." + "+".join(MODALITIES) + "."
        for param_name, grad in grads.items():
            if param_name.startswith("heads.") and not param_name.startswith(full_head):
                continue
            assert grad is not None and grad.abs().sum() > 0, param_name


@pytest.mark.parametrize("subset", PROPER_SUBSETS, ids=subset_id)
def test_absent_modality_is_never_read(name: str, subset: tuple[str, ...]) -> None:
    fusion = make_fusion(name)
    present = make_inputs(3, subset)
    before = fusion(present)
    fusion(make_inputs(4))  # a call with different data for every modality in between
    after = fusion(dict(present))
    assert torch.equal(before.tokens, after.tokens)
    assert torch.equal(before.mask, after.mask)
    # Absent is not the same as zero-filled.
    zero_filled = dict(present)
    for m in set(MODALITIES) - set(subset):
        zero_filled[m] = TokenSequence(
            torch.zeros(BATCH, LENGTHS[m], DIM), torch.ones(BATCH, LENGTHS[m], dtype=torch.bool)
        )
    filled = fusion(zero_filled)
    if filled.tokens.shape == before.tokens.shape:
        assert not torch.allclose(filled.tokens, before.tokens)


def test_invalid_inputs_raise(name: str) -> None:
    fusion = make_fusion(name)
    inputs = make_inputs(5, ("text",))
    with pytest.raises(ValueError, match="unknown"):
        fusion({**inputs, "smell": inputs["text"]})
    with pytest.raises(ValueError):
        fusion({})


@pytest.mark.parametrize("subset", SUBSETS, ids=subset_id)
def test_padding_does_not_influence_real_outputs(name: str, subset: tuple[str, ...]) -> None:
    fusion = make_fusion(name)
    inputs = make_inputs(6, subset)
    generator = torch.Generator().manual_seed(7)
    noisy = {
        m: TokenSequence(
            torch.where(
                seq.mask[..., None],
                seq.tokens,
                100.0 * torch.randn(seq.tokens.shape, generator=generator),
            ),
            seq.mask,
        )
        for m, seq in inputs.items()
    }
    clean, dirty = fusion(inputs), fusion(noisy)
    assert torch.equal(clean.mask, dirty.mask)
    torch.testing.assert_close(real_outputs(dirty), real_outputs(clean), atol=1e-5, rtol=0)


@pytest.mark.parametrize("subset", SUBSETS, ids=subset_id)
def test_batch_permutation_equivariance(name: str, subset: tuple[str, ...]) -> None:
    fusion = make_fusion(name)
    inputs = make_inputs(8, subset)
    order = torch.tensor([2, 0, 3, 1])
    permuted = {m: TokenSequence(seq.tokens[order], seq.mask[order]) for m, seq in inputs.items()}
    reference, output = fusion(inputs), fusion(permuted)
    assert torch.equal(output.mask, reference.mask[order])
    torch.testing.assert_close(output.tokens, reference.tokens[order], atol=1e-5, rtol=0)


@pytest.mark.parametrize("subset", [s for s in SUBSETS if len(s) > 1], ids=subset_id)
def test_insertion_order_does_not_matter(name: str, subset: tuple[str, ...]) -> None:
    fusion = make_fusion(name)
    inputs = make_inputs(9, subset)
    reversed_inputs = {m: inputs[m] for m in reversed(list(inputs))}
    forward, backward = fusion(inputs), fusion(reversed_inputs)
    assert torch.equal(forward.tokens, backward.tokens)
    assert torch.equal(forward.mask, backward.mask)
