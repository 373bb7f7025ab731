"""Stage 3 on the tiny world: losses logged, frozen encoders, resume, and the generation API."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
import torch

from trimodal import Model
from trimodal.cli.main import main
from trimodal.config import load_config
from trimodal.generation.chat import CAPTION_PROMPT, TRANSCRIBE_PROMPT, Turn, render_ids
from trimodal.models.trimodal import TriModalModel
from trimodal.modules.layers import TokenSequence
from trimodal.train.loop import train
from trimodal.world.generate import WorldSummary

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "configs" / "tiny_generate.yaml"


@pytest.fixture(scope="module")
def generate_run(
    tiny_world: tuple[Path, WorldSummary], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """(run stopped at the end of stage 2, the same run finished after resuming)."""
    config = load_config(RECIPE)
    run = tmp_path_factory.mktemp("gen") / "run"
    summary = train(config, tiny_world[0], run, max_steps=10, progress=False)
    assert summary["global_step"] == 10  # align 5 + multitask 5 steps on 38 train scenes
    stage2 = tmp_path_factory.mktemp("gen") / "stage2"
    TriModalModel.from_pretrained(run).save_pretrained(stage2, Model.from_pretrained(run).tokenizer)
    train(config, tiny_world[0], run, resume=True, progress=False)
    return stage2, run


def test_generate_stage_logs_each_task(generate_run: tuple[Path, Path]) -> None:
    _, run = generate_run
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    generate = [r for r in records if r.get("stage") == "generate"]
    assert generate
    for task in ("caption", "transcribe", "vqa_typed", "vqa_spoken", "dialogue"):
        assert generate[-1]["loss"][task] > 0


def test_frozen_encoders_and_trained_decoder(generate_run: tuple[Path, Path]) -> None:
    stage2, run = generate_run
    before, after = TriModalModel.from_pretrained(stage2), TriModalModel.from_pretrained(run)
    old, new = before.state_dict(), after.state_dict()
    for name in old:
        changed = not torch.equal(old[name], new[name])
        assert changed == name.startswith(("projector.", "decoder.")), name
    assert after.decoder is not None
    assert after.decoder.lm_head.weight is after.decoder.token_embedding.weight


def test_a_checkpoint_in_the_old_decoder_layout_loads_but_does_not_resume(
    generate_run: tuple[Path, Path], tiny_world: tuple[Path, WorldSummary], tmp_path: Path
) -> None:
    """Decoder weights saved as nn.Linear ``weight [out, in]`` load transposed; resuming is refused."""
    import shutil

    from safetensors.torch import load_file, save_file

    _, run = generate_run
    old = tmp_path / "old"
    shutil.copytree(run, old)
    weights_path = old / "checkpoint" / "model.safetensors"
    current = load_file(str(weights_path))
    legacy = {
        (name.removesuffix("kernel") + "weight" if name.endswith(".kernel") else name): (
            tensor.t().contiguous() if name.endswith(".kernel") else tensor
        )
        for name, tensor in current.items()
    }
    assert any(name.startswith("decoder.") and name.endswith(".mlp.fc.weight") for name in legacy)
    save_file(legacy, str(weights_path))
    loaded, expected = TriModalModel.from_pretrained(old), TriModalModel.from_pretrained(run)
    for name, tensor in expected.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    with pytest.raises(ValueError, match="can't be resumed"):
        train(load_config(RECIPE), tiny_world[0], old, resume=True, progress=False)


def naive_greedy(model: Model, prompt: str, steps: int, **conditioning: torch.Tensor) -> str:
    """Reference decoding: a full forward (no cache) and argmax, one token at a time."""
    network, tokenizer = model.network, model.tokenizer
    assert network.decoder is not None
    ids, _ = render_ids(tokenizer, [("user", prompt)], open_reply=True)
    produced: list[int] = []
    with torch.no_grad():
        for _ in range(steps):
            logits, _ = network.decoder(torch.tensor([ids + produced]), **conditioning)
            token = int(logits[0, -1].argmax())
            if token == tokenizer.eos_id:
                break
            produced.append(token)
    return tokenizer.decode(produced).strip()


def test_caption_is_greedy_decoding(
    generate_run: tuple[Path, Path], tiny_world: tuple[Path, WorldSummary]
) -> None:
    model = Model.from_pretrained(generate_run[1])
    image = tiny_world[0] / "images" / "000000.png"
    caption = model.caption(image, max_new_tokens=6)
    with torch.no_grad():
        prefix = model.network.decoder_prefix(("image", model._images([image]).sequence()))
    assert caption == naive_greedy(model, CAPTION_PROMPT, 6, prefix=prefix.tokens)


def test_chat_and_cli(
    generate_run: tuple[Path, Path],
    tiny_world: tuple[Path, WorldSummary],
    capsys: pytest.CaptureFixture[str],
) -> None:
    run, world = generate_run[1], tiny_world[0]
    model = Model.from_pretrained(run)
    image, audio = world / "images" / "000001.png", world / "audio" / "000001_question.wav"
    turns = [Turn("user", "what color is the star?", image=image)]
    first = model.chat(turns, max_new_tokens=4)
    second = model.chat(
        [*turns, Turn("assistant", first), Turn("user", audio=audio)], max_new_tokens=4
    )
    assert isinstance(second, str)
    assert (
        main(["caption", "--checkpoint", str(run), "--image", str(image), "--max-new-tokens", "4"])
        == 0
    )
    assert capsys.readouterr().out.strip() == model.caption(image, max_new_tokens=4)
    assert (
        main(
            ["transcribe", "--checkpoint", str(run), "--audio", str(audio), "--max-new-tokens", "4"]
        )
        == 0
    )
    assert capsys.readouterr().out.strip() == model.transcribe(audio, max_new_tokens=4)
    from trimodal.cli.generate import build_chat_args, run_chat

    sink = StringIO()
    script = StringIO(f"/image {image}\nwhat color is the star?\n/audio {audio}\n\n/reset\n/quit\n")
    assert run_chat(build_chat_args(run, max_new_tokens=4), script, sink) == 0
    lines = sink.getvalue().splitlines()
    assert sum(line.startswith("assistant: ") for line in lines) == 2
    assert "(conversation cleared)" in lines
    assert lines[lines.index(f"(image attached: {image})") + 1] == f"assistant: {first}"


def test_generation_needs_a_decoder(tiny_run: Path) -> None:
    with pytest.raises(ValueError, match="no decoder"):
        Model.from_pretrained(tiny_run).caption("x.png")


def test_decoder_parts_name_their_modality(generate_run: tuple[Path, Path]) -> None:
    network = Model.from_pretrained(generate_run[1]).network
    tokens = TokenSequence(torch.randn(1, 4, network.config.model.dim), torch.ones(1, 4).bool())
    assert network.decoder_prefix(("image", tokens), ("audio", tokens)).tokens.shape[1] == 8
    with pytest.raises(ValueError, match="decoder parts are"):
        network.decoder_prefix(("video", tokens))


@pytest.fixture(scope="module")
def cross_run(
    tiny_world: tuple[Path, WorldSummary], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The tiny generate recipe with a cross-attention decoder, trained to the end."""
    config = load_config(RECIPE, ["model.decoder.conditioning=cross_attention"])
    run = tmp_path_factory.mktemp("gen_cross") / "run"
    train(config, tiny_world[0], run, progress=False)
    return run


