"""A pretrained LLM that captions and chats about images through a trimodal image tower.

LLaVA's recipe at the world's scale: a trained trimodal checkpoint's image tower (frozen) reads
the image; an :class:`~trimodal.llava.projector.ImagePrefix`, the only part that trains, maps
its tokens into the LLM's input space, placed before the chat-templated conversation; the LLM
(SmolLM2-135M-Instruct, frozen, so its text chat is unchanged) writes the reply. The run folder
holds the projector, the settings and the checkpoint's path (``llava.json``); the LLM's weights
and tokenizer come from its installed package.

    run = train_llava("runs/default", "runs/world/manifest.jsonl", LlavaSettings())
    run.save("runs/llava")
    LlavaRun.load("runs/llava").caption("scene.png")
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trimodal.config import ConfigError, from_dict, to_dict
from trimodal.data.manifest import Sample, load_manifest
from trimodal.generation.chat import ImageSource, Turn
from trimodal.generation.conditioning import generate_replies, lm_loss
from trimodal.generation.smollm2 import SmolLM2, load_smollm2
from trimodal.inference import Model
from trimodal.io import atomic_write_text
from trimodal.llava.projector import ImagePrefix
from trimodal.models.checkpoint import save_weights, write_directory_atomically
from trimodal.modules.layers import TokenSequence
from trimodal.train.schedule import adamw_warmup_cosine, clipped_step

LLMS: dict[str, Callable[[], SmolLM2]] = {"smollm2": load_smollm2}
"""Pretrained LLMs a run can sit on, by name: each loads its decoder and tokenizer."""

SYSTEM = "You describe images."
"""The system turn of every conversation (a short one: SmolLM2's default is 20 tokens)."""
CAPTION_PROMPT = "Describe the image."
"""The user's words when a turn carries an image and no text (what training asked)."""
RUN_FILE = "llava.json"
PROJECTOR_FILE = "projector.safetensors"


@dataclass
class LlavaSettings:
    """How the projector trains (``trimodal llava train --set KEY=VALUE``)."""

    llm: str = "smollm2"
    steps: int = 200
    batch_size: int = 16
    lr: float = 3e-3
    warmup_steps: int = 10
    positions: bool = True
    """Add the 2-D sin/cos grid table to the image tokens before the projector."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.llm not in LLMS:
            raise ConfigError(f"llm must be one of {sorted(LLMS)}, got {self.llm!r}")
        for name in ("steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.warmup_steps < 0:
            raise ConfigError(f"lr must be > 0 and warmup_steps >= 0, got {self}")


@dataclass(frozen=True)
class LlavaPrompt:
    """A conversation for the LLM: chat-template ``ids`` after an optional image ``prefix``
    (projected image tokens ``[1, P, llm_dim]``)."""

    ids: list[int]
    prefix: TokenSequence | None

    @property
    def length(self) -> int:
        """Positions it takes (prefix and ids)."""
        return len(self.ids) + (0 if self.prefix is None else self.prefix.tokens.shape[1])


@dataclass
class LlavaRun:
    """The checkpoint whose image tower sees, the projector, and the LLM that writes."""

    checkpoint: Model
    llm: SmolLM2
    projector: ImagePrefix
    info: dict[str, Any]

    @property
    def settings(self) -> LlavaSettings:
        """The settings the run was trained with."""
        return from_dict(LlavaSettings, self.info["settings"])

    @property
    def eos_id(self) -> int:
        """The LLM's end of a turn (SmolLM2: ``<|im_end|>``)."""
        return int(self.llm.tokenizer.eos_token_id)

    def prompt_ids(self, turns: Sequence[tuple[str, str]], system: str = "") -> list[int]:
        """Ids of the system turn (``system``, else :data:`SYSTEM`) and ``(role, text)`` turns
        under the LLM's chat template, ending where the assistant's reply starts."""
        messages = [{"role": "system", "content": system or SYSTEM}]
        messages += [{"role": role, "content": text} for role, text in turns]
        return self.llm.prompt_ids(messages)

    def prefix(self, image_tokens: torch.Tensor) -> TokenSequence:
        """Projected image tokens ``[B, T, llm_dim]`` (all real) from ``[B, T, D]``."""
        embedded = self.projector(image_tokens.to(self.checkpoint.device))
        mask = torch.ones(embedded.shape[:2], dtype=torch.bool, device=embedded.device)
        return TokenSequence(embedded, mask)

    def caption(self, image: ImageSource, **sampling: Any) -> str:
        """One caption of ``image`` (``sampling`` as for :meth:`chat`)."""
        return self.chat([Turn("user", image=image)], **sampling)

    def caption_tokens(
        self, image_tokens: torch.Tensor, max_new_tokens: int = 40, **sampling: Any
    ) -> list[str]:
        """Captions of a batch of images given as the image tower's tokens ``[B, T, D]``."""
        with torch.no_grad(), self.checkpoint.precision.autocast():
            prompt = self.prompt_ids([("user", CAPTION_PROMPT)])
            replies = generate_replies(
                self.llm.model,
                self.prefix(image_tokens),
                [prompt] * len(image_tokens),
                self.eos_id,
                self.eos_id,
                max_new_tokens,
                **sampling,
            )
        return [self._text(reply) for reply in replies]

    def chat(self, turns: Sequence[Turn], max_new_tokens: int = 40, **sampling: Any) -> str:
        """The assistant's next reply (the last turn is the user's); see :meth:`prompt`.
        ``sampling`` as for :func:`~trimodal.generation.sampling.generate` (``do_sample``,
        ``temperature``, ``top_k``, ``top_p``, ``generator``); greedy by default."""
        prompt = self.prompt(turns)
        room = self.llm.model.config.max_positions - prompt.length
        if room < 1:
            raise ValueError(
                f"the conversation takes {prompt.length} positions, more than the LLM holds"
            )
        with torch.no_grad(), self.checkpoint.precision.autocast():
            replies = generate_replies(
                self.llm.model,
                prompt.prefix,
                [prompt.ids],
                self.eos_id,
                self.eos_id,
                min(max_new_tokens, room),
                **sampling,
            )
        return self._text(replies[0])

    def prompt(self, turns: Sequence[Turn], system: str = "") -> LlavaPrompt:
        """A conversation ready for the LLM: its images, in order, are the prefix; the turns go
        under the chat template after the system turn (``system``, else :data:`SYSTEM`); a user
        turn with an image and no text asks for a caption. The last turn must be the user's."""
        if not turns or turns[-1].role != "user":
            raise ValueError("a conversation to continue must end with a user turn")
        if any(turn.audio is not None for turn in turns):
            raise ValueError(
                "a llava run reads images and text, not audio: use a trimodal checkpoint with a "
                "decoder, or --llm smollm2 (which hears through Whisper)"
            )
        texts = [(t.role, t.text or (CAPTION_PROMPT if t.image is not None else "")) for t in turns]
        if empty := [i + 1 for i, (_, text) in enumerate(texts) if not text.strip()]:
            raise ValueError(f"turn {empty[0]} has no text and no image")
        ids = self.prompt_ids(texts, system)
        images = [t.image for t in turns if t.image is not None]
        if not images:
            return LlavaPrompt(ids, None)
        with torch.no_grad():
            projected = self.prefix(self.checkpoint.image_tokens(images)).tokens  # (I, T, Dl)
        joined = projected.reshape(1, -1, projected.shape[-1])  # each image's grid in turn
        mask = torch.ones(joined.shape[:2], dtype=torch.bool, device=joined.device)
        return LlavaPrompt(ids, TokenSequence(joined, mask))

    def _text(self, ids: list[int]) -> str:
        return str(self.llm.tokenizer.decode(ids, skip_special_tokens=True)).strip()

    def save(self, out: str | os.PathLike[str]) -> Path:
        """Write the run folder atomically (``llava.json`` and the projector's weights)."""

        def write(staging: Path) -> None:
            atomic_write_text(staging / RUN_FILE, json.dumps(self.info, indent=2) + "\n")
            save_weights(self.projector, staging / PROJECTOR_FILE)

        return write_directory_atomically(Path(out), write)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], device: str = "cpu", precision: str = "fp32"
    ) -> LlavaRun:
        """Load a run, its checkpoint (``llava.json`` names it) and the installed LLM, to run
        on ``device`` in ``precision`` (as :meth:`Model.from_pretrained`: the checkpoint's
        precision is the run's, and the LLM generates under its autocast)."""
        folder = Path(path)
        if not (folder / RUN_FILE).is_file():
            raise FileNotFoundError(
                f"{folder} is not a llava run (no {RUN_FILE}); train one with trimodal llava train"
            )
        info = json.loads((folder / RUN_FILE).read_text())
        try:
            settings = from_dict(LlavaSettings, info["settings"], "settings")
        except (ConfigError, KeyError) as error:
            raise ConfigError(f"{folder / RUN_FILE}: {error}") from error
        checkpoint = Model.from_pretrained(info["checkpoint"], device=device, precision=precision)
        llm = frozen_llm(settings.llm, checkpoint.device)
        projector = ImagePrefix(info["image_dim"], llm.model.config.dim, settings.positions)
        from safetensors.torch import load_file

        projector.load_state_dict(load_file(str(folder / PROJECTOR_FILE)))
        return cls(checkpoint, llm, projector.to(checkpoint.device).eval(), info)

    @classmethod
    def is_run(cls, path: str | os.PathLike[str]) -> bool:
        """True when ``path`` is a llava run folder."""
        return (Path(path) / RUN_FILE).is_file()


