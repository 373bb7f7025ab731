"""The GPT-style decoder against transformers' GPT-2, its own uncached path, and hand values."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from trimodal.generation.gpt2 import load_gpt2
from trimodal.generation.sampling import filter_logits, generate
from trimodal.modules.decoder import DecoderConfig, DecoderLinear, DecoderLM

transformers = pytest.importorskip("transformers")

VOCAB = 100
PAD = 0


def tiny_gpt2_config() -> transformers.GPT2Config:
    """2 layers, 2 heads, width 32; special ids inside the 100-token vocabulary."""
    return transformers.GPT2Config(
        n_layer=2,
        n_head=2,
        n_embd=32,
        vocab_size=VOCAB,
        n_positions=64,
        initializer_range=0.2,  # spread logits so greedy choices are far from ties
        bos_token_id=VOCAB - 1,
        eos_token_id=VOCAB - 1,
    )


@pytest.fixture(scope="module")
def hf_gpt2() -> transformers.GPT2LMHeadModel:
    """A random tiny GPT-2 in eval mode."""
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(tiny_gpt2_config()).eval()


@pytest.fixture(scope="module")
def gpt2_folder(
    hf_gpt2: transformers.GPT2LMHeadModel, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """``hf_gpt2`` written by ``save_pretrained`` (safetensors)."""
    folder = tmp_path_factory.mktemp("gpt2")
    hf_gpt2.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def ours(gpt2_folder: Path) -> DecoderLM:
    """``hf_gpt2`` loaded into our decoder."""
    return load_gpt2(gpt2_folder)


def tiny_decoder(positions: str = "learned", seed: int = 0) -> DecoderLM:
    """A random tiny decoder with weights scaled up so greedy choices are far from ties."""
    torch.manual_seed(seed)
    config = DecoderConfig(
        vocab_size=VOCAB, max_positions=64, dim=32, depth=2, heads=2, positions=positions
    )
    model = DecoderLM(config)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() == 2:
                parameter.mul_(8.0)
    return model.eval()


def left_padded(lengths: list[int], total: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ids ``[B, total]`` left-padded with PAD to ``lengths``, and their mask."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB - 1, (len(lengths), total), generator=generator)
    mask = torch.arange(total)[None, :] >= total - torch.tensor(lengths)[:, None]
    return ids.masked_fill(~mask, PAD), mask


# --- GPT-2 parity --------------------------------------------------------------------------


def test_logits_match_transformers(hf_gpt2: transformers.GPT2LMHeadModel, ours: DecoderLM) -> None:
    ids = torch.randint(0, VOCAB, (3, 12), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = hf_gpt2(ids).logits
        logits, _ = ours(ids)
    assert logits.shape == (3, 12, VOCAB)
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=0)


def test_legacy_bin_checkpoint_loads(hf_gpt2: transformers.GPT2LMHeadModel, tmp_path: Path) -> None:
    """transformers 5 writes safetensors even with ``safe_serialization=False``, so the
    ``pytorch_model.bin`` is written by hand in the original GPT-2 layout: no ``transformer.``
    prefix, causal-mask buffers included."""
    hf_gpt2.config.to_json_file(tmp_path / "config.json")
    state = {
        name.removeprefix("transformer."): tensor
        for name, tensor in hf_gpt2.state_dict().items()
        if name != "lm_head.weight"
    }
    state["h.0.attn.bias"] = torch.tril(torch.ones(1, 1, 64, 64))
    torch.save(state, tmp_path / "pytorch_model.bin")
    ids = torch.randint(0, VOCAB, (2, 9), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        logits, _ = load_gpt2(tmp_path)(ids)
        torch.testing.assert_close(logits, hf_gpt2(ids).logits, atol=1e-4, rtol=0)


def test_padded_logits_match_transformers(
    hf_gpt2: transformers.GPT2LMHeadModel, ours: DecoderLM
) -> None:
    ids, mask = left_padded([10, 6, 3], 10)
    positions = (mask.long().cumsum(-1) - 1).clamp_min(0)
    with torch.no_grad():
        expected = hf_gpt2(ids, attention_mask=mask.long(), position_ids=positions).logits
        logits, _ = ours(ids, attention_mask=mask)
        alone, _ = ours(ids[1:2, 4:])
    torch.testing.assert_close(logits[mask], expected[mask], atol=1e-4, rtol=0)
    torch.testing.assert_close(logits[1:2, 4:], alone, atol=1e-5, rtol=0)
    assert torch.isfinite(logits).all()


def test_greedy_matches_transformers_generate(
    hf_gpt2: transformers.GPT2LMHeadModel, ours: DecoderLM
) -> None:
    ids, mask = left_padded([8, 5, 2], 8, seed=4)
    expected = hf_gpt2.generate(
        ids, attention_mask=mask.long(), max_new_tokens=12, do_sample=False, pad_token_id=PAD
    )[:, ids.shape[1] :]
    tokens = generate(
        ours,
        ids,
        attention_mask=mask,
        max_new_tokens=12,
        stop_tokens=(VOCAB - 1,),
        pad_id=PAD,
    )
    assert torch.equal(tokens, expected)


def test_load_gpt2_errors_are_actionable(gpt2_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        load_gpt2(tmp_path)
    (tmp_path / "config.json").write_text((gpt2_folder / "config.json").read_text())
    with pytest.raises(FileNotFoundError, match=r"model\.safetensors or pytorch_model\.bin"):
        load_gpt2(tmp_path)
    config = json.loads((gpt2_folder / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "model_type": "llama"}))
    with pytest.raises(ValueError, match="expected 'gpt2'"):
        load_gpt2(tmp_path)


# --- model and KV cache ----------------------------------------------------------------------


def test_decoder_linear_is_x_times_kernel_plus_bias() -> None:
    torch.manual_seed(0)
    layer = DecoderLinear(3, 2)
    with torch.no_grad():
        layer.kernel.copy_(torch.tensor([[1.0, 2.0], [0.0, -1.0], [3.0, 0.5]]))
        layer.bias.copy_(torch.tensor([0.5, -2.0]))
    x = torch.tensor([[[1.0, 2.0, 3.0]], [[0.0, 1.0, -1.0]]])  # (2, 1, 3)
    expected = torch.tensor(
        [[[1 + 0 + 9 + 0.5, 2 - 2 + 1.5 - 2.0]], [[0 + 0 - 3 + 0.5, -1 - 0.5 - 2.0]]]
    )
    assert torch.allclose(layer(x), expected)


@pytest.mark.parametrize("cross_attention", [False, True])
def test_checkpoints_in_the_linear_layout_still_load(cross_attention: bool) -> None:
    """A state dict with ``nn.Linear``'s ``weight [out, in]`` (older checkpoints) loads transposed."""
    config = DecoderConfig(
        vocab_size=VOCAB, dim=16, depth=2, heads=2, cross_attention=cross_attention
    )
    torch.manual_seed(1)
    model = DecoderLM(config).eval()
    legacy = {
        (name.removesuffix("kernel") + "weight" if name.endswith(".kernel") else name): (
            tensor.t().contiguous() if name.endswith(".kernel") else tensor
        )
        for name, tensor in model.state_dict().items()
    }
    assert not any(name.endswith(".kernel") for name in legacy)
    torch.manual_seed(2)
    restored = DecoderLM(config).eval()
    restored.load_state_dict(legacy)
    ids = torch.randint(0, VOCAB, (2, 5))
    memory = torch.randn(2, 3, 16) if cross_attention else None
    with torch.no_grad():
        assert torch.equal(restored(ids, memory=memory)[0], model(ids, memory=memory)[0])
    both = model.state_dict() | {"blocks.0.mlp.fc.weight": legacy["blocks.0.mlp.fc.weight"]}
    with pytest.raises(RuntimeError, match="Unexpected key"):
        restored.load_state_dict(both)


