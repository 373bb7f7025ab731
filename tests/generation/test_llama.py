"""The Llama family in our decoder against transformers' LlamaForCausalLM at the same weights."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from trimodal.generation.llama import llama_decoder_config, load_llama, load_llama_gguf
from trimodal.generation.sampling import generate
from trimodal.modules.decoder import DecoderConfig, DecoderLM

transformers = pytest.importorskip("transformers")

VOCAB = 100
PAD = 0
EOS = VOCAB - 1


def tiny_llama_config(tied: bool) -> transformers.LlamaConfig:
    """2 layers, 4 query heads sharing 2 key/value heads, width 64, SwiGLU width 96."""
    return transformers.LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        rms_norm_eps=1e-5,
        rope_theta=1000.0,
        tie_word_embeddings=tied,
        initializer_range=0.2,  # spread logits so greedy choices are far from ties
        bos_token_id=1,
        eos_token_id=EOS,
        pad_token_id=PAD,
    )


@pytest.fixture(scope="module", params=[False, True], ids=["untied", "tied"])
def pair(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[transformers.LlamaForCausalLM, DecoderLM]:
    """A random tiny Llama and the same weights loaded from its save_pretrained folder."""
    torch.manual_seed(0)
    hf = transformers.LlamaForCausalLM(tiny_llama_config(request.param)).eval()
    folder = tmp_path_factory.mktemp("llama")
    hf.save_pretrained(folder)
    return hf, load_llama(folder)


def left_padded(lengths: list[int], total: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ids ``[B, total]`` left-padded with PAD to ``lengths``, and their mask."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, VOCAB - 1, (len(lengths), total), generator=generator)
    mask = torch.arange(total)[None, :] >= total - torch.tensor(lengths)[:, None]
    return ids.masked_fill(~mask, PAD), mask


def test_config_is_the_llama_architecture(
    pair: tuple[transformers.LlamaForCausalLM, DecoderLM],
) -> None:
    hf, ours = pair
    config = ours.config
    assert (config.norm, config.mlp, config.positions, config.bias) == (
        "rms",
        "swiglu",
        "rotary",
        False,
    )
    assert (config.heads, config.kv_heads, config.rotary_base) == (4, 2, 1000.0)
    assert config.tie_embeddings == hf.config.tie_word_embeddings
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in hf.parameters())


def test_logits_match_transformers(pair: tuple[transformers.LlamaForCausalLM, DecoderLM]) -> None:
    hf, ours = pair
    ids = torch.randint(0, VOCAB, (3, 12), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = hf(ids).logits
        logits, _ = ours(ids)
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=0)


def test_padded_logits_match_transformers(
    pair: tuple[transformers.LlamaForCausalLM, DecoderLM],
) -> None:
    hf, ours = pair
    ids, mask = left_padded([10, 6, 3], 10)
    positions = (mask.long().cumsum(-1) - 1).clamp_min(0)
    with torch.no_grad():
        expected = hf(ids, attention_mask=mask.long(), position_ids=positions).logits
        logits, _ = ours(ids, attention_mask=mask)
    torch.testing.assert_close(logits[mask], expected[mask], atol=1e-4, rtol=0)


def test_greedy_matches_transformers_generate_token_for_token(
    pair: tuple[transformers.LlamaForCausalLM, DecoderLM],
) -> None:
    hf, ours = pair
    ids, mask = left_padded([8, 5, 2], 8, seed=4)
    expected = hf.generate(
        ids, attention_mask=mask.long(), max_new_tokens=12, do_sample=False, pad_token_id=PAD
    )[:, ids.shape[1] :]
    tokens = generate(
        ours, ids, attention_mask=mask, max_new_tokens=12, stop_tokens=(EOS,), pad_id=PAD
    )
    assert torch.equal(tokens, expected)
    uncached = generate(
        ours,
        ids,
        attention_mask=mask,
        max_new_tokens=12,
        stop_tokens=(EOS,),
        pad_id=PAD,
        use_cache=False,
    )
    assert torch.equal(uncached, tokens)


def test_grouped_query_cache_holds_only_key_value_heads(
    pair: tuple[transformers.LlamaForCausalLM, DecoderLM],
) -> None:
    _, ours = pair
    cache = ours.new_cache(batch=2, capacity=16)
    assert cache.keys.shape == (2, 2, 2, 16, 16)  # depth, B, kv heads, capacity, head_dim


def test_unsupported_configs_are_refused_with_the_reason(tmp_path: Path) -> None:
    base = tiny_llama_config(False).to_dict()
    with pytest.raises(ValueError, match="model_type is 'gpt2'"):
        llama_decoder_config({**base, "model_type": "gpt2"})
    with pytest.raises(ValueError, match="RoPE scaling 'linear' is not supported"):
        llama_decoder_config({**base, "rope_scaling": {"rope_type": "linear", "factor": 2.0}})
    with pytest.raises(ValueError, match="sliding-window attention is not supported"):
        llama_decoder_config({**base, "model_type": "mistral", "sliding_window": 4096})
    with pytest.raises(ValueError, match="model_type is 'qwen2'"):
        llama_decoder_config({**base, "model_type": "qwen2"})
    with pytest.raises(ValueError, match="hidden_act 'gelu'"):
        llama_decoder_config({**base, "hidden_act": "gelu"})
    with pytest.raises(ValueError, match="missing Llama field 'intermediate_size'"):
        llama_decoder_config({k: v for k, v in base.items() if k != "intermediate_size"})
    with pytest.raises(FileNotFoundError, match=r"config\.json not found"):
        load_llama(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(base))
    with pytest.raises(FileNotFoundError, match=r"no model\.safetensors"):
        load_llama(tmp_path)
    with pytest.raises(ValueError, match="kv_heads 3 must divide heads 4"):
        DecoderConfig(dim=64, heads=4, kv_heads=3)


def test_gguf_loading_names_the_missing_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(FileNotFoundError, match=r"needs a \.gguf file"):
        load_llama_gguf(tmp_path / "absent.gguf")
    model_file = tmp_path / "model.gguf"
    model_file.write_bytes(b"GGUF")
    monkeypatch.setitem(sys.modules, "gguf", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'trimodal\[towers\]'"):
        load_llama_gguf(model_file)