def frozen_llm(name: str, device: torch.device) -> SmolLM2:
    """The named LLM on ``device``, in eval mode with every weight frozen."""
    llm = LLMS[name]()
    llm.model.requires_grad_(False)
    llm.model.to(device).eval()
    return llm


def stored_image_tokens(model: Model, samples: Sequence[Sample], batch: int = 256) -> torch.Tensor:
    """The image tower's tokens ``[N, T, D]`` (float32, CPU) of the samples' images (row ``i``
    is sample ``i``'s: a sample without an image is an error, not a skipped row)."""
    paths = []
    for sample in samples:
        if sample.image is None:
            raise ValueError(f"line {sample.line}: sample {sample.id} has no image")
        paths.append(sample.image)
    chunks = [
        model.image_tokens(paths[start : start + batch]).cpu()
        for start in range(0, len(paths), batch)
    ]
    return torch.cat(chunks)


def captioned_samples(manifest: str | os.PathLike[str], split: str) -> list[Sample]:
    """The manifest's ``split`` samples with an image and a caption (at least one)."""
    samples = [s for s in load_manifest(manifest).split(split) if s.image is not None and s.text]
    if not samples:
        raise ValueError(f"{manifest}: no {split} samples with an image and a caption")
    return samples


def fit_projector(
    run: LlavaRun,
    image_tokens: torch.Tensor,
    captions: Sequence[str],
    report: Callable[[str], None] | None = None,
) -> list[float]:
    """Train ``run.projector`` on (image tokens ``[N, T, D]``, caption) pairs by the LLM's
    next-token loss on the caption and its end-of-turn id; returns the loss of every step."""
    settings, tokenizer = run.settings, run.llm.tokenizer
    prompt = run.prompt_ids([("user", CAPTION_PROMPT)])
    replies = [[*tokenizer(text)["input_ids"], run.eos_id] for text in captions]
    optimizer, schedule = adamw_warmup_cosine(
        run.projector.parameters(), settings.lr, 0.0, settings.steps, settings.warmup_steps
    )
    generator = torch.Generator().manual_seed(settings.seed)
    run.projector.train()
    losses = []
    for step in range(settings.steps):
        rows = torch.randint(len(replies), (settings.batch_size,), generator=generator).tolist()
        loss = lm_loss(
            run.llm.model,
            run.prefix(image_tokens[rows]),
            [prompt + replies[r] for r in rows],
            [[False] * len(prompt) + [True] * len(replies[r]) for r in rows],
            run.eos_id,
        )
        clipped_step(loss, run.projector, optimizer, schedule)
        losses.append(float(loss.detach()))
        if report and (step + 1) % 10 == 0:
            report(f"step {step + 1}/{settings.steps}: loss {losses[-1]:.3f}")
    run.projector.eval()
    return losses


