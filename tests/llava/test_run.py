"""A llava run: a frozen LLM that learns to see through a projector from the image tower.

The LLM here is a tiny random Llama-family decoder with a real Hugging Face tokenizer (word
level, ChatML template, built in the test); the real SmolLM2 loads through the same path
(``LLMS``), and its own tests are in tests/generation/test_smollm2.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from trimodal.config import ConfigError
from trimodal.data.manifest import load_manifest
from trimodal.generation.chat import Turn
from trimodal.generation.smollm2 import SmolLM2
from trimodal.inference import Model
from trimodal.llava import run as llava_module
from trimodal.llava.run import (
    CAPTION_PROMPT,
    LlavaRun,
    LlavaSettings,
    fit_projector,
    stored_image_tokens,
    train_llava,
)
from trimodal.modules.decoder import DecoderConfig, DecoderLinear, DecoderLM

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def chat_tokenizer(words: list[str]) -> transformers.PreTrainedTokenizerFast:
    """A word-level tokenizer over ``words`` (and the prompts' words) with ChatML turns."""
    special = ["<pad>", "<|im_start|>", "<|im_end|>", "[UNK]"]
    prompts = f"{llava_module.SYSTEM} {CAPTION_PROMPT} user assistant system".lower()
    known = sorted({w for w in " ".join([*words, prompts]).lower().replace(".", " . ").split()})
    vocabulary = {token: i for i, token in enumerate([*special, *known])}
    core = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocabulary, unk_token="[UNK]"))
    core.normalizer = tokenizers.normalizers.Lowercase()
    core.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    core.decoder = tokenizers.decoders.WordPiece()
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|im_end|>",
        pad_token="<pad>",
        unk_token="[UNK]",
        additional_special_tokens=["<|im_start|>"],
    )
    fast.chat_template = CHATML
    return fast


def tiny_llm(tokenizer: transformers.PreTrainedTokenizerFast, seed: int = 0) -> SmolLM2:
    """A random 2-block Llama-family decoder (RMSNorm, rotary, SwiGLU, grouped-query)."""
    torch.manual_seed(seed)
    config = DecoderConfig(
        vocab_size=len(tokenizer),
        max_positions=128,
        dim=64,
        depth=2,
        heads=4,
        kv_heads=2,
        mlp_hidden=96,
        positions="rotary",
        norm="rms",
        mlp="swiglu",
        bias=False,
        tie_embeddings=False,
    )
    decoder = DecoderLM(config).eval()
    with torch.no_grad():
        for weight in decoder.parameters():
            if weight.dim() == 2:  # spread logits and attention (as tests/generation's tiny Llama)
                weight.normal_(0.0, 0.2)
    return SmolLM2(decoder, tokenizer)


@pytest.fixture(scope="module")
def world_captions(tiny_world: tuple[Path, object]) -> list[str]:
    manifest = load_manifest(tiny_world[0] / "manifest.jsonl")
    return [s.text for s in manifest.samples if s.text]


@pytest.fixture
def tiny_llms(
    world_captions: list[str], monkeypatch: pytest.MonkeyPatch
) -> transformers.PreTrainedTokenizerFast:
    """``LLMS["smollm2"]`` replaced by the tiny decoder (the same weights on every load)."""
    tokenizer = chat_tokenizer(world_captions)
    monkeypatch.setitem(llava_module.LLMS, "smollm2", lambda: tiny_llm(tokenizer))
    return tokenizer


def untrained_run(checkpoint: Path) -> LlavaRun:
    """A run over ``LLMS["smollm2"]`` with an untrained projector."""
    llm = llava_module.LLMS["smollm2"]()
    return LlavaRun(
        Model.from_pretrained(checkpoint),
        llm,
        llava_module.ImagePrefix(8, llm.model.config.dim),
        {"settings": llava_module.to_dict(LlavaSettings())},
    )


