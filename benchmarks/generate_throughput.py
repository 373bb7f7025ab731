"""Greedy generation: trimodal's DecoderLM vs transformers' GPT2LMHeadModel.generate, one run.

Both decoders hold the *same* weights: a random GPT-2 is built with transformers (sdpa attention),
saved with ``save_pretrained`` and loaded into ours with ``load_gpt2``. Default shape: 4 layers,
width 256, 4 heads (GPT-2 small is too slow for a CPU benchmark), prompt 16 tokens, 64 new tokens,
no stop token, batches 1 and 16. Two vocabularies are raced:

- 1000: trimodal's own BPE size (its recipes use 300-1000 tokens);
- 8192: a mid-sized BPE;
- 50257: GPT-2's. The LM-head matmul (identical work in both implementations) then dominates
  every step.

At batch 1 a step is memory-bound: both read every weight once per token (fp32), so the ratio
can only come from per-step overhead (transformers' generate machinery, cache concatenation);
the bigger the vocabulary, the closer the ratio gets to 1.

Runs are interleaved (A B A B ...) after a warm-up; medians of the repeats are reported with min
and max. The greedy tokens of both are compared (a float near-tie may flip a rare token).

    python benchmarks/generate_throughput.py [--vocabs 1000 8192 50257] [--batches 1 16] [--threads 1]

``--smollm2`` races the real SmolLM2-135M-Instruct instead (the towers extra): transformers'
LlamaForCausalLM dequantized from the packaged GGUF, and the same weights in our Llama-family
decoder.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable

import torch

from trimodal.generation.gpt2 import load_gpt2
from trimodal.generation.sampling import generate
from trimodal.hardware import resolve_device, synchronize
from trimodal.modules.decoder import DecoderLM

CPU = torch.device("cpu")


def gpt2_pair(args: argparse.Namespace, vocab: int) -> tuple[torch.nn.Module, DecoderLM]:
    """A random transformers GPT-2 and the same weights in our decoder."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=vocab,
        n_positions=args.prompt + args.new,
        n_embd=args.dim,
        n_layer=args.layers,
        n_head=args.heads,
        bos_token_id=0,
        eos_token_id=0,
        initializer_range=0.1,  # sharper random logits: fewer float near-ties in the comparison
    )
    torch.manual_seed(0)
    hf = GPT2LMHeadModel._from_config(config, attn_implementation="sdpa").eval()
    hf.generation_config.eos_token_id = None  # always generate args.new tokens
    hf.generation_config.pad_token_id = 0
    with tempfile.TemporaryDirectory() as folder:
        hf.save_pretrained(folder)
        ours = load_gpt2(folder)
    return hf, ours


def smollm2_pair() -> tuple[torch.nn.Module, DecoderLM]:
    """transformers' SmolLM2 (from the installed GGUF) and the same weights in our decoder."""
    from transformers import AutoModelForCausalLM

    from trimodal.generation.llama import llama_from_state
    from trimodal.generation.smollm2 import smollm2_path

    path = smollm2_path()
    hf = AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, local_files_only=True
    ).eval()
    return hf, llama_from_state(hf.config.to_dict(), dict(hf.state_dict()), str(path))


def timed(
    run: Callable[[], torch.Tensor], device: torch.device = CPU
) -> tuple[float, torch.Tensor]:
    """Seconds for one call (its device work finished) and its output."""
    synchronize(device)
    start = time.perf_counter()
    output = run()
    synchronize(device)
    return time.perf_counter() - start, output


