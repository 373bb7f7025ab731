"""Load a Hugging Face Llama-family checkpoint (Llama, SmolLM2, ...) into our decoder.

:class:`~trimodal.modules.decoder.DecoderLM` with ``norm="rms"``, ``mlp="swiglu"``,
``positions="rotary"``, ``bias=False`` and ``kv_heads`` is the Llama architecture: RMSNorm,
rotary positions (the rotate-half form transformers uses), SwiGLU and grouped-query attention.
This module maps a ``config.json`` onto that config and renames the weights: the separate
``q/k/v_proj`` become one fused ``qkv`` kernel and ``gate/up_proj`` one ``gate_up`` kernel
(``nn.Linear``'s ``weight [out, in]`` transposed into our ``kernel [in, out]``).

Sources: a folder written by ``save_pretrained`` (``config.json`` + safetensors), or a GGUF
file (``load_llama_gguf``: transformers dequantizes it, which needs the ``gguf`` package).
Nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from trimodal.generation.gpt2 import read_weights
from trimodal.modules.decoder import DecoderConfig, DecoderLM

_LLAMA_TYPES = ("llama", "mistral")
"""``model_type`` values whose layers are the Llama block (Mistral without a sliding window;
Qwen2 is not one: its q/k/v projections always have biases)."""


def _rope_theta(hf: dict[str, Any]) -> float:
    """The RoPE base: ``rope_theta``, or (transformers 5) ``rope_parameters["rope_theta"]``;
    any RoPE scaling is refused, as our tables are unscaled."""
    parameters = hf.get("rope_parameters") or {}
    scaling = hf.get("rope_scaling") or {}
    for kind in (parameters.get("rope_type"), scaling.get("rope_type", scaling.get("type"))):
        if kind not in ("default", None):
            raise ValueError(f"RoPE scaling {kind!r} is not supported (only the default rotary)")
    return float(parameters.get("rope_theta", hf.get("rope_theta", 10_000.0)))


def llama_decoder_config(hf: dict[str, Any], source: str = "config.json") -> DecoderConfig:
    """A :class:`DecoderConfig` equal to a Hugging Face Llama ``config.json`` dictionary."""
    if hf.get("model_type") not in _LLAMA_TYPES:
        raise ValueError(
            f"{source}: model_type is {hf.get('model_type')!r}, expected one of {_LLAMA_TYPES}"
        )
    if hf.get("hidden_act", "silu") != "silu":
        raise ValueError(f"{source}: hidden_act {hf.get('hidden_act')!r} is not supported")
    if hf.get("attention_bias") or hf.get("mlp_bias"):
        raise ValueError(f"{source}: biased Llama projections are not supported")
    if hf.get("sliding_window"):
        raise ValueError(f"{source}: sliding-window attention is not supported")
    try:
        dim, heads = int(hf["hidden_size"]), int(hf["num_attention_heads"])
        head_dim = hf.get("head_dim") or dim // heads
        if head_dim * heads != dim:
            raise ValueError(f"{source}: head_dim {head_dim} x {heads} heads != hidden {dim}")
        return DecoderConfig(
            vocab_size=int(hf["vocab_size"]),
            max_positions=int(hf.get("max_position_embeddings", 2048)),
            dim=dim,
            depth=int(hf["num_hidden_layers"]),
            heads=heads,
            kv_heads=int(hf.get("num_key_value_heads") or heads),
            mlp_hidden=int(hf["intermediate_size"]),
            positions="rotary",
            rotary_base=_rope_theta(hf),
            tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
            layer_norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
            norm="rms",
            mlp="swiglu",
            bias=False,
        )
    except KeyError as missing:
        raise ValueError(f"{source}: missing Llama field {missing}") from None


_LLAMA_NORMS = {
    "input_layernorm.weight": "norm1.weight",
    "post_attention_layernorm.weight": "norm2.weight",
}


def convert_llama_state_dict(
    state: dict[str, torch.Tensor], config: DecoderConfig
) -> dict[str, torch.Tensor]:
    """Rename (and fuse) HF Llama weights into ours; rotary ``inv_freq`` buffers are skipped."""
    converted: dict[str, torch.Tensor] = {}
    layers: dict[int, dict[str, torch.Tensor]] = {}
    unknown: list[str] = []
    for hf_name, tensor in state.items():
        name = hf_name.removeprefix("model.")
        if name.startswith("layers."):
            _, index, rest = name.split(".", 2)
            layers.setdefault(int(index), {})[rest] = tensor
        elif name == "embed_tokens.weight":
            converted["token_embedding.weight"] = tensor
        elif name == "norm.weight":
            converted["norm.weight"] = tensor
        elif hf_name == "lm_head.weight":
            converted["lm_head.weight"] = tensor
        elif not name.endswith("inv_freq"):
            unknown.append(hf_name)
    for layer, weights in sorted(layers.items()):
        converted.update(_convert_layer(layer, weights, unknown))
    if unknown:
        raise ValueError(f"unexpected Llama weights: {sorted(unknown)[:8]}")
    if config.tie_embeddings or "lm_head.weight" not in converted:
        converted["lm_head.weight"] = converted["token_embedding.weight"]
    return converted


def _convert_layer(
    index: int, weights: dict[str, torch.Tensor], unknown: list[str]
) -> dict[str, torch.Tensor]:
    """One decoder layer's weights under ``blocks.{index}.``: fused qkv and gate_up kernels."""
    prefix = f"blocks.{index}."
    parts = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")
    out = {
        prefix + "attention.qkv.kernel": torch.cat([weights.pop(f"{p}.weight") for p in parts]).T,
        prefix + "attention.out.kernel": weights.pop("self_attn.o_proj.weight").T,
        prefix + "mlp.gate_up.kernel": torch.cat(
            [weights.pop("mlp.gate_proj.weight"), weights.pop("mlp.up_proj.weight")]
        ).T,
        prefix + "mlp.proj.kernel": weights.pop("mlp.down_proj.weight").T,
    }
    for hf_name, ours in _LLAMA_NORMS.items():
        out[prefix + ours] = weights.pop(hf_name)
    unknown.extend(f"model.layers.{index}.{rest}" for rest in weights if "inv_freq" not in rest)
    return {name: tensor.contiguous() for name, tensor in out.items()}


