"""Image-text contrastive training step: trimodal vs transformers' CLIPModel, in one run.

Both models are built with the same widths, depths, heads, MLP width, patch size, image size,
text length, vocabulary and batch; both take a full step (forward, symmetric InfoNCE, backward,
AdamW). Runs are interleaved (A B A B ...) after a warm-up; the median of the repeats is
reported with min and max. Also prints our step's FLOPs (counted by torch's FlopCounterMode)
per second as a fraction of a measured fp32 matmul peak on the same threads.

Two text batches are raced, both padded to ``--text-length`` and given to both models with the
same attention mask:

- ``full``: every caption fills the whole length (like-for-like work; the headline ratio);
- ``varied``: caption lengths uniform between a quarter of it and all of it, as real captions
  vary. CLIPModel computes every padded position; trimodal's training path
  (``encode_padded_text``) encodes rows in groups of similar length (``model.length_groups``).

Ours runs as a user gets it: ``--precision auto`` (bf16 autocast only where
:func:`trimodal.hardware.resolve_precision` measures a training step of its width faster; fp32
on AVX2, and on AMX for this narrow model) and optionally
``--compile`` (``TriModalModel.compile_parts``; its compile time is printed). CLIPModel runs
fp32 eager, as transformers does by default. When ``auto`` picks bf16 the race is repeated
with ours in fp32 (the same-precision ratio); when it keeps fp32 on a CPU with a bf16 path, the
race is repeated with ours in bf16 (what it declined).

MFU is against the matmul peak *at the step's own GEMM shapes*: every ``mm``/``addmm``/``bmm``
the step runs is recorded (shape and dtype), each timed alone on the same threads, and the
peak is their FLOPs over their summed standalone times.

    python benchmarks/train_throughput.py [--batch 128] [--repeats 5] [--threads 2]
        [--precision auto|fp32|bf16] [--compile]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from trimodal.config import Config, load_config
from trimodal.hardware import (
    Precision,
    cpu_bf16_instructions,
    resolve_device,
    resolve_precision,
    synchronize,
)
from trimodal.losses.contrastive import info_nce
from trimodal.models.checkpoint import Vocabulary
from trimodal.models.trimodal import TriModalModel


def our_model(config: Config, vocab: int) -> TriModalModel:
    """trimodal with a patch-ViT image tower (CLIP's tokenization) for a like-for-like race."""
    return TriModalModel(config, vocab, Vocabulary(["yes", "no"], ["a"]))


def clip_model(config: Config, vocab: int) -> torch.nn.Module:
    """transformers' CLIPModel with the same sizes (sdpa attention, as ours)."""
    from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPVisionConfig

    m = config.model
    hidden = int(m.dim * m.mlp_ratio)
    text = CLIPTextConfig(
        vocab_size=vocab,
        hidden_size=m.dim,
        intermediate_size=hidden,
        num_hidden_layers=m.text.depth,
        num_attention_heads=m.text.heads,
        max_position_embeddings=m.text.max_length,
        hidden_act="gelu",
    )
    vision = CLIPVisionConfig(
        hidden_size=m.dim,
        intermediate_size=hidden,
        num_hidden_layers=m.image.depth,
        num_attention_heads=m.image.heads,
        image_size=config.data.image_size,
        patch_size=m.image.patch_size,
        hidden_act="gelu",
    )
    clip_config = CLIPConfig(
        text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=m.embed_dim
    )
    return CLIPModel._from_config(clip_config, attn_implementation="sdpa")


DEVICE = torch.device("cpu")


def timed_steps(step: Callable[[], None], count: int) -> float:
    """Seconds per step over ``count`` steps (device work finished)."""
    synchronize(DEVICE)
    start = time.perf_counter()
    for _ in range(count):
        step()
    synchronize(DEVICE)
    return (time.perf_counter() - start) / count


def matmul_peak(threads: int, size: int = 1024, repeats: int = 20) -> float:
    """Measured fp32 matmul FLOP/s on this machine's threads (or the GPU)."""
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size, device=DEVICE), torch.randn(size, size, device=DEVICE)
    for _ in range(3):
        a @ b
    synchronize(DEVICE)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(DEVICE)
    return 2 * size**3 * repeats / (time.perf_counter() - start)