def read_bandwidth(megabytes: int = 256, repeats: int = 5) -> float:
    """Bytes/s this process reads from memory on its threads (best ``sum`` over a buffer far
    larger than the caches)."""
    buffer = torch.ones(megabytes * 1024 * 1024 // 4)
    buffer.sum()
    best = min(timed(buffer.sum)[0] for _ in range(repeats))
    return buffer.numel() * 4 / best


def weight_bytes(model: torch.nn.Module) -> int:
    """Bytes of the weights a decoding step reads (tied ones counted once)."""
    unique = {p.data_ptr(): p for p in model.parameters()}
    return sum(p.numel() * p.element_size() for p in unique.values())


def race(args: argparse.Namespace, hf: torch.nn.Module, ours: DecoderLM, batch: int) -> list[float]:
    """Time both on the same prompts; print tokens/s, ratio and agreement; return our rates."""
    ids = torch.randint(1, ours.config.vocab_size, (batch, args.prompt)).to(args.device)
    mask = torch.ones_like(ids)

    def run_ours() -> torch.Tensor:
        return generate(ours, ids, max_new_tokens=args.new)

    def run_hf() -> torch.Tensor:
        with torch.inference_mode():
            out = hf.generate(  # type: ignore[operator]
                ids, attention_mask=mask, max_new_tokens=args.new, do_sample=False
            )
        return out[:, args.prompt :]

    run_ours(), run_hf()  # warm-up
    ours_rates, hf_rates = [], []
    for _ in range(args.repeats):
        seconds, ours_tokens = timed(run_ours, args.device)
        ours_rates.append(batch * args.new / seconds)
        seconds, hf_tokens = timed(run_hf, args.device)
        hf_rates.append(batch * args.new / seconds)
    assert hf_tokens.shape == ours_tokens.shape == (batch, args.new)
    agree = (hf_tokens == ours_tokens).float().mean().item()
    ours_median, hf_median = statistics.median(ours_rates), statistics.median(hf_rates)
    print(
        f"  batch {batch:>3}: trimodal {ours_median:8.1f} tok/s ({min(ours_rates):.1f}-{max(ours_rates):.1f})"
        f" | transformers {hf_median:8.1f} tok/s ({min(hf_rates):.1f}-{max(hf_rates):.1f})"
        f" | ratio {ours_median / hf_median:.2f}x | same tokens {agree:.1%}"
    )
    return ours_rates


def main() -> None:
    """Build the pairs, race them, print one line per vocabulary and batch."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vocabs", type=int, nargs="+", default=[1000, 8192, 50257])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--prompt", type=int, default=16)
    parser.add_argument("--new", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--smollm2", action="store_true", help="race the real SmolLM2-135M")
    parser.add_argument("--device", default="cpu", help="cpu, cuda[:N], ... (both models)")
    args = parser.parse_args()
    args.device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    from transformers.utils import logging

    logging.set_verbosity_error()
    shape = "" if args.smollm2 else f"{args.layers} layers, width {args.dim}, {args.heads} heads, "
    print(
        f"greedy, {shape}prompt {args.prompt}, {args.new} new tokens, {args.threads} thread(s), "
        f"median of {args.repeats} interleaved repeats (min-max); targets: "
        + (
            ">= 5x at batch 1 (and >= 60% of the memory limit), >= 2x at batch 16"
            if args.smollm2
            else ">= 2x at batch 1, >= 1.5x at batch 16"
        )
    )
    if args.smollm2:
        hf, ours = smollm2_pair()
        hf, ours = hf.to(args.device), ours.to(args.device)
        print("SmolLM2-135M-Instruct (30 layers, width 576, 9 query / 3 key-value heads):")
        for batch in args.batches:
            torch.manual_seed(batch)
            rates = race(args, hf, ours, batch)
            if batch == 1 and args.device.type == "cpu":
                bandwidth, weights = read_bandwidth(), weight_bytes(ours)
                limit = bandwidth / weights
                print(
                    f"  memory limit at batch 1: {weights / 1e6:.0f} MB of weights a token over "
                    f"{bandwidth / 1e9:.1f} GB/s measured read bandwidth = {limit:.1f} tok/s; "
                    f"trimodal reaches {statistics.median(rates) / limit:.0%} of it (target >= 60%)"
                )
        return
    for vocab in args.vocabs:
        hf, ours = gpt2_pair(args, vocab)
        hf, ours = hf.to(args.device), ours.to(args.device)
        print(f"vocab {vocab}:")
        for batch in args.batches:
            torch.manual_seed(batch)
            race(args, hf, ours, batch)


if __name__ == "__main__":
    main()
