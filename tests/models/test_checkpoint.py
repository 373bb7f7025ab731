"""Checkpoint files: what is written, run-folder resolution, and errors that name the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.models.test_trimodal import _model
from trimodal.data.tokenizer import train_tokenizer
from trimodal.models.checkpoint import TIED, checkpoint_source, read_checkpoint
from trimodal.models.trimodal import TriModalModel


@pytest.fixture
def saved(tmp_path: Path) -> tuple[TriModalModel, Path]:
    tokenizer = train_tokenizer(["a red star", "is there a red star?", "yes", "no"] * 5, 300)
    model = _model(vocab_size=tokenizer.vocab_size)
    return model, model.save_pretrained(tmp_path / "ckpt", tokenizer, {"epoch": 1})


def test_files_written(saved: tuple[TriModalModel, Path]) -> None:
    model, folder = saved
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json", "metrics.json", "model.safetensors", "tokenizer.json", "vocab.json"
    ]  # fmt: skip
    assert json.loads((folder / "metrics.json").read_text()) == {"epoch": 1}
    assert json.loads((folder / "vocab.json").read_text())["answers"] == ["yes", "no", "red"]
    weights = load_file(str(folder / "model.safetensors"))
    assert not set(weights) & set(TIED)
    assert set(weights) == set(model.state_dict()) - set(TIED)


def test_a_run_folder_resolves_to_its_latest_checkpoint(saved: tuple[TriModalModel, Path]) -> None:
    _, folder = saved
    run = folder.parent / "run"
    run.mkdir()
    folder.rename(run / "checkpoint")
    assert checkpoint_source(run) == run / "checkpoint"
    assert read_checkpoint(run).vocabulary.attributes == ["color:red", "shape:star"]


def test_missing_and_mismatched_files_are_named(saved: tuple[TriModalModel, Path]) -> None:
    _, folder = saved
    weights = load_file(str(folder / "model.safetensors"))
    save_file(weights | {"surprise": torch.zeros(1)}, str(folder / "model.safetensors"))
    with pytest.raises(ValueError, match=r"model\.safetensors does not match.*surprise"):
        TriModalModel.from_pretrained(folder)
    (folder / "vocab.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"vocab\.json is missing"):
        TriModalModel.from_pretrained(folder)