def test_init_ties_head_and_scales_residual_projections() -> None:
    model = DecoderLM(DecoderConfig(vocab_size=VOCAB, dim=64, depth=8, heads=4))
    assert model.lm_head.weight is model.token_embedding.weight
    residual = torch.cat([block.mlp.proj.kernel.flatten() for block in model.blocks])
    assert residual.std().item() == pytest.approx(0.02 / math.sqrt(16), rel=0.05)


@pytest.mark.parametrize("positions", ["learned", "rotary"])
def test_training_forward_backpropagates(positions: str) -> None:
    config = DecoderConfig(
        vocab_size=VOCAB, dim=32, depth=2, heads=2, dropout=0.1, positions=positions
    )
    model = DecoderLM(config).train()
    ids = torch.randint(0, VOCAB, (2, 9))
    logits, cache = model(ids[:, :-1], prefix=torch.randn(2, 2, 32))
    assert cache is None
    loss = torch.nn.functional.cross_entropy(logits[:, 2:].reshape(-1, VOCAB), ids[:, 1:].flatten())
    loss.backward()
    assert model.token_embedding.weight.grad is not None
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("positions", ["learned", "rotary"])
def test_cached_forward_equals_full_forward(positions: str) -> None:
    model = tiny_decoder(positions)
    prefix = torch.randn(2, 3, 32)
    ids = torch.randint(0, VOCAB, (2, 7))
    with torch.no_grad():
        full, _ = model(ids, prefix)
        cache = model.new_cache(2, 10)
        prefill, _ = model(ids[:, :4], prefix, cache=cache)
        steps = [model(ids[:, t : t + 1], cache=cache)[0] for t in range(4, 7)]
    torch.testing.assert_close(prefill, full[:, :7], atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.cat(steps, 1), full[:, 7:], atol=1e-5, rtol=0)
    assert cache.length == 10


