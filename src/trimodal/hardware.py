"""Where a model runs and in what precision: ``--device`` and ``--precision`` made concrete.

:func:`resolve_device` turns ``auto|cpu|cuda[:N]|mps`` into a :class:`torch.device` (refusing,
in one sentence, a device this machine lacks); :func:`resolve_precision` turns
``auto|fp32|bf16|fp16`` into the dtype autocast computes in (``None``: plain fp32). ``auto``
picks bf16 only where it is fast: CUDA devices that support it, and CPUs whose instruction set
has a bf16 matrix path (AVX512-BF16 or AMX) *and* on which a short measured check finds a
transformer block of the model's own width faster under bf16 autocast than in fp32. On an AVX2
CPU bf16 is emulated and many times slower, so ``auto`` stays in fp32 there. On an AMX CPU a
large matmul is 2-3x faster in bf16, but a narrow model's step is not: autocast casts every
weight and activation around small matmuls, and the default recipe's width-128 step ran 0.64x
fp32's speed there (docs/performance.md), so the check times the block, not a matmul. Weights
and optimizer state stay fp32 in every mode (autocast casts per operation); fp16 adds a
gradient scaler on GPUs.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch

DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
BF16_SPEEDUP_NEEDED = 1.3
"""``auto`` takes bf16 on a CPU only if its measured block is at least this much faster."""
CHECK_WIDTH = 512
"""The block width :func:`cpu_bf16_is_fast` measures when the caller names no model width."""


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA, else MPS, else CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.

    Raises:
        ValueError: an unknown name, or a device this machine (or this torch build) lacks.
    """
    text = name.strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "mps":
        if not _mps_available():
            raise ValueError("--device mps: this machine (or this torch build) has no MPS device")
        return torch.device("mps")
    if text == "cuda" or text.startswith("cuda:"):
        return _cuda_device(name, text)
    raise ValueError(f"--device {name!r}: expected one of {', '.join(DEVICES)}")


def _cuda_device(name: str, text: str) -> torch.device:
    if not torch.cuda.is_available():
        raise ValueError(
            f"--device {name}: this torch sees no CUDA GPU (torch.cuda.is_available() is "
            "False); use --device cpu or auto"
        )
    index_text = text.partition(":")[2] or str(torch.cuda.current_device())
    if not index_text.isdigit():
        raise ValueError(f"--device {name!r}: the GPU index must be a number (cuda:0)")
    index, count = int(index_text), torch.cuda.device_count()
    if index >= count:
        raise ValueError(f"--device {name}: this machine has {count} GPU(s), cuda:0-{count - 1}")
    return torch.device("cuda", index)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


@dataclass(frozen=True)
class Precision:
    """What autocast computes in on ``device``: ``dtype`` None is plain fp32."""

    name: str
    device: torch.device
    dtype: torch.dtype | None
    reason: str
    """Why this precision (for ``auto``: what the check found), for logs and run summaries."""

    def autocast(self) -> AbstractContextManager[object]:
        """Autocast to :attr:`dtype` on the device's type (a no-op for fp32)."""
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A gradient scaler, enabled only for fp16 on a GPU (bf16 and fp32 need none)."""
        enabled = self.dtype == torch.float16 and self.device.type == "cuda"
        return torch.amp.GradScaler(self.device.type, enabled=enabled)


def resolve_precision(
    name: str, device: torch.device, training: bool = False, width: int = CHECK_WIDTH
) -> Precision:
    """``auto``, ``fp32``, ``bf16`` or ``fp16`` on ``device``; see the module docstring.
    ``width`` is the model's width, which ``auto``'s CPU check measures at (a forward pass,
    or a training step when ``training``).

    Raises:
        ValueError: an unknown name, bf16 on a CUDA GPU without native bf16, or fp16
            training off CUDA (only there does a gradient scaler keep fp16 gradients alive).
    """
    text = name.strip().lower()
    if text not in PRECISIONS:
        raise ValueError(f"precision {name!r}: expected one of {', '.join(PRECISIONS)}")
    if text == "fp16" and training and device.type != "cuda":
        raise ValueError(
            f"precision fp16: training in fp16 needs a CUDA GPU's gradient scaler; on "
            f"{device.type} use bf16 or fp32"
        )
    if text == "auto":
        return _auto_precision(device, training, width)
    if text == "fp32":
        return Precision("fp32", device, None, "asked for")
    if text == "bf16" and device.type == "cuda" and not _native_bf16():
        raise ValueError(f"precision bf16: {device} does not support bf16; use fp16 or fp32")
    return Precision(text, device, _DTYPES[text], "asked for")


def _auto_precision(device: torch.device, training: bool, width: int) -> Precision:
    if device.type == "cuda":
        if _native_bf16():
            return Precision("bf16", device, torch.bfloat16, "auto: the GPU supports bf16")
        return Precision("fp16", device, torch.float16, "auto: GPU without bf16, fp16 + scaler")
    if device.type == "cpu":
        fast, reason = cpu_bf16_is_fast(width, training)
        if fast:
            return Precision("bf16", device, torch.bfloat16, f"auto: {reason}")
        return Precision("fp32", device, None, f"auto: {reason}")
    return Precision("fp32", device, None, f"auto: fp32 on {device.type}")


def _native_bf16() -> bool:
    """The current GPU computes in bf16 natively (Ampere on); emulated bf16 (V100, T4) is not
    counted, so ``auto`` takes fp16 with a scaler there."""
    return bool(torch.cuda.is_bf16_supported(including_emulation=False))


def cpu_bf16_instructions() -> list[str]:
    """The CPU's bf16 matrix instruction sets torch can use (``AVX512-BF16``, ``AMX``)."""
    found = []
    if torch.cpu._is_avx512_bf16_supported():
        found.append("AVX512-BF16")
    if torch.cpu._is_amx_tile_supported():
        found.append("AMX")
    return found