def test_training_scores_only_the_caption_and_its_end(
    tiny_run: Path, tiny_world: tuple[Path, object], tiny_llms: object
) -> None:
    """The first step's loss equals a naive one: the decoder over [image prefix | prompt |
    caption <|im_end|>], cross-entropy of each caption id and the end id from the state
    before it, nothing else scored."""
    manifest = tiny_world[0] / "manifest.jsonl"
    settings = LlavaSettings(steps=1, batch_size=3, lr=1e-9, warmup_steps=0, seed=5)
    run = train_llava(tiny_run, manifest, settings)
    samples = [s for s in load_manifest(manifest).split("train") if s.image and s.text]
    tokens = stored_image_tokens(run.checkpoint, samples)
    rows = torch.randint(len(samples), (3,), generator=torch.Generator().manual_seed(5)).tolist()
    tokenizer = run.llm.tokenizer
    prompt = run.prompt_ids([("user", CAPTION_PROMPT)])
    naive = []
    with torch.no_grad():
        for row in rows:
            caption = [*tokenizer(samples[row].text)["input_ids"], run.eos_id]
            ids = torch.tensor([prompt + caption])
            prefix = run.projector(tokens[row : row + 1])
            logits, _ = run.llm.model(ids, prefix)  # one row alone: no padding
            start = prefix.shape[1] + len(prompt)  # first caption position
            predicted = logits[0, start - 1 : start - 1 + len(caption)]
            naive.append(F.cross_entropy(predicted, torch.tensor(caption), reduction="sum"))
        total = sum(len(tokenizer(samples[r].text)["input_ids"]) + 1 for r in rows)
        expected = float(torch.stack(naive).sum()) / total
    assert run.info["final_loss"] == pytest.approx(expected, abs=1e-3)


def test_the_projector_learns_to_tell_two_images_apart(
    tiny_run: Path, tiny_world: tuple[Path, object]
) -> None:
    """With the LLM frozen, only the projector trains, and two images get their own words."""
    manifest = load_manifest(tiny_world[0] / "manifest.jsonl")
    first, second = [s for s in manifest.split("train") if s.image][:2]
    tokenizer = chat_tokenizer(["red circle", "blue star"])
    llm = tiny_llm(tokenizer)
    before = {k: v.clone() for k, v in llm.model.state_dict().items()}
    model = Model.from_pretrained(tiny_run)
    tokens = stored_image_tokens(model, [first, second])
    settings = LlavaSettings(steps=300, batch_size=8, lr=1e-2, warmup_steps=5)
    projector = llava_module.ImagePrefix(tokens.shape[2], llm.model.config.dim, True)
    run = LlavaRun(model, llm, projector, {"settings": llava_module.to_dict(settings)})
    losses = fit_projector(run, tokens, ["red circle", "blue star"])
    assert losses[-1] < 0.1 * losses[0]
    assert run.caption_tokens(tokens) == ["red circle", "blue star"]
    assert run.caption(first.image) == "red circle"
    # two images in one conversation: each grid projected on its own, in turn
    both = run.prompt(
        [
            Turn("user", "and this?", image=first.image),
            Turn("assistant", "red circle"),
            Turn("user", "", image=second.image),
        ]
    )
    assert both.prefix is not None and both.prefix.tokens.shape[1] == 2 * tokens.shape[1]
    torch.testing.assert_close(
        both.prefix.tokens[0, tokens.shape[1] :], run.prefix(tokens[1:]).tokens[0]
    )
    after = llm.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_a_saved_run_loads_and_captions_alike(
    tiny_run: Path, tiny_world: tuple[Path, object], tiny_llms: object, tmp_path: Path
) -> None:
    manifest = tiny_world[0] / "manifest.jsonl"
    run = train_llava(tiny_run, manifest, LlavaSettings(steps=3, batch_size=2))
    run.save(tmp_path / "llava")
    again = LlavaRun.load(tmp_path / "llava")
    image = next(s.image for s in load_manifest(manifest).split("test") if s.image)
    assert again.caption(image) == run.caption(image)
    info = json.loads((tmp_path / "llava" / "llava.json").read_text())
    assert info["checkpoint"] == str(tiny_run.resolve()) and info["settings"]["steps"] == 3


