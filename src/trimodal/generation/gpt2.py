"""Load a Hugging Face GPT-2 checkpoint (safetensors or .bin) from a local folder.

GPT-2 with ``add_cross_attention`` (an encoder-decoder's decoder) loads too; its encoder states
become the decoder's ``memory``. The weights are renamed into
:class:`~trimodal.modules.decoder.DecoderLM`'s names; GPT-2's ``Conv1D`` weights ``[in, out]``
are already in the layout of our ``DecoderLinear`` kernels. Nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from trimodal.modules.decoder import DecoderConfig, DecoderLM

_GPT2_BLOCK = {  # HF name inside h.{i}. -> ours inside blocks.{i}. (Conv1D weight = our kernel)
    "ln_1.weight": "norm1.weight",
    "ln_1.bias": "norm1.bias",
    "attn.c_attn.weight": "attention.qkv.kernel",
    "attn.c_attn.bias": "attention.qkv.bias",
    "attn.c_proj.weight": "attention.out.kernel",
    "attn.c_proj.bias": "attention.out.bias",
    "ln_2.weight": "norm2.weight",
    "ln_2.bias": "norm2.bias",
    "mlp.c_fc.weight": "mlp.fc.kernel",
    "mlp.c_fc.bias": "mlp.fc.bias",
    "mlp.c_proj.weight": "mlp.proj.kernel",
    "mlp.c_proj.bias": "mlp.proj.bias",
    # add_cross_attention=True: q from the tokens, k and v from the encoder states
    "ln_cross_attn.weight": "norm_cross.weight",
    "ln_cross_attn.bias": "norm_cross.bias",
    "crossattention.q_attn.weight": "cross.query.kernel",
    "crossattention.q_attn.bias": "cross.query.bias",
    "crossattention.c_attn.weight": "cross.key_value.kernel",
    "crossattention.c_attn.bias": "cross.key_value.bias",
    "crossattention.c_proj.weight": "cross.out.kernel",
    "crossattention.c_proj.bias": "cross.out.bias",
}
_GPT2_TOP = {
    "wte.weight": "token_embedding.weight",
    "wpe.weight": "position_embedding.weight",
    "ln_f.weight": "norm.weight",
    "ln_f.bias": "norm.bias",
    "lm_head.weight": "lm_head.weight",
}
# causal-mask buffers of old checkpoints
_GPT2_BUFFERS = (
    "attn.bias",
    "attn.masked_bias",
    "crossattention.bias",
    "crossattention.masked_bias",
)
_GPT2_ACTIVATIONS = {"gelu_new": "gelu_new", "gelu_pytorch_tanh": "gelu_new", "gelu": "gelu"}


def gpt2_decoder_config(hf: dict[str, Any], source: str = "config.json") -> DecoderConfig:
    """A :class:`DecoderConfig` equal to a Hugging Face GPT-2 ``config.json`` dictionary."""
    if hf.get("model_type") != "gpt2":
        raise ValueError(f"{source}: model_type is {hf.get('model_type')!r}, expected 'gpt2'")
    activation = hf.get("activation_function", "gelu_new")
    if activation not in _GPT2_ACTIVATIONS:
        raise ValueError(f"{source}: activation_function {activation!r} is not supported")
    if not hf.get("scale_attn_weights", True) or hf.get("scale_attn_by_inverse_layer_idx"):
        raise ValueError(f"{source}: only the standard 1/sqrt(head_dim) attention is supported")
    try:
        dim = int(hf["n_embd"])
        return DecoderConfig(
            vocab_size=int(hf["vocab_size"]),
            max_positions=int(hf["n_positions"]),
            dim=dim,
            depth=int(hf["n_layer"]),
            heads=int(hf["n_head"]),
            mlp_hidden=int(hf.get("n_inner") or 4 * dim),
            positions="learned",
            tie_embeddings=bool(hf.get("tie_word_embeddings", True)),
            layer_norm_eps=float(hf.get("layer_norm_epsilon", 1e-5)),
            activation=_GPT2_ACTIVATIONS[activation],
            cross_attention=bool(hf.get("add_cross_attention", False)),
        )
    except KeyError as missing:
        raise ValueError(f"{source}: missing GPT-2 field {missing}") from None


def convert_gpt2_state_dict(
    state: dict[str, torch.Tensor], config: DecoderConfig
) -> dict[str, torch.Tensor]:
    """Rename HF GPT-2 weights to ours (a ``Conv1D`` weight ``[in, out]`` is our ``kernel`` as is)."""
    converted: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for hf_name, tensor in state.items():
        name = hf_name.removeprefix("transformer.")
        if name.startswith("h."):
            _, index, rest = name.split(".", 2)
            if rest in _GPT2_BUFFERS:
                continue
            if rest not in _GPT2_BLOCK:
                unknown.append(hf_name)
                continue
            converted[f"blocks.{index}.{_GPT2_BLOCK[rest]}"] = tensor
        elif name in _GPT2_TOP:
            converted[_GPT2_TOP[name]] = tensor
        else:
            unknown.append(hf_name)
    if unknown:
        raise ValueError(f"unexpected GPT-2 weights: {sorted(unknown)[:8]}")
    if config.tie_embeddings:
        converted["lm_head.weight"] = converted["token_embedding.weight"]
    return converted


def read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """Tensors of ``model.safetensors`` or else ``pytorch_model.bin`` in ``folder``."""
    if (folder / "model.safetensors").is_file():
        from safetensors.torch import load_file

        return load_file(str(folder / "model.safetensors"))
    if (folder / "pytorch_model.bin").is_file():
        loaded = torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
        return dict(loaded)
    found = sorted(path.name for path in folder.iterdir())
    raise FileNotFoundError(
        f"{folder} has no model.safetensors or pytorch_model.bin (found {found}); "
        "save the model there with save_pretrained() (sharded checkpoints are not supported)"
    )


def load_gpt2(directory: str | Path) -> DecoderLM:
    """Load a Hugging Face GPT-2 checkpoint from a local folder, in eval mode.

    Args:
        directory: holds ``config.json`` and ``model.safetensors`` or ``pytorch_model.bin``.

    Raises:
        FileNotFoundError: the folder or one of its files is missing.
        ValueError: the config is not GPT-2 or uses an unsupported variant.
    """
    folder = Path(directory)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(
            f"{config_path} not found: load_gpt2 needs a folder written by save_pretrained()"
        )
    config = gpt2_decoder_config(json.loads(config_path.read_text()), str(config_path))
    model = DecoderLM(config)
    state = convert_gpt2_state_dict(read_weights(folder), config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{folder}: missing weights {missing}, unexpected weights {unexpected}")
    return model.eval()