def llama_from_state(
    hf_config: dict[str, Any], state: dict[str, torch.Tensor], source: str
) -> DecoderLM:
    """Our decoder (eval mode) holding a Llama ``state`` described by ``hf_config``."""
    config = llama_decoder_config(hf_config, source)
    model = DecoderLM(config)
    converted = convert_llama_state_dict(state, config)
    missing, unexpected = model.load_state_dict(converted, strict=False)
    if missing or unexpected:
        raise ValueError(f"{source}: missing weights {missing}, unexpected weights {unexpected}")
    return model.eval()


def load_llama(directory: str | Path) -> DecoderLM:
    """Load a Hugging Face Llama-family checkpoint from a local folder, in eval mode.

    Args:
        directory: holds ``config.json`` and ``model.safetensors`` or ``pytorch_model.bin``.

    Raises:
        FileNotFoundError: the folder or one of its files is missing.
        ValueError: the config is not Llama-family or uses an unsupported variant.
    """
    folder = Path(directory)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(
            f"{config_path} not found: load_llama needs a folder written by save_pretrained()"
        )
    hf_config = json.loads(config_path.read_text())
    return llama_from_state(hf_config, read_weights(folder), str(config_path))


def load_llama_gguf(path: str | Path) -> DecoderLM:
    """Load a Llama-family GGUF file (e.g. SmolLM2's), dequantized to fp32 by transformers.

    Raises:
        FileNotFoundError: no such file.
        ImportError: transformers or its ``gguf`` reader is not installed (``pip install
            'trimodal[towers]'``).
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"{file} not found: load_llama_gguf needs a .gguf file")
    try:
        import gguf  # noqa: F401  (transformers' GGUF reader needs it)
        from transformers import AutoModelForCausalLM
    except ImportError as error:
        raise ImportError(
            f"loading {file.name} needs transformers and gguf: pip install 'trimodal[towers]'"
        ) from error
    hf_model = AutoModelForCausalLM.from_pretrained(
        str(file.parent), gguf_file=file.name, local_files_only=True
    )
    return llama_from_state(hf_model.config.to_dict(), dict(hf_model.state_dict()), str(file))