@pytest.mark.parametrize("positions", ["learned", "rotary"])
@pytest.mark.parametrize("with_prefix", [False, True])
@pytest.mark.parametrize("padded", [False, True])
def test_cached_and_uncached_greedy_agree(positions: str, with_prefix: bool, padded: bool) -> None:
    model = tiny_decoder(positions)
    ids, mask = left_padded([6, 3, 6] if padded else [6, 6, 6], 6)
    prefix = torch.randn(3, 4, 32, generator=torch.Generator().manual_seed(5))
    prefix_mask = torch.ones(3, 4, dtype=torch.bool)
    options = {
        "prefix": prefix if with_prefix else None,
        "attention_mask": torch.cat([prefix_mask, mask], 1) if with_prefix else mask,
        "max_new_tokens": 10,
    }
    cached = generate(model, ids, **options)
    uncached = generate(model, ids, use_cache=False, **options)
    assert cached.shape == (3, 10)
    assert torch.equal(cached, uncached)


def test_generate_from_prefix_alone() -> None:
    model = tiny_decoder()
    prefix = torch.randn(2, 5, 32)
    cached = generate(model, None, prefix, max_new_tokens=6)
    assert torch.equal(cached, generate(model, None, prefix, max_new_tokens=6, use_cache=False))


def test_too_long_sequences_are_refused() -> None:
    model = tiny_decoder()
    with pytest.raises(ValueError, match="max_positions=64"):
        model(torch.zeros(1, 65, dtype=torch.long))
    cache = model.new_cache(1, 4)
    with pytest.raises(ValueError, match="holds 4 positions"):
        model(torch.zeros(1, 5, dtype=torch.long), cache=cache)


# --- sampling and stopping ---------------------------------------------------------------------


def test_filter_logits_top_p_keeps_the_nucleus() -> None:
    probs = torch.tensor([[0.05, 0.5, 0.15, 0.3], [0.6, 0.2, 0.15, 0.05]])
    # Sorted masses ahead of each token: row 0 (tokens 1, 3, 2, 0) 0, .5, .8, .95;
    # row 1 (tokens 0, 1, 2, 3) 0, .6, .8, .95. A token stays while that mass is < top_p.
    kept = torch.isfinite(filter_logits(probs.log(), top_p=0.7))
    assert kept.tolist() == [[False, True, False, True], [True, True, False, False]]
    kept = torch.isfinite(filter_logits(probs.log(), top_p=0.9))
    assert kept.tolist() == [[False, True, True, True], [True, True, True, False]]
    kept = torch.isfinite(filter_logits(probs.log(), top_p=0.4))
    assert kept.tolist() == [[False, True, False, False], [True, False, False, False]]


def test_filter_logits_top_k_and_combined() -> None:
    logits = torch.tensor([[1.0, 4.0, 3.0, 2.0]])
    assert torch.isfinite(filter_logits(logits, top_k=2)).tolist() == [[False, True, True, False]]
    filtered = filter_logits(logits, top_k=3, top_p=0.5)
    assert torch.isfinite(filtered).tolist() == [[False, True, False, False]]
    assert filtered[0, 1] == 4.0
    assert torch.equal(filter_logits(logits), logits)