def train_llava(
    checkpoint: str | os.PathLike[str],
    manifest: str | os.PathLike[str],
    settings: LlavaSettings,
    report: Callable[[str], None] | None = None,
) -> LlavaRun:
    """Train a projector from ``checkpoint``'s image tower into ``settings.llm`` on the
    manifest's ``train`` captions."""
    started = time.perf_counter()
    model = Model.from_pretrained(checkpoint)
    samples = captioned_samples(manifest, "train")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        tokens = stored_image_tokens(model, samples)
        llm = frozen_llm(settings.llm, model.device)
        projector = ImagePrefix(tokens.shape[2], llm.model.config.dim, settings.positions)
        info: dict[str, Any] = {
            "checkpoint": str(Path(checkpoint).resolve()),
            "manifest": str(Path(manifest).resolve()),
            "settings": to_dict(settings),
            "image_dim": int(tokens.shape[2]),
            "train_images": len(samples),
        }
        run = LlavaRun(model, llm, projector.to(model.device), info)
        fit_started = time.perf_counter()
        losses = fit_projector(run, tokens, [s.text or "" for s in samples], report)
    info["fit_seconds"] = round(time.perf_counter() - fit_started, 1)
    info["seconds"] = round(time.perf_counter() - started, 1)
    info["final_loss"] = round(sum(losses[-10:]) / len(losses[-10:]), 4)
    return run
