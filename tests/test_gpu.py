"""On a CUDA GPU (skipped elsewhere; ``benchmarks/gpu_check.sh`` runs them): training and
every inference verb on the device, bf16 and fp16 autocast, and agreement with the CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from trimodal.config import load_config
from trimodal.data.manifest import load_manifest
from trimodal.generation.chat import Turn
from trimodal.hardware import resolve_device, resolve_precision
from trimodal.inference import Model, Question
from trimodal.train.loop import train

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.gpu

GENERATING = [
    "train.generate.epochs=1",
    "model.decoder.depth=1",
    "model.decoder.dim=32",
    "model.decoder.heads=2",
    "model.decoder.max_positions=320",
    "model.transcriber_depth=1",
    "data.augment=true",
    "data.audio_augment.probability=0.5",
]


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_training_on_the_gpu(tiny_world: tuple[Path, Any], tmp_path: Path, precision: str) -> None:
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    config = load_config(
        ROOT / "configs" / "tiny.yaml",
        [*GENERATING, "train.device=cuda", f"train.precision={precision}"],
    )
    summary = train(config, tiny_world[0], tmp_path / precision, progress=False)
    assert summary["device"].startswith("cuda") and summary["precision"].startswith(precision)
    weights = load_file(str(tmp_path / precision / "checkpoint" / "model.safetensors"))
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in weights.values())


def test_auto_picks_the_gpu_and_a_half_precision() -> None:
    device = resolve_device("auto")
    assert device.type == "cuda"
    assert resolve_precision("auto", device).name in ("bf16", "fp16")


def test_inference_on_the_gpu_agrees_with_the_cpu(
    tiny_world: tuple[Path, Any], tmp_path: Path
) -> None:
    config = load_config(ROOT / "configs" / "tiny.yaml", GENERATING)
    train(config, tiny_world[0], tmp_path / "run", progress=False)
    on_cpu = Model.from_pretrained(tmp_path / "run", device="cpu")
    on_gpu = Model.from_pretrained(tmp_path / "run", device="cuda")
    assert on_gpu.device.type == "cuda"
    manifest = load_manifest(tiny_world[0] / "manifest.jsonl")
    sample = next(s for s in manifest.samples if s.image and s.audio)
    image, audio = sample.image, sample.audio
    assert image is not None and audio is not None
    for model in (on_cpu, on_gpu):
        model.answers = [  # type: ignore[attr-defined]
            model.ask(image, text="what color is the circle?")[0][0],
            model.ask_batch([Question(image, audio=audio)])[0][0][0],
            model.caption(image, max_new_tokens=6),
            model.chat([Turn("user", "hi", image=image)], max_new_tokens=6),
            model.transcribe_question(audio),
        ]
    assert on_gpu.answers == on_cpu.answers  # type: ignore[attr-defined]
    want, got = on_cpu.embed_images([image]), on_gpu.embed_images([image])
    assert got.device.type == "cpu"
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    sampled = [
        m.chat(
            [Turn("user", "say")],
            max_new_tokens=6,
            do_sample=True,
            generator=torch.Generator().manual_seed(1),
        )
        for m in (on_cpu, on_gpu)
    ]
    assert sampled[0] == sampled[1]  # a CPU generator draws the same tokens on every device


def test_the_harness_on_the_gpu_matches_the_cpu(
    tiny_world: tuple[Path, Any], tmp_path: Path
) -> None:
    from trimodal.eval.harness import HarnessSettings, evaluate_checkpoint

    config = load_config(ROOT / "configs" / "tiny.yaml", GENERATING)
    train(config, tiny_world[0], tmp_path / "run", progress=False)
    settings = HarnessSettings(robustness_scenes=12, examples=1)
    manifest = tiny_world[0] / "manifest.jsonl"
    results = []
    for device in ("cpu", "cuda"):
        with torch.no_grad():
            model = Model.from_pretrained(tmp_path / "run", device=device)
            results.append(evaluate_checkpoint(model, manifest, settings)["splits"]["test"])
    on_cpu, on_gpu = results
    assert on_gpu["vqa"]["typed"]["accuracy"] == pytest.approx(
        on_cpu["vqa"]["typed"]["accuracy"], abs=0.03
    )
    assert on_gpu.keys() == on_cpu.keys()
