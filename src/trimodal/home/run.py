"""A trained home run: the model, its tokenizer and recipe (with the policy), and answering
one command about one room.

Layout: ``RUN/config.json`` (the model config and the recipe), ``RUN/model.safetensors``,
``RUN/tokenizer.json``, ``RUN/metrics.json``; written atomically as one folder.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from safetensors.torch import load_file

from trimodal.config import from_dict, to_dict
from trimodal.data.tensors import tokenized
from trimodal.data.tokenizer import TextTokenizer, train_tokenizer
from trimodal.data.transforms import ImageTransform, LogMel, load_audio
from trimodal.home.data import MAX_COMMAND_SECONDS, home_tensors
from trimodal.home.evaluate import evaluate_home, outcomes_of
from trimodal.home.model import HomeInputs, HomeModel, HomeModelConfig
from trimodal.home.recipe import HomeRecipe
from trimodal.home.room import ROOM_SIZE
from trimodal.home.train import train_home
from trimodal.home.world import load_home_world
from trimodal.io import atomic_write_text
from trimodal.models.checkpoint import save_weights, write_directory_atomically


@dataclass
class HomeRun:
    """What answering needs."""

    model: HomeModel
    tokenizer: TextTokenizer
    recipe: HomeRecipe

    @property
    def device(self) -> torch.device:
        """Where the model is."""
        return self.model.device_queries.device

    def answer(
        self,
        image: str | os.PathLike[str] | Image.Image | None,
        text: str | None = None,
        audio: str | os.PathLike[str] | torch.Tensor | None = None,
    ) -> dict[str, Any]:
        """The outcome JSON (after the policy) for one room (a path or a decoded image;
        ``None``: camera off) and one command, typed or spoken (exactly one of ``text`` and
        ``audio``: a path, or a 16 kHz waveform ``[N]``)."""
        if (text is None) == (audio is None):
            raise ValueError("give the command as text or as audio (exactly one)")
        images = None
        if image is not None:
            images = ImageTransform(size=ROOM_SIZE)(image).unsqueeze(0).to(self.device)
        if text is not None:
            if not text.strip():
                raise ValueError("the command text is empty")
            ids, mask = tokenized(self.tokenizer, [text], self.recipe.max_length)
            inputs = HomeInputs(images, ids=ids.to(self.device), mask=mask.to(self.device))
        else:
            assert audio is not None
            waveform = (
                audio
                if isinstance(audio, torch.Tensor)
                else load_audio(audio, max_seconds=MAX_COMMAND_SECONDS)
            )
            mels = LogMel()(waveform.float()).unsqueeze(0)
            mask = torch.ones(1, mels.shape[-1], dtype=torch.bool)
            inputs = HomeInputs(images, mels=mels.to(self.device), mel_mask=mask.to(self.device))
        with torch.no_grad():
            outputs = self.model.eval()(inputs)
        outcome = outcomes_of(outputs.slots.float().cpu(), outputs.values.float().cpu())[0]
        return self.recipe.policy().apply(outcome).to_dict()

    def save(self, out: str | os.PathLike[str], metrics: dict[str, Any]) -> Path:
        """Write the run folder atomically."""

        def write(staging: Path) -> None:
            config = {"model": to_dict(self.model.config), "recipe": to_dict(self.recipe)}
            atomic_write_text(staging / "config.json", json.dumps(config, indent=2) + "\n")
            save_weights(self.model, staging / "model.safetensors")
            self.tokenizer.save(staging / "tokenizer.json")
            atomic_write_text(staging / "metrics.json", json.dumps(metrics, indent=2) + "\n")

        return write_directory_atomically(Path(out), write)

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: torch.device) -> HomeRun:
        """Load a run written by :meth:`save`."""
        folder = Path(path)
        if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
            raise FileNotFoundError(
                f"{folder} is not a home run (no config.json / model.safetensors); train one "
                "with trimodal home train"
            )
        config = json.loads((folder / "config.json").read_text())
        if "recipe" not in config or "model" not in config:
            raise FileNotFoundError(f"{folder}/config.json is not a home run's config")
        model = HomeModel(from_dict(HomeModelConfig, config["model"]))
        model.load_state_dict(load_file(str(folder / "model.safetensors")))
        recipe = HomeRecipe.from_dict(config["recipe"], f"{folder}/config.json")
        return cls(model.to(device).eval(), TextTokenizer.load(folder / "tokenizer.json"), recipe)


def train_home_run(
    world: str | os.PathLike[str],
    recipe: HomeRecipe,
    device: torch.device,
    report: Callable[[str], None] | None = None,
) -> tuple[HomeRun, dict[str, Any]]:
    """Train on the world's ``train`` rows and score on ``test``.

    Returns:
        the run and ``{"test": evaluate_home(...), "train_seconds", "epochs_loss"}``.
    """
    root = Path(world)
    rows = load_home_world(root)
    train_rows = [r for r in rows if r["split"] == "train"]
    test_rows = [r for r in rows if r["split"] == "test"]
    if not train_rows or not test_rows:
        raise ValueError(f"{root}: a home world needs train and test rows")
    tokenizer = train_tokenizer([r["text"] for r in train_rows], vocab_size=600)
    train = home_tensors(train_rows, root, tokenizer, recipe.max_length)
    test = home_tensors(test_rows, root, tokenizer, recipe.max_length)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        config = HomeModelConfig(tokenizer.vocab_size, dim=recipe.dim, depth=recipe.depth)
        config.text.max_length = recipe.max_length
        model = HomeModel(config)
        started = time.perf_counter()
        losses = train_home(model, train, recipe, device, report)
        seconds = time.perf_counter() - started
    metrics = {
        "test": evaluate_home(model, test, recipe.policy(), device),
        "train_seconds": round(seconds, 1),
        "epoch_losses": losses,
        "rows": {"train": len(train_rows), "test": len(test_rows)},
    }
    return HomeRun(model, tokenizer, recipe), metrics