def test_cross_attention_transcribe_is_greedy_decoding(
    cross_run: Path, tiny_world: tuple[Path, WorldSummary]
) -> None:
    model = Model.from_pretrained(cross_run)
    network = model.network
    assert network.decoder is not None and network.decoder.config.cross_attention
    audio = tiny_world[0] / "audio" / "000002_caption.wav"
    transcript = model.transcribe(audio, max_new_tokens=6)
    with torch.no_grad():  # the reference re-reads the memory with a full forward every step
        memory = network.decoder_prefix(("audio", model._audio([audio]).sequence()))
    expected = naive_greedy(
        model, TRANSCRIBE_PROMPT, 6, memory=memory.tokens, memory_mask=memory.mask
    )
    assert transcript == expected
    assert isinstance(
        model.chat(
            [Turn("user", "what is it?", image=tiny_world[0] / "images" / "000002.png")],
            max_new_tokens=3,
        ),
        str,
    )


def test_task_weights_make_a_weighted_mean(
    tiny_world: tuple[Path, WorldSummary], tmp_path: Path
) -> None:
    overrides = [
        "train.align.epochs=0",
        "train.multitask.epochs=0",
        "train.generate.epochs=0.5",
        "train.generate.task_weights={transcribe: 3.0, dialogue: 0.0}",
    ]
    train(load_config(RECIPE, overrides), tiny_world[0], tmp_path / "run", progress=False)
    records = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    generate = [r for r in records if r.get("stage") == "generate"]
    assert generate
    for record in generate:
        weights, losses = record["weight"], record["loss"]
        assert weights == pytest.approx(
            {
                "caption": 1 / 6,
                "transcribe": 3 / 6,
                "vqa_typed": 1 / 6,
                "vqa_spoken": 1 / 6,
                "dialogue": 0.0,
            }
        )
        expected = sum(weights[task] * losses[task] for task in weights)
        assert losses["total"] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ("{speak: 1.0}", "unknown task"),
        ("{caption: -1.0}", ">= 0"),
        ("{caption: 0, transcribe: 0, vqa_typed: 0, vqa_spoken: 0, dialogue: 0}", "positive sum"),
    ],
)
def test_bad_task_weights_are_clear_errors(
    tiny_world: tuple[Path, WorldSummary], tmp_path: Path, weights: str, message: str
) -> None:
    config = load_config(RECIPE, [f"train.generate.task_weights={weights}"])
    with pytest.raises(ValueError, match=f"train.generate.task_weights.*{message}|{message}"):
        train(config, tiny_world[0], tmp_path / "run", progress=False)


def test_stage_3_trains_the_caption_grounding_head(
    tiny_world: tuple[Path, WorldSummary], tmp_path: Path
) -> None:
    grounded = [
        "train.multitask.epochs=0",
        "train.generate.caption_variants=true",
        "train.generate.grounding_weight=1.0",
        "model.decoder.grounding_bins=4",
    ]
    config = load_config(RECIPE, grounded)
    train(config, tiny_world[0], tmp_path / "align", max_steps=5, progress=False)  # align only
    train(config, tiny_world[0], tmp_path / "all", progress=False)
    before, after = (TriModalModel.from_pretrained(tmp_path / n) for n in ("align", "all"))
    assert before.caption_grounding is not None and after.caption_grounding is not None
    frozen = before.encoders["image"].state_dict(), after.encoders["image"].state_dict()
    assert all(torch.equal(frozen[0][name], frozen[1][name]) for name in frozen[0])
    assert not torch.equal(before.caption_grounding.weight, after.caption_grounding.weight)