def test_a_run_loaded_in_bf16_generates_in_bf16(
    tiny_run: Path, tiny_world: tuple[Path, object], tiny_llms: object, tmp_path: Path
) -> None:
    """``--precision bf16`` reaches the LLM: its layers' products compute in bf16 (fp32 by
    default; the vocabulary head stays fp32 by design)."""
    manifest = tiny_world[0] / "manifest.jsonl"
    train_llava(tiny_run, manifest, LlavaSettings(steps=1, batch_size=2)).save(tmp_path / "run")
    image = next(s.image for s in load_manifest(manifest).split("test") if s.image)
    for precision, expected in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        run = LlavaRun.load(tmp_path / "run", precision=precision)
        seen: list[torch.dtype] = []
        projection = next(m for m in run.llm.model.modules() if isinstance(m, DecoderLinear))
        hook = projection.register_forward_hook(
            lambda _m, _i, out, seen=seen: seen.append(out.dtype)
        )
        run.caption(image, max_new_tokens=2)
        hook.remove()
        assert seen and set(seen) == {expected}, precision


def test_text_chat_is_the_llms_own(tiny_run: Path, tiny_llms: object) -> None:
    """No image, no prefix: the reply is what the frozen LLM says to the same messages."""
    run = untrained_run(tiny_run)
    llm = run.llm
    turns = [Turn("user", "red circle"), Turn("assistant", "blue"), Turn("user", "star")]
    plain = SmolLM2(llm.model, llm.tokenizer)
    messages = [{"role": "system", "content": llava_module.SYSTEM}]
    messages += [{"role": t.role, "content": t.text} for t in turns]
    ids = plain.prompt_ids(messages)
    from trimodal.generation.sampling import generate

    produced = generate(llm.model, torch.tensor([ids]), max_new_tokens=6, stop_tokens=(run.eos_id,))
    reply = [t for t in produced[0].tolist() if t != run.eos_id]
    assert (
        run.chat(turns, max_new_tokens=6)
        == llm.tokenizer.decode(reply, skip_special_tokens=True).strip()
    )


def test_bad_conversations_and_folders_are_named(
    tiny_run: Path, tiny_llms: object, tmp_path: Path
) -> None:
    run = untrained_run(tiny_run)
    with pytest.raises(ValueError, match="not audio"):
        run.chat([Turn("user", "what is said?", audio="clip.wav")])
    with pytest.raises(ValueError, match="end with a user turn"):
        run.chat([Turn("user", "hi"), Turn("assistant", "hello")])
    with pytest.raises(ValueError, match="turn 1 has no text and no image"):
        run.chat([Turn("user", " ")])
    with pytest.raises(FileNotFoundError, match="is not a llava run"):
        LlavaRun.load(tmp_path)
    with pytest.raises(ConfigError, match="llm must be one of"):
        LlavaSettings(llm="gpt-9")
    with pytest.raises(ConfigError, match="steps must be >= 1"):
        LlavaSettings(steps=0)


def test_cli_trains_evaluates_and_captions(
    tiny_run: Path,
    tiny_world: tuple[Path, object],
    tiny_llms: object,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from trimodal.cli.main import main

    out, world = tmp_path / "llava", str(tiny_world[0])
    args = ["llava", "train", "--checkpoint", str(tiny_run), "--world", world, "--out", str(out)]
    assert main([*args, "--steps", "2", "--set", "batch_size=2", "--quiet"]) == 0
    assert "trained the projector into smollm2" in capsys.readouterr().out
    figures = tmp_path / "figures.json"
    args = ["llava", "eval", "--checkpoint", str(out), "--world", world, "--scenes", "3"]
    assert main([*args, "--out", str(figures)]) == 0
    scored = json.loads(figures.read_text())
    assert scored["count"] == 3 and 0.0 <= scored["attributes"]["overall"] <= 1.0
    image = next(
        s.image for s in load_manifest(tiny_world[0] / "manifest.jsonl").samples if s.image
    )
    capsys.readouterr()
    assert main(["caption", "--checkpoint", str(out), "--image", str(image)]) == 0
    assert capsys.readouterr().out.strip() == LlavaRun.load(out).caption(image)
    assert (
        main(
            [
                "llava",
                "train",
                "--checkpoint",
                str(tiny_run),
                "--world",
                world,
                "--out",
                str(tmp_path / "x"),
                "--set",
                "nope=1",
            ]
        )
        == 2
    )
    assert "nope" in capsys.readouterr().err