GEMMS = {"mm", "addmm", "bmm", "baddbmm"}


class GemmRecorder(TorchDispatchMode):
    """Records ``(op, shapes of the two multiplied operands, dtype)`` of every GEMM run."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, tuple[int, ...], tuple[int, ...], torch.dtype]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        name = func.overloadpacket.__name__
        if name in GEMMS:
            a, b = (args[1], args[2]) if name in ("addmm", "baddbmm") else (args[0], args[1])
            self.calls.append((name, tuple(a.shape), tuple(b.shape), a.dtype))
        return func(*args, **(kwargs or {}))


def gemm_peak(step: Callable[[], None], repeats: int = 3) -> tuple[float, int, str]:
    """The best FLOP/s at the step's own GEMMs: each recorded GEMM run alone (best of
    ``repeats``) in fp32 and in bf16, the faster precision's total kept. Returns that rate,
    the GEMM count and the precision that gave it."""
    recorder = GemmRecorder()
    with recorder:
        step()
    rates = {}
    for dtype in (torch.float32, torch.bfloat16):
        total_flops, total_seconds = 0.0, 0.0
        for _name, a_shape, b_shape, _dtype in recorder.calls:
            a = torch.randn(a_shape, device=DEVICE).to(dtype)
            b = torch.randn(b_shape, device=DEVICE).to(dtype)
            a @ b  # warm
            best = min(_seconds(lambda: a @ b) for _ in range(repeats))  # noqa: B023
            batch = a_shape[0] if len(a_shape) == 3 else 1
            total_flops += 2.0 * batch * a_shape[-2] * a_shape[-1] * b_shape[-1]
            total_seconds += best
        rates[str(dtype).removeprefix("torch.")] = total_flops / max(total_seconds, 1e-12)
    best_name = max(rates, key=lambda name: rates[name])
    return rates[best_name], len(recorder.calls), best_name


def _seconds(work: Callable[[], object]) -> float:
    synchronize(DEVICE)
    start = time.perf_counter()
    work()
    synchronize(DEVICE)
    return time.perf_counter() - start


def main() -> None:
    """Build both, race them, print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--text-length", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5, help="steps per timed repeat")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", default="auto", help="ours: auto, fp32, bf16")
    parser.add_argument("--compile", action="store_true", help="torch.compile our model's parts")
    parser.add_argument("--device", default="cpu", help="cpu, cuda[:N], ... (both models)")
    args = parser.parse_args()
    global DEVICE
    DEVICE = resolve_device(args.device)
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    config = load_config(
        None,
        [
            "model.image.kind=patch",
            "model.image.patch_size=8",
            "model.image.depth=2",
            "model.text.depth=2",
            "model.mlp_ratio=2.0",
            "model.dim=128",
            "model.embed_dim=128",
        ],
    )
    vocab, batch = 600, args.batch
    ours, clip = our_model(config, vocab).to(DEVICE), clip_model(config, vocab).to(DEVICE)
    precision = resolve_precision(args.precision, DEVICE, training=True, width=config.model.dim)
    print(
        f"device {DEVICE}; CPU capability {torch.backends.cpu.get_cpu_capability()}; ours in "
        f"{precision.name} ({precision.reason}){', compiled' if args.compile else ', eager'}; "
        "CLIPModel fp32 eager"
    )
    if args.compile:
        ours.compile_parts()
    ours_params = sum(p.numel() for p in ours.encoders["image"].parameters()) + sum(
        p.numel() for p in ours.encoders["text"].parameters()
    )
    print(
        f"config: batch {batch}, image {config.data.image_size}px patch {config.model.image.patch_size}, "
        f"text length {args.text_length}, width {config.model.dim}, depth image {config.model.image.depth} / "
        f"text {config.model.text.depth}, MLP {int(config.model.dim * config.model.mlp_ratio)}, "
        f"threads {args.threads}, {args.repeats} repeats x {args.steps} steps (interleaved)"
    )
    print(
        f"parameters: trimodal towers {ours_params:,}; CLIPModel {sum(p.numel() for p in clip.parameters()):,}"
    )
    for lengths in ("full", "varied"):
        race(args, ours, clip, vocab, lengths, precision)
    if precision.dtype is not None:
        fp32 = resolve_precision("fp32", DEVICE)
        print("same precision (ours fp32):")
        race(args, ours, clip, vocab, "full", fp32)
    elif args.precision == "auto" and cpu_bf16_instructions():
        # auto kept fp32 on a CPU with a bf16 path: show what bf16 would have done.
        bf16 = resolve_precision("bf16", DEVICE)
        print("ours in bf16 (what auto declined):")
        race(args, ours, clip, vocab, "full", bf16)