def cpu_bf16_is_fast(width: int = CHECK_WIDTH, training: bool = False) -> tuple[bool, str]:
    """Whether bf16 pays on this CPU for a model ``width`` wide: a bf16 instruction set, then a
    measured check (:func:`measured_bf16_speedup`, well under a second, once per process,
    width and mode). Returns the verdict and a sentence saying why."""
    return _cpu_bf16_verdict(width, training)


@functools.cache
def _cpu_bf16_verdict(width: int, training: bool) -> tuple[bool, str]:
    capability = torch.backends.cpu.get_cpu_capability()
    instructions = cpu_bf16_instructions()
    if not instructions:
        return False, f"this CPU ({capability}) has no AVX512-BF16 or AMX, bf16 would be emulated"
    speedup = measured_bf16_speedup(width, training)
    fast = speedup >= BF16_SPEEDUP_NEEDED
    verdict = "bf16" if fast else "fp32"
    work = "training step" if training else "forward pass"
    return fast, (
        f"{'+'.join(instructions)}, a width-{width} transformer block's {work} measured "
        f"{speedup:.2f}x fp32's speed in bf16 -> {verdict}"
    )


def measured_bf16_speedup(
    width: int = CHECK_WIDTH,
    training: bool = False,
    tokens: int | None = None,
    repeats: int = 5,
) -> float:
    """fp32 time over bf16-autocast time of one pre-norm transformer block (the model's own
    :class:`~trimodal.modules.layers.TransformerStack`, MLP ratio 2) at ``width`` on ``tokens``
    tokens ``[tokens // 64, 64, width]``: a training step's forward and backward on 1024
    tokens when ``training`` (a batch), else a forward pass on 64 (one request, as a server
    and ``ask`` run; batched evaluation gains a little more from bf16 than this says).
    Interleaved, best of ``repeats`` after one warm-up of each. It counts what a model of that
    width pays under autocast (weight casts, elementwise work between the matmuls), which a
    matmul alone hides."""
    if tokens is None:
        tokens = 1024 if training else 64
    from trimodal.modules.layers import TransformerStack

    generator = torch.Generator().manual_seed(0)
    heads = max(1, width // 64)
    with torch.random.fork_rng(devices=[]):  # the block's init leaves a run's seed alone
        block = TransformerStack(width, depth=1, heads=heads, mlp_ratio=2.0)
    block.requires_grad_(training)
    inputs = torch.randn(max(1, tokens // 64), 64, width, generator=generator)

    def run(use_bf16: bool) -> None:
        autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16)
        with autocast, torch.set_grad_enabled(training):
            out = block(inputs)
        if training:
            out.float().square().mean().backward()

    fp32, bf16 = interleaved_best_seconds(lambda: run(False), lambda: run(True), repeats)
    return fp32 / max(bf16, 1e-9)


def interleaved_best_seconds(
    first: Callable[[], object], second: Callable[[], object], repeats: int
) -> tuple[float, float]:
    """Best wall time of each of two pieces of work run alternately ``repeats`` times, after
    one warm-up pair (the measured checks' timing: alternation shares a noisy host's slow
    moments between the two)."""
    times: tuple[list[float], list[float]] = ([], [])
    for attempt in range(repeats + 1):
        for kept, work in zip(times, (first, second), strict=True):
            started = time.perf_counter()
            work()
            if attempt:
                kept.append(time.perf_counter() - started)
    return min(times[0]), min(times[1])


def on_host() -> AbstractContextManager[object]:
    """Make tensors created without ``device=`` land on the CPU inside the block, for code that
    works on the host by design (augmentation with a CPU generator). A no-op unless someone
    changed torch's default device: the device context is a Python hook on every torch call,
    which costs a per-clip augmentation loop a third of a training step."""
    if torch.get_default_device().type == "cpu":
        return nullcontext()
    return torch.device("cpu")


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (timing; a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
