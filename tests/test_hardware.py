"""Device and precision choice (:mod:`trimodal.hardware`), and the proof on a CPU-only machine
that a training step creates no tensor off the model's device.

The proof: run real training steps with torch's *default* device set to ``meta`` while the
model and data live on the CPU. A tensor created without ``device=`` lands on ``meta`` and the
first operation that mixes it with the model's tensors fails — exactly the tensors that would
stay on the CPU when the model is on a GPU.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from trimodal import hardware
from trimodal.cli.main import main
from trimodal.config import Config, load_config
from trimodal.data.manifest import load_manifest
from trimodal.eval.harness import HarnessSettings, evaluate_checkpoint
from trimodal.eval.report import write_report
from trimodal.generation.chat import Turn
from trimodal.hardware import (
    cpu_bf16_instructions,
    cpu_bf16_is_fast,
    resolve_device,
    resolve_precision,
)
from trimodal.inference import Model, Question
from trimodal.train import loop
from trimodal.train.distributed import DistributedContext
from trimodal.train.loop import Trainer, prepare_data, train
from trimodal.world.generate import WorldSummary

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


def test_devices_resolve_and_missing_ones_are_refused_in_a_sentence() -> None:
    assert resolve_device("cpu") == CPU
    assert resolve_device(" CPU ") == CPU
    expected_auto = "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.backends.mps.is_available():
        assert resolve_device("auto").type == expected_auto
    with pytest.raises(ValueError, match="expected one of auto, cpu, cuda, cuda:N, mps"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            resolve_device("cuda:1")
    else:
        with pytest.raises(ValueError, match="GPU"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
    if not torch.backends.mps.is_available():
        with pytest.raises(ValueError, match="no MPS device"):
            resolve_device("mps")


def test_precisions_resolve_to_autocast_dtypes() -> None:
    assert resolve_precision("fp32", CPU).dtype is None
    assert resolve_precision("bf16", CPU).dtype == torch.bfloat16
    assert resolve_precision("fp16", CPU).dtype == torch.float16
    with pytest.raises(ValueError, match="expected one of auto, fp32, bf16, fp16"):
        resolve_precision("int4", CPU)
    # A gradient scaler only for fp16 on a GPU.
    assert not resolve_precision("fp16", CPU).grad_scaler().is_enabled()
    with resolve_precision("bf16", CPU).autocast():
        assert (torch.ones(4, 4) @ torch.ones(4, 4)).dtype == torch.bfloat16
    with resolve_precision("fp32", CPU).autocast():
        assert (torch.ones(4, 4) @ torch.ones(4, 4)).dtype == torch.float32


def test_auto_precision_on_the_cpu_follows_its_instructions_and_a_measurement() -> None:
    chosen = resolve_precision("auto", CPU)
    fast, reason = cpu_bf16_is_fast()
    assert chosen.name == ("bf16" if fast else "fp32")
    assert reason in chosen.reason
    if not cpu_bf16_instructions():  # AVX2: bf16 is emulated, auto never takes it
        assert chosen.dtype is None and "no AVX512-BF16 or AMX" in reason
    else:
        assert "transformer block" in reason


def test_auto_on_a_bf16_cpu_follows_the_check_at_the_model_width_and_mode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An AMX host measured a narrow model's training step 0.64x slower in bf16 though a 512^3
    # matmul ran 2.6x faster: auto must follow a check at the model's width and mode.
    measured: list[tuple[int, bool]] = []

    def speedup(width: int, training: bool) -> float:
        measured.append((width, training))
        return 0.9 if (width, training) == (128, True) else 1.6

    monkeypatch.setattr(hardware, "cpu_bf16_instructions", lambda: ["AMX"])
    monkeypatch.setattr(hardware, "measured_bf16_speedup", speedup)
    hardware._cpu_bf16_verdict.cache_clear()
    try:
        training = resolve_precision("auto", CPU, training=True, width=128)
        inference = resolve_precision("auto", CPU, width=128)
        wide = resolve_precision("auto", CPU, training=True, width=512)
        again = resolve_precision("auto", CPU, training=True, width=128)
    finally:
        hardware._cpu_bf16_verdict.cache_clear()
    assert (training.name, inference.name, wide.name, again.name) == (
        "fp32",
        "bf16",
        "bf16",
        "fp32",
    )
    assert "width-128 transformer block's training step measured 0.90x" in training.reason
    assert "forward pass measured 1.60x" in inference.reason
    assert measured == [(128, True), (128, False), (512, True)]  # one check per width and mode


def test_the_bf16_check_times_a_real_block_both_ways_without_touching_the_global_rng() -> None:
    state = torch.get_rng_state()
    for training in (False, True):
        speedup = hardware.measured_bf16_speedup(64, training, tokens=128, repeats=2)
        assert math.isfinite(speedup) and speedup > 0
    assert torch.equal(torch.get_rng_state(), state)


def _every_stage_config() -> Config:
    overrides = [
        "train.vision.epochs=0.2",
        "train.align.epochs=0.2",
        "train.multitask.epochs=0.2",
        "train.reason.epochs=0.2",
        "train.generate.epochs=0.2",
        "train.bind.epochs=0.2",
        "train.reason.tasks=[vqa_typed,contrastive,transcribe]",
        "model.decoder.depth=1",
        "model.decoder.dim=32",
        "model.decoder.heads=2",
        "model.decoder.max_positions=320",
        "model.transcriber_depth=1",
        "model.grounding_bins=4",
        "data.augment=true",
        "data.augment_noise=0.1",
        "data.augment_typos=0.1",
        "data.audio_augment.probability=0.5",
        "train.multitask.question_pool=true",
        "train.generate.caption_variants=true",
    ]
    return load_config(ROOT / "configs" / "tiny.yaml", overrides)


def _on_meta(function: Callable[..., Any]) -> Callable[..., Any]:
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with torch.device("meta"):  # any tensor made without device= lands here and fails
            return function(*args, **kwargs)

    return wrapped


@pytest.fixture(scope="module")
def every_stage_run(
    tiny_world: tuple[Path, WorldSummary], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any], Trainer]:
    """All six stages (decoder, transcriber, augmentation on), every step and every stage's
    frozen-tower pass run with torch's default device set to ``meta``."""
    patch = pytest.MonkeyPatch()
    patch.setattr(Trainer, "_train_step", _on_meta(Trainer._train_step))
    patch.setattr(loop, "freeze_perception", _on_meta(loop.freeze_perception))
    try:
        config = _every_stage_config()
        data = prepare_data(config, tiny_world[0])
        run = tmp_path_factory.mktemp("every-stage") / "run"
        trainer = Trainer(config, data, run, DistributedContext(), False, CPU)
        summary = trainer.run(resume=False)
    finally:
        patch.undo()
    return run, summary, trainer