def race(
    args: argparse.Namespace,
    ours: TriModalModel,
    clip: torch.nn.Module,
    vocab: int,
    lengths: str,
    precision: Precision,
) -> None:
    """Time both models' steps on one batch of images and captions; print the comparison."""
    batch, size = args.batch, ours.config.data.image_size
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, size, size, generator=generator).to(DEVICE)
    ids = torch.randint(4, vocab, (batch, args.text_length), generator=generator)
    low = args.text_length // 4 if lengths == "varied" else args.text_length
    length = torch.randint(low, args.text_length + 1, (batch,), generator=generator)
    length[0] = args.text_length  # the batch is as wide as --text-length
    mask = torch.arange(args.text_length)[None, :] < length[:, None]
    ids, mask = ids.masked_fill(~mask, 0).to(DEVICE), mask.to(DEVICE)
    ours_optimizer = torch.optim.AdamW(ours.parameters(), lr=1e-4)

    def our_step() -> None:
        with precision.autocast():
            image = ours.encode("image", images).pooled
            text = ours.encode_padded_text(ids, mask).pooled
            loss = info_nce(image.float(), text.float(), ours.temperature())
        ours_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        ours_optimizer.step()

    clip_optimizer = torch.optim.AdamW(clip.parameters(), lr=1e-4)
    attention_mask = mask.long()

    def clip_step() -> None:
        output = clip(
            input_ids=ids, pixel_values=images, attention_mask=attention_mask, return_loss=True
        )
        clip_optimizer.zero_grad(set_to_none=True)
        output.loss.backward()
        clip_optimizer.step()

    started = time.perf_counter()
    our_step()  # the first step compiles, when --compile
    first_step = time.perf_counter() - started
    for _ in range(2):  # warm-up
        our_step()
        clip_step()
    ours_times, clip_times = [], []
    for _ in range(args.repeats):
        ours_times.append(timed_steps(our_step, args.steps))
        clip_times.append(timed_steps(clip_step, args.steps))
    with FlopCounterMode(display=False) as counter:
        our_step()
    flops = counter.get_total_flops()
    peak = matmul_peak(args.threads)
    shapes_peak, gemm_count, peak_dtype = gemm_peak(our_step)
    ours_rate = [batch / t for t in ours_times]
    clip_rate = [batch / t for t in clip_times]
    median_ours, median_clip = statistics.median(ours_rate), statistics.median(clip_rate)
    print(
        f"captions {lengths} (mean length {float(length.float().mean()):.1f} of {args.text_length}):"
    )
    print(
        f"  trimodal  samples/s: median {median_ours:7.1f}  (min {min(ours_rate):.1f}, max {max(ours_rate):.1f})"
    )
    print(
        f"  CLIPModel samples/s: median {median_clip:7.1f}  (min {min(clip_rate):.1f}, max {max(clip_rate):.1f})"
    )
    target = "1.0x same precision" if precision.dtype is None else "1.5x at defaults"
    print(f"  ratio trimodal / CLIPModel: {median_ours / median_clip:.2f}x (target >= {target})")
    achieved = flops * median_ours / batch
    print(
        f"  trimodal step: {flops / 1e9:.1f} GFLOP; {achieved / 1e9:.1f} GFLOP/s = "
        f"{achieved / peak:.0%} of a 1024^3 fp32 matmul ({peak / 1e9:.1f} GFLOP/s), "
        f"MFU {achieved / shapes_peak:.0%} of the best peak at the step's own {gemm_count} "
        f"GEMM shapes ({peak_dtype}, {shapes_peak / 1e9:.1f} GFLOP/s; target >= 60%)"
    )
    steady = batch / median_ours
    print(
        f"  first step {first_step:.2f} s (steady {steady:.3f} s; compile ~{first_step - steady:.1f} s)"
    )


if __name__ == "__main__":
    main()