def test_sampling_is_deterministic_under_a_seeded_generator() -> None:
    model, ids = tiny_decoder(), torch.randint(1, VOCAB, (4, 5))

    def sample(seed: int) -> torch.Tensor:
        return generate(
            model,
            ids,
            max_new_tokens=12,
            do_sample=True,
            temperature=1.5,
            top_p=0.95,
            generator=torch.Generator().manual_seed(seed),
        )

    assert torch.equal(sample(7), sample(7))
    assert not torch.equal(sample(7), sample(8))


def test_top_k_one_sampling_equals_greedy() -> None:
    model, ids = tiny_decoder(), torch.randint(1, VOCAB, (3, 5))
    greedy = generate(model, ids, max_new_tokens=8)
    sampled = generate(
        model, ids, max_new_tokens=8, do_sample=True, top_k=1, generator=torch.Generator()
    )
    assert torch.equal(greedy, sampled)


def test_stop_tokens_stop_rows_independently() -> None:
    model, ids = (
        tiny_decoder(),
        torch.randint(1, VOCAB, (3, 5), generator=torch.Generator().manual_seed(9)),
    )
    free = generate(model, ids, max_new_tokens=8)
    stop = int(free[0, 2])
    stopped = generate(model, ids, max_new_tokens=8, stop_tokens=(stop,), pad_id=-1)
    for row in range(3):
        hits = (free[row] == stop).nonzero()
        end = int(hits[0]) + 1 if len(hits) else free.shape[1]
        assert torch.equal(stopped[row, :end], free[row, :end])
        assert (stopped[row, end:] == -1).all()
    # Every row stops at its first token: generation ends after one step.
    first_tokens = tuple(int(token) for token in free[:, 0])
    assert generate(model, ids, max_new_tokens=8, stop_tokens=first_tokens).shape == (3, 1)


def test_split_vector_matmul_equals_the_plain_product_in_both_layouts() -> None:
    from trimodal.modules.decoder import split_vector_matmul

    generator = torch.Generator().manual_seed(0)
    row = torch.randn(1, 48, generator=generator)
    kernel = torch.randn(48, 96, generator=generator)  # [in, out]
    weight = torch.randn(96, 48, generator=generator)  # nn.Linear's [out, in]
    previous = torch.get_num_threads()
    try:
        for threads in (2, 3, 4):
            torch.set_num_threads(threads)
            with torch.no_grad():
                torch.testing.assert_close(split_vector_matmul(row, kernel), row @ kernel)
                torch.testing.assert_close(
                    split_vector_matmul(row, weight, transposed=True), row @ weight.T
                )
                several = torch.randn(5, 48, generator=generator)
                torch.testing.assert_close(split_vector_matmul(several, kernel), several @ kernel)
                torch.testing.assert_close(
                    split_vector_matmul(several, weight, transposed=True), several @ weight.T
                )
                assert split_vector_matmul(torch.randn(65, 48), kernel) is None  # a prefill
                assert split_vector_matmul(row, torch.randn(48, 97)) is None  # columns don't split
            assert split_vector_matmul(row, kernel) is None  # autograd keeps the plain product
        torch.set_num_threads(1)
        with torch.no_grad():
            assert split_vector_matmul(row, kernel) is None
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("pays", [False, True])
def test_decoding_products_take_the_split_only_where_it_measured_faster(
    pays: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trimodal.modules import decoder

    calls: list[int] = []
    real_split = decoder.split_vector_matmul

    def counting_split(
        rows: torch.Tensor, kernel: torch.Tensor, transposed: bool = False
    ) -> torch.Tensor | None:
        calls.append(rows.shape[0])
        return real_split(rows, kernel, transposed)

    monkeypatch.setattr(decoder, "split_vector_matmul", counting_split)
    monkeypatch.setattr(decoder, "split_pays", lambda: pays)
    linear = decoder.DecoderLinear(48, 96)
    row = torch.randn(1, 48, generator=torch.Generator().manual_seed(1))
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with torch.no_grad():
            out = linear(row)
    finally:
        torch.set_num_threads(previous)
    torch.testing.assert_close(out, torch.addmm(linear.bias, row, linear.kernel))
    assert calls == ([1] if pays else [])


def test_the_split_check_measures_without_touching_the_global_rng() -> None:
    from trimodal.modules.decoder import _split_verdict

    _split_verdict.cache_clear()
    state = torch.get_rng_state()
    try:
        verdict = _split_verdict(2)
    finally:
        _split_verdict.cache_clear()
    assert isinstance(verdict, bool)
    assert torch.equal(torch.get_rng_state(), state)
    assert _split_verdict(1) is False  # one thread: nothing to split across