def test_training_steps_create_no_tensor_off_the_model_device(
    every_stage_run: tuple[Path, dict[str, Any], Trainer],
) -> None:
    _, summary, trainer = every_stage_run
    assert set(summary["stages"]) >= {"vision", "align", "multitask", "reason", "generate", "bind"}
    assert all(steps > 0 for steps in summary["stages"].values())
    assert all(p.device == CPU for p in trainer.model.parameters())


def test_inference_creates_no_tensor_off_the_model_device(
    every_stage_run: tuple[Path, dict[str, Any], Trainer], tiny_world: tuple[Path, WorldSummary]
) -> None:
    """ask, ask_batch, embed, transcribe_question, caption, chat, transcribe: each on the meta
    default device, its results on the CPU and equal to the same calls made normally."""
    run, _, _ = every_stage_run
    model = Model.from_pretrained(run)
    manifest = load_manifest(tiny_world[0] / "manifest.jsonl")
    sample = next(s for s in manifest.samples if s.image and s.audio)
    image, audio = sample.image, sample.audio
    assert image is not None and audio is not None

    def calls() -> list[object]:
        greedy = {"max_new_tokens": 6}
        return [
            model.ask(image, text="what color is the circle?", top=2),
            model.ask(image, audio=audio),
            model.ask_batch(
                [Question(image, text="how many shapes?"), Question(image, audio=audio)]
            ),
            model.embed_images([image]),
            model.embed_texts(["a red circle", "two shapes"]),
            model.embed_audio([audio]),
            model.transcribe_question(audio),
            model.caption(image, **greedy),
            model.transcribe(audio, **greedy),
            model.chat([Turn("user", "what is here?", image=image)], **greedy),
            model.chat(
                [Turn("user", "say something")],
                do_sample=True,
                generator=torch.Generator().manual_seed(3),
                **greedy,
            ),
        ]

    expected = calls()
    with torch.device("meta"):
        observed = calls()
    for want, got in zip(expected, observed, strict=True):
        if isinstance(want, torch.Tensor):
            assert isinstance(got, torch.Tensor) and got.device == CPU
            torch.testing.assert_close(got, want)
        else:
            assert got == want


def _first_losses(world: Path, out: Path, precision: str) -> tuple[list[float], dict[str, Any]]:
    config = load_config(
        ROOT / "configs" / "tiny.yaml", [f"train.precision={precision}", "train.multitask.epochs=0"]
    )
    summary = train(config, world, out, progress=False)
    records = [json.loads(line) for line in (out / "metrics.jsonl").open()]
    return [r["loss"]["total"] for r in records], summary


def test_bf16_training_keeps_fp32_weights_and_follows_fp32(
    tiny_world: tuple[Path, WorldSummary], tmp_path: Path
) -> None:
    """bf16 autocast (asked for, so it runs even where auto would not take it): the weights
    and optimizer moments stay fp32, and the first steps' losses track the fp32 run's."""
    fp32, _ = _first_losses(tiny_world[0], tmp_path / "fp32", "fp32")
    bf16, summary = _first_losses(tiny_world[0], tmp_path / "bf16", "bf16")
    assert summary["precision"].startswith("bf16") and summary["device"] == "cpu"
    assert len(bf16) == len(fp32) and all(math.isfinite(loss) for loss in bf16)
    assert abs(bf16[0] - fp32[0]) < 0.02 * fp32[0]  # same weights, same batch, rounding only
    assert bf16[-1] < bf16[0]  # it learns
    weights = load_file(str(tmp_path / "bf16" / "checkpoint" / "model.safetensors"))
    assert {value.dtype for value in weights.values()} == {torch.float32}


def test_bf16_inference_answers_as_fp32_does(tiny_run: Path, tiny_world: tuple[Path, Any]) -> None:
    manifest = load_manifest(tiny_world[0] / "manifest.jsonl")
    images = [s.image for s in manifest.split("test") if s.image is not None][:8]
    fp32 = Model.from_pretrained(tiny_run, device="cpu", precision="fp32")
    bf16 = Model.from_pretrained(tiny_run, device="cpu", precision="bf16")
    assert bf16.precision.dtype == torch.bfloat16
    want, got = fp32.embed_images(images), bf16.embed_images(images)
    assert got.dtype == torch.float32 and got.device == CPU
    assert torch.nn.functional.cosine_similarity(want, got).min() > 0.99


def test_cli_refuses_a_device_this_machine_lacks_in_one_line(
    tiny_run: Path, tiny_world: tuple[Path, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    manifest = load_manifest(tiny_world[0] / "manifest.jsonl")
    image = next(s.image for s in manifest.samples if s.image is not None)
    ask = ["ask", "--checkpoint", str(tiny_run), "--image", str(image), "--text", "what?"]
    assert main([*ask, "--device", "cuda"]) == 2
    error = capsys.readouterr().err.strip()
    assert "no CUDA GPU" in error and "Traceback" not in error and len(error.splitlines()) == 1
    assert main([*ask, "--device", "cpu", "--precision", "bf16"]) == 0


def test_the_evaluation_harness_creates_no_tensor_off_the_model_device(
    every_stage_run: tuple[Path, dict[str, Any], Trainer],
    tiny_world: tuple[Path, WorldSummary],
    tmp_path: Path,
) -> None:
    """The harness (retrieval, VQA, objects, zero-shot, generation, robustness curves with
    FGSM, Grad-CAM examples) and its report on the meta default device: the evaluated store
    moves to the model's device, so what it makes must be made there too; its metrics equal
    a normal run's."""
    run, _, _ = every_stage_run
    model = Model.from_pretrained(run)
    settings = HarnessSettings(robustness_scenes=12, examples=1)
    manifest = tiny_world[0] / "manifest.jsonl"
    with torch.no_grad():
        expected = evaluate_checkpoint(model, manifest, settings)
        with torch.device("meta"):
            observed = evaluate_checkpoint(model, manifest, settings)
            write_report(observed, tmp_path / "report")
    for metrics in (expected, observed):
        metrics.pop("seconds", None)
        metrics.get("timings", {}).clear()
    assert json.dumps(observed["splits"], sort_keys=True) == json.dumps(
        expected["splits"], sort_keys=True
    )
    assert (tmp_path / "report" / "metrics.json").is_file()
