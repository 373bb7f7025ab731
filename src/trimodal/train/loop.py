"""``trimodal train``: stage 0 (vision, optional), stage 1 (align), stage 2 (multi-task),
stage 2b (reason, optional) and stage 3 (generate, optional), resumable, DDP-ready.

The same entry point runs alone or under ``torchrun --nproc_per_node=N``: the process group is
joined when torchrun's variables are set, each rank computes its share of every global batch,
gradients are averaged by ``DistributedDataParallel`` and the contrastive loss gathers features
across ranks.

Run folder::

    RUN/config.json        resolved recipe
    RUN/metrics.jsonl      one line per logged step (every task's loss and weight, lr, samples/s)
    RUN/tensorboard/       the same scalars for TensorBoard (if tensorboard is installed)
    RUN/checkpoint/        latest checkpoint (model + tokenizer + training state)
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from trimodal.config import (
    AlignConfig,
    BindConfig,
    Config,
    GenerateConfig,
    MultiTaskConfig,
    ReasonConfig,
    StageConfig,
    VisionConfig,
    to_dict,
)
from trimodal.data.manifest import load_manifest
from trimodal.data.tensors import SceneTensors, attribute_names, cached_scene_tensors
from trimodal.data.tokenizer import TextTokenizer, manifest_texts, train_tokenizer
from trimodal.data.transforms import ImageTransform
from trimodal.io import atomic_write_text
from trimodal.losses.contrastive import pair_key
from trimodal.losses.multitask import (
    DynamicWeightAverage,
    LossDrivenTaskSampler,
    build_weighting,
)
from trimodal.models.checkpoint import Vocabulary
from trimodal.models.trimodal import MODALITIES, TriModalModel
from trimodal.train import tasks as task_losses
from trimodal.train.checkpoint import TrainingState, load_training_state, save_training_checkpoint
from trimodal.train.distributed import (
    DistributedContext,
    all_reduce_mean,
    barrier,
    init_distributed,
)
from trimodal.train.schedule import batch_rows, steps_for, warmup_cosine
from trimodal.world.caption_pool import CaptionPool, build_caption_pool
from trimodal.world.question_pool import QuestionPool, build_question_pool


@dataclass
class RunData:
    """Everything training needs from the data side."""

    tokenizer: TextTokenizer
    vocabulary: Vocabulary
    tensors: SceneTensors
    train_rows: torch.Tensor
    pool: QuestionPool | None = None
    """Questions of stage 2 (``train.multitask.question_pool``)."""
    reason_pool: QuestionPool | None = None
    """Questions of stage 2b (``train.reason``)."""
    caption_pool: CaptionPool | None = None
    """Captions of stage 3 (``train.generate.caption_variants``)."""


def manifest_path_of(source: str | os.PathLike[str]) -> Path:
    """A world folder or a manifest file -> the manifest file."""
    path = Path(source)
    return path / "manifest.jsonl" if path.is_dir() else path


def prepare_data(
    config: Config, source: str | os.PathLike[str], tokenizer: TextTokenizer | None = None
) -> RunData:
    """Validate the manifest, train (or reuse) the tokenizer, decode tensors (cached)."""
    manifest = load_manifest(manifest_path_of(source), check_files="exists")
    if not manifest.split("train"):
        raise ValueError(f"{manifest.path} has no 'train' samples to train on")
    if tokenizer is None:
        tokenizer = train_tokenizer(manifest_texts(manifest), vocab_size=config.data.vocab_size)
    train_samples = manifest.split("train")
    answers = sorted({q.answer for s in train_samples for q in s.questions})
    vocabulary = Vocabulary(
        answers=answers or ["<none>"], attributes=attribute_names(train_samples)
    )
    tensors = cached_scene_tensors(
        manifest,
        tokenizer,
        vocabulary.answers,
        vocabulary.attributes,
        config.data.image_size,
        config.data.n_mels,
        max_text_length=config.model.text.max_length,
    )
    train_rows = tensors.rows_in("train")
    if config.train.max_train_scenes > 0:
        train_rows = train_rows[: config.train.max_train_scenes]
    multitask, reason = config.train.multitask, config.train.reason

    def pool_of(family_weights: dict[str, float]) -> QuestionPool:
        return build_question_pool(
            manifest,
            train_rows.tolist(),
            tokenizer,
            vocabulary.answers,
            bins=max(1, config.model.grounding_bins),
            max_length=config.model.text.max_length,
            seed=config.train.seed,
            family_weights=family_weights,
        )

    pool = pool_of(multitask.pool_family_weights) if multitask.question_pool else None
    reason_pool = pool_of(reason.family_weights) if reason.epochs > 0 else None
    generate = config.train.generate
    caption_pool = (
        build_caption_pool(
            manifest,
            train_rows.tolist(),
            tokenizer,
            max_length=config.model.text.max_length,
            bins=max(1, config.model.decoder.grounding_bins),
        )
        if generate.caption_variants and generate.epochs > 0
        else None
    )
    return RunData(tokenizer, vocabulary, tensors, train_rows, pool, reason_pool, caption_pool)


def _pairs(names: list[str]) -> list[tuple[str, str]]:
    pairs = []
    for name in names:
        first, _, second = name.partition("-")
        if not second or {first, second} - {"image", "text", "audio"}:
            raise ValueError(
                f"train.align.pairs: {name!r} is not of the form image-text/audio-text/audio-image"
            )
        pairs.append((first, second))
    return pairs


def _anchors(align: AlignConfig) -> dict[str, str]:
    """``train.align.anchors`` keyed by :func:`pair_key` (either order may be written); each
    must name a pair of ``train.align.pairs`` and one of its two modalities."""
    pairs = {pair_key(*pair): pair for pair in _pairs(align.pairs)}
    anchors = {}
    for name, modality in align.anchors.items():
        first, _, second = name.partition("-")
        key = pair_key(first, second)
        if key not in pairs:
            raise ValueError(
                f"train.align.anchors: {name!r} is not one of train.align.pairs {align.pairs}"
            )
        if modality not in pairs[key]:
            raise ValueError(
                f"train.align.anchors: the anchor of {name!r} must be {first!r} or {second!r}, "
                f"got {modality!r}"
            )
        anchors[key] = modality
    return anchors


def _check_caption_grounding(config: Config) -> None:
    """``train.generate.grounding_weight`` needs the decoder's grounding head and the caption
    variants that carry its targets."""
    weight = config.train.generate.grounding_weight
    if weight < 0:
        raise ValueError(f"train.generate.grounding_weight must be >= 0, got {weight}")
    if weight > 0 and not (
        config.train.generate.caption_variants and config.model.decoder.grounding_bins > 0
    ):
        raise ValueError(
            "train.generate.grounding_weight > 0 needs train.generate.caption_variants: true "
            "and model.decoder.grounding_bins > 0"
        )


def _check_task_weights(generate: GenerateConfig) -> None:
    """``train.generate.task_weights`` names only stage-3 tasks, with weights >= 0 that do not
    all vanish."""
    given = generate.task_weights
    task_losses.check_tasks(list(given), tuple(generate.tasks), "train.generate.task_weights")
    total = sum(given.get(task, 1.0) for task in generate.tasks)
    if any(weight < 0 for weight in given.values()) or (generate.tasks and total <= 0):
        raise ValueError(
            f"train.generate.task_weights: weights must be >= 0 with a positive sum, got {given}"
        )


def _check_bind(bind: BindConfig) -> None:
    """``train.bind`` names two different modalities."""
    names = MODALITIES
    if bind.modality not in names or bind.anchor not in names or bind.modality == bind.anchor:
        raise ValueError(
            f"train.bind: modality and anchor must be two different ones of {names}, "
            f"got {bind.modality!r} and {bind.anchor!r}"
        )


class TrainStep(nn.Module):
    """The whole loss of one step as a module, so DistributedDataParallel can wrap it."""

    def __init__(
        self,
        model: TriModalModel,
        weighting: nn.Module | None,
        config: Config,
        distributed: bool,
        pool: QuestionPool | None = None,
        reason_pool: QuestionPool | None = None,
        caption_pool: CaptionPool | None = None,
    ):
        super().__init__()
        self.pool, self.reason_pool, self.caption_pool = pool, reason_pool, caption_pool
        self.frozen: dict[str, task_losses.FrozenOutputs] = {}
        """Fixed encoder outputs, set by the trainer for stage 2b and a frozen stage 3."""
        self.bind_targets: task_losses.BindTargets | None = None
        """Stage 2c's fixed features and anchors, set by the trainer at its start."""
        self.pairs = _pairs(config.train.align.pairs)
        self.anchors = _anchors(config.train.align)
        self.model, self.weighting, self.config, self.distributed = (
            model,
            weighting,
            config,
            distributed,
        )
        self.augment = (
            ImageTransform(size=config.data.image_size, augment=True)
            if config.data.augment
            else None
        )

    def forward(
        self,
        tensors: SceneTensors,
        rows: torch.Tensor,
        stage: str,
        active: list[str],
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, dict[str, float], dict[str, float]]:
        """Returns (total loss, unweighted parts, weights)."""
        step = task_losses.StepInputs(self.model, tensors, rows, generator, self.augment)
        losses: dict[str, torch.Tensor] = {}
        parts: dict[str, float] = {}
        if stage == "generate":
            return self._generation(step, active)
        if stage == "vision":
            return self._image_tasks(step, active)
        if stage == "reason":
            return self._reason(step, active)
        if stage == "bind":
            if self.bind_targets is None:
                raise RuntimeError("stage 'bind' needs the targets computed at its start")
            loss = task_losses.bind_loss(step, self.bind_targets)
            return loss, {"bind": float(loss.detach())}, {"bind": 1.0}
        if stage == "align" or "contrastive" in active:
            losses["contrastive"], parts = self._contrastive(step)
        if stage == "align":
            return self._align(step, losses["contrastive"], parts)
        multitask = self.config.train.multitask
        if "vqa_typed" in active:
            losses["vqa_typed"] = task_losses.typed_vqa_loss(
                step, multitask.questions_per_scene, self.pool, multitask.grounding_weight
            )
        if "vqa_spoken" in active:
            losses["vqa_spoken"] = task_losses.spoken_vqa_loss(step)
        for name in task_losses.IMAGE_TASKS:
            if name in active:
                losses[name] = task_losses.IMAGE_TASK_LOSSES[name](step)
        assert self.weighting is not None
        output = self.weighting(losses)
        parts |= {k: float(v.detach()) for k, v in output.parts.items()}
        return output.total, parts, dict(output.weights)

    def _contrastive(self, step: task_losses.StepInputs) -> tuple[torch.Tensor, dict[str, float]]:
        """The ``train.align`` contrastive loss and its per-pair parts (``contrastive/a-b``)."""
        align = self.config.train.align
        total, pair_parts = task_losses.contrastive_loss(
            step,
            self.pairs,
            align.loss,
            align.margin,
            self.distributed,
            self.anchors,
            align.anchor_gradient,
        )
        return total, {f"contrastive/{k}": float(v.detach()) for k, v in pair_parts.items()}

    def _image_tasks(
        self, step: task_losses.StepInputs, active: list[str]
    ) -> tuple[torch.Tensor, dict[str, float], dict[str, float]]:
        """Stage 0: the sum of the image-only tasks' losses."""
        losses = {name: task_losses.IMAGE_TASK_LOSSES[name](step) for name in active}
        total = torch.stack(list(losses.values())).sum()
        parts = {name: float(loss.detach()) for name, loss in losses.items()}
        return total, parts, dict.fromkeys(losses, 1.0)

    def _align(
        self, step: task_losses.StepInputs, contrastive: torch.Tensor, parts: dict[str, float]
    ) -> tuple[torch.Tensor, dict[str, float], dict[str, float]]:
        """Stage 1: the contrastive loss plus any ``align.auxiliary`` image tasks (weight 1)."""
        parts["contrastive"] = float(contrastive.detach())
        auxiliary = list(self.config.train.align.auxiliary)
        if not auxiliary:
            return contrastive, parts, {"contrastive": 1.0}
        extra, extra_parts, extra_weights = self._image_tasks(step, auxiliary)
        return contrastive + extra, parts | extra_parts, {"contrastive": 1.0} | extra_weights

    def _reason(
        self, step: task_losses.StepInputs, active: list[str]
    ) -> tuple[torch.Tensor, dict[str, float], dict[str, float]]:
        """Stage 2b: the ``train.reason.tasks`` over frozen image and audio outputs, each at
        weight 1, and the grounding loss at ``grounding_weight``."""
        if "image" not in self.frozen or self.reason_pool is None:
            raise RuntimeError("stage 'reason' needs its question pool and frozen image outputs")
        reason = self.config.train.reason
        step.frozen = self.frozen
        losses: dict[str, torch.Tensor] = {}
        weights: dict[str, float] = {}
        if "vqa_typed" in active:
            answer, grounding = task_losses.pooled_vqa_losses(
                step, reason.questions_per_scene, self.reason_pool
            )
            losses["vqa_typed"], weights["vqa_typed"] = answer, 1.0
            if grounding is not None:
                losses["grounding"], weights["grounding"] = grounding, reason.grounding_weight
        if "vqa_spoken" in active:
            losses["vqa_spoken"], weights["vqa_spoken"] = task_losses.spoken_vqa_loss(step), 1.0
        if "transcribe" in active:
            losses["transcribe"], weights["transcribe"] = task_losses.transcribe_loss(step), 1.0
        parts: dict[str, float] = {}
        if "contrastive" in active:
            losses["contrastive"], parts = self._contrastive(step)
            weights["contrastive"] = 1.0
        total = torch.stack([weights[name] * loss for name, loss in losses.items()]).sum()
        parts |= {name: float(loss.detach()) for name, loss in losses.items()}
        return total, parts, weights

    def _generation(
        self, step: task_losses.StepInputs, active: list[str]
    ) -> tuple[torch.Tensor, dict[str, float], dict[str, float]]:
        """Stage 3: the ``task_weights``-weighted mean of the generative tasks' next-token
        losses (over the frozen encoder outputs, with ``freeze_encoders``)."""
        step.frozen = self.frozen
        step.captions = self.caption_pool
        losses = {task: task_losses.generation_loss(step, task) for task in active}
        given = self.config.train.generate.task_weights
        raw = {task: given.get(task, 1.0) for task in losses}
        weights = {task: weight / sum(raw.values()) for task, weight in raw.items()}
        total = torch.stack([weights[task] * loss for task, loss in losses.items()]).sum()
        parts = {task: float(loss.detach()) for task, loss in losses.items()}
        return total, parts, weights


def _optimizer(step_module: TrainStep, stage: StageConfig) -> torch.optim.AdamW:
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, parameter in step_module.named_parameters():
        if not parameter.requires_grad:
            continue
        is_matrix = parameter.ndim >= 2 and "embedding" not in name
        (decay if is_matrix else no_decay).append(parameter)
    groups = [
        {"params": decay, "weight_decay": stage.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=stage.lr, betas=(0.9, 0.98), eps=1e-6)


class MetricsLog:
    """JSON Lines + TensorBoard scalars (rank 0 only)."""

    def __init__(self, run_dir: Path, enabled: bool):
        self.enabled = enabled
        self.path = run_dir / "metrics.jsonl"
        self.writer: Any = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(run_dir / "tensorboard"))
            except ImportError:  # tensorboard is optional
                self.writer = None

    def write(self, record: dict[str, Any]) -> None:
        """Append one record and mirror its numbers to TensorBoard."""
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as stream:
            stream.write(json.dumps(record) + "\n")
        if self.writer is not None:
            step = record["global_step"]
            for group in ("loss", "weight"):
                for key, value in record.get(group, {}).items():
                    self.writer.add_scalar(f"{group}/{key}", value, step)
            for key in ("lr", "samples_per_s"):
                self.writer.add_scalar(key, record[key], step)

    def close(self) -> None:
        """Flush TensorBoard."""
        if self.writer is not None:
            self.writer.close()


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Temporarily set torch's intra-op thread count (0 leaves it alone)."""
    previous = torch.get_num_threads()
    if count > 0:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass
class StagePlan:
    """A stage's name, config and step count."""

    index: int
    name: str
    config: StageConfig
    steps: int


class Trainer:
    """Runs both stages; see the module docstring."""

    def __init__(
        self,
        config: Config,
        data: RunData,
        run_dir: Path,
        context: DistributedContext,
        progress: bool,
    ):
        self.config, self.data, self.run_dir, self.context, self.progress = (
            config,
            data,
            run_dir,
            context,
            progress,
        )
        task_losses.check_tasks(
            config.train.vision.tasks, task_losses.IMAGE_TASKS, "train.vision.tasks"
        )
        task_losses.check_tasks(
            config.train.align.auxiliary, task_losses.IMAGE_TASKS, "train.align.auxiliary"
        )
        task_losses.check_tasks(
            config.train.multitask.tasks, task_losses.TASKS, "train.multitask.tasks"
        )
        task_losses.check_tasks(
            config.train.reason.tasks, task_losses.REASON_TASKS, "train.reason.tasks"
        )
        _anchors(config.train.align)  # malformed pairs and anchors are errors before any step
        _check_task_weights(config.train.generate)
        _check_caption_grounding(config)
        _check_bind(config.train.bind)
        if config.train.reason.epochs > 0 and not config.train.reason.tasks:
            raise ValueError("train.reason.tasks is empty but train.reason.epochs > 0")
        if "transcribe" in config.train.reason.tasks and config.model.transcriber_depth < 1:
            raise ValueError("train.reason.tasks has 'transcribe' but model.transcriber_depth is 0")
        self.model = TriModalModel(config, data.tokenizer.vocab_size, data.vocabulary)
        self.model.tokenizer = data.tokenizer
        self.log = MetricsLog(run_dir, context.is_main)
        train = config.train
        self.plans = [
            StagePlan(
                i, name, stage, steps_for(stage.epochs, len(data.train_rows), stage.batch_size)
            )
            for i, (name, stage) in enumerate(
                (
                    ("vision", train.vision),
                    ("align", train.align),
                    ("multitask", train.multitask),
                    ("reason", train.reason),
                    ("generate", train.generate),
                    ("bind", train.bind),  # last: it fits the final space; earlier indices stay
                )
            )
        ]
        self.global_step = 0
        self.history: list[dict[str, Any]] = []

    def _weighting(self) -> nn.Module:
        multitask = self.config.train.multitask
        options: dict[str, Any] = (
            {"weights": multitask.static_weights} if multitask.weighting == "static" else {}
        )
        return build_weighting(multitask.weighting, multitask.tasks, **options)

    def run(self, resume: bool, max_steps: int = 0) -> dict[str, Any]:
        """Train to the end of the plan (or ``max_steps`` global steps); returns a summary."""
        state = load_training_state(self.run_dir / "checkpoint") if resume else None
        if state is not None:
            self._restore_model()
            self.global_step, self.history = state.global_step, state.history
        for plan in self.plans:
            if plan.steps == 0 or (state is not None and plan.index < state.stage):
                continue
            stage_state = state if state is not None and plan.index == state.stage else None
            if not self._run_stage(plan, stage_state, max_steps):
                return self._summary(stopped=True)
            state = None
        return self._summary(stopped=False)

    def _restore_model(self) -> None:
        self._check_decoder_layout(self.run_dir / "checkpoint")
        restored = TriModalModel.from_pretrained(self.run_dir / "checkpoint")
        self.model.load_state_dict(restored.state_dict())
        self.model.train()

    def _check_decoder_layout(self, checkpoint: Path) -> None:
        """Refuse to resume a checkpoint whose decoder weights are in ``nn.Linear``'s layout.

        Its weights would load (transposed into the ``[in, out]`` kernels), but the optimizer's
        moments saved beside them keep the old orientation, which for a square weight no
        shape check would catch.
        """
        kernels = {
            name.removesuffix("kernel")
            for name, _ in self.model.named_parameters()
            if name.endswith(".kernel")
        }
        with safe_open(str(checkpoint / "model.safetensors"), "pt") as weights:
            stale = sorted(
                key
                for key in weights.keys()  # noqa: SIM118 (safe_open is not a dict)
                if key.endswith(".weight") and key.removesuffix("weight") in kernels
            )
        if stale:
            raise ValueError(
                f"{checkpoint} was written when the decoder stored nn.Linear weights [out, in] "
                f"({stale[0]} and {len(stale) - 1} more); its optimizer state does not fit the "
                "current [in, out] kernels, so the run can't be resumed. Its weights still load "
                "for use (Model.from_pretrained, trimodal caption/chat)."
            )

    def _run_stage(self, plan: StagePlan, state: TrainingState | None, max_steps: int) -> bool:
        weighting = self._weighting() if plan.name == "multitask" else None
        self._set_trainable(plan)
        # A frozen parameter must not carry the last stage's gradient into gradient clipping.
        self.model.zero_grad(set_to_none=True)
        step_module = TrainStep(
            self.model,
            weighting,
            self.config,
            self.context.enabled,
            self.data.pool,
            self.data.reason_pool,
            self.data.caption_pool,
        )
        towers = self._frozen_towers(plan)
        if towers:
            step_module.frozen = task_losses.freeze_perception(
                self.model, self.data.tensors, self.data.train_rows, towers
            )
        if plan.name == "bind":
            bind = self.config.train.bind
            step_module.bind_targets = task_losses.bind_targets(
                self.model, self.data.tensors, self.data.train_rows, bind.modality, bind.anchor
            )
        if weighting is not None and state is not None and state.step > 0:
            weighting.load_state_dict(state.weighting)
        optimizer = _optimizer(step_module, plan.config)
        warmup = min(plan.config.warmup_steps, max(1, plan.steps // 5))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: warmup_cosine(s, plan.steps, warmup)
        )
        sampler = self._sampler(plan)
        start = 0
        if state is not None:
            if state.step > 0:  # at a stage boundary the new stage starts a fresh optimizer
                optimizer.load_state_dict(state.optimizer)
                scheduler.load_state_dict(state.scheduler)
            torch.set_rng_state(state.rng)
            if sampler is not None and state.sampler is not None and state.step > 0:
                sampler.load_state_dict(state.sampler)
            start = state.step
        runner: nn.Module = step_module
        if self.context.enabled:
            runner = DistributedDataParallel(step_module, find_unused_parameters=True)
        self.model.train()
        bar = tqdm(
            total=plan.steps,
            initial=start,
            desc=plan.name,
            disable=not (self.progress and self.context.is_main),
            dynamic_ncols=True,
            leave=True,
        )
        started = time.perf_counter()
        for step in range(start, plan.steps):
            record = self._train_step(plan, step, runner, optimizer, scheduler, sampler)
            self.global_step += 1
            elapsed = time.perf_counter() - started
            record["samples_per_s"] = (
                (step - start + 1) * plan.config.batch_size / max(elapsed, 1e-9)
            )
            bar.update(1)
            bar.set_postfix(
                loss=f"{record['loss']['total']:.3f}", sps=f"{record['samples_per_s']:.0f}"
            )
            if step % self.config.train.log_every == 0 or step == plan.steps - 1:
                self.log.write(record)
            if isinstance(weighting, DynamicWeightAverage) and (step + 1) % self._window(plan) == 0:
                weighting.step_epoch()  # DWA compares mean task losses of consecutive windows
            done = step == plan.steps - 1
            limit = max_steps > 0 and self.global_step >= max_steps
            every = self.config.train.checkpoint_every
            if done:  # before the checkpoint, so the state it saves lists this stage too
                self.history.append({"stage": plan.name, "steps": plan.steps, "seconds": elapsed})
            if done or limit or (every > 0 and self.global_step % every == 0):
                next_state = (plan.index + 1, 0) if done else (plan.index, step + 1)
                self._checkpoint(next_state, optimizer, scheduler, weighting, sampler, done)
            if limit and not done:
                bar.close()
                return False
        bar.close()
        # max_steps reached exactly at the end of this stage: stop before the next one
        return not (max_steps > 0 and self.global_step >= max_steps)

    def _frozen_towers(self, plan: StagePlan) -> set[str]:
        """What a stage reads from fixed encoders, encoded once at its start (none: encode
        every step).

        Stage 2b: images always, spoken questions for ``vqa_spoken``, spoken captions for a
        contrastive pair with audio. Stage 3 with ``freeze_encoders``: images for the tasks
        that look at the scene, spoken captions for ``transcribe``, spoken questions for
        ``vqa_spoken``; the decoder then trains on the eval-mode outputs it reads at inference.
        """
        if plan.name == "reason":
            tasks = self.config.train.reason.tasks
            towers = {"image"}
            if "vqa_spoken" in tasks or "transcribe" in tasks:
                towers.add("spoken")
            pairs = _pairs(self.config.train.align.pairs)
            if "contrastive" in tasks and any("audio" in pair for pair in pairs):
                towers.add("audio")
            return towers
        generate = self.config.train.generate
        if plan.name != "generate" or not generate.freeze_encoders:
            return set()
        needs: dict[str, set[str]] = {
            "image": {"caption", "vqa_typed", "vqa_spoken", "dialogue"},
            "audio": {"transcribe"},
            "spoken": {"vqa_spoken"},
        }
        return {tower for tower, users in needs.items() if users & set(generate.tasks)}

    def _set_trainable(self, plan: StagePlan) -> None:
        """Stage 3 with ``freeze_encoders`` trains only the projector and decoder (with its
        grounding head); stage 2b
        trains neither them nor the image and audio towers; stage 2c (bind) trains only its
        modality's projection head."""
        generate = self.config.train.generate
        frozen = plan.name == "generate" and generate.freeze_encoders
        if plan.name == "bind":
            head = f"encoders.{self.config.train.bind.modality}.projection."
            for name, parameter in self.model.named_parameters():
                parameter.requires_grad_(name.startswith(head))
            return
        for name, parameter in self.model.named_parameters():
            own = name.startswith(("projector.", "decoder.", "caption_grounding."))
            if plan.name == "reason":
                fixed = own or name.startswith(("encoders.image.", "encoders.audio."))
                parameter.requires_grad_(not fixed)
            else:
                parameter.requires_grad_(own or not frozen)

    def _window(self, plan: StagePlan) -> int:
        """Steps per DWA window: one epoch, or a quarter of the stage when that is shorter."""
        per_epoch = max(1, len(self.data.train_rows) // plan.config.batch_size)
        return max(1, min(per_epoch, plan.steps // 4))

    def _sampler(self, plan: StagePlan) -> LossDrivenTaskSampler | None:
        multitask = self.config.train.multitask
        if plan.name != "multitask" or multitask.scheduler == "all":
            return None
        if multitask.scheduler != "loss_driven":
            raise ValueError(
                f"train.multitask.scheduler must be 'all' or 'loss_driven', got {multitask.scheduler!r}"
            )
        return LossDrivenTaskSampler(multitask.tasks, seed=self.config.train.seed)

    def _active_tasks(self, plan: StagePlan, sampler: LossDrivenTaskSampler | None) -> list[str]:
        if plan.name == "align":
            return ["contrastive"]
        if plan.name == "bind":
            return ["bind"]
        if plan.name == "vision":
            assert isinstance(plan.config, VisionConfig)
            return list(plan.config.tasks)
        if plan.name == "generate":
            assert isinstance(plan.config, GenerateConfig)
            return list(plan.config.tasks)
        if plan.name == "reason":
            assert isinstance(plan.config, ReasonConfig)
            return list(plan.config.tasks)
        multitask = plan.config
        assert isinstance(multitask, MultiTaskConfig)
        if sampler is None:
            return list(multitask.tasks)
        return sampler.sample(min(multitask.tasks_per_step, len(multitask.tasks)))

    def _train_step(
        self,
        plan: StagePlan,
        step: int,
        runner: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        sampler: LossDrivenTaskSampler | None,
    ) -> dict[str, Any]:
        seed = self.config.train.seed
        rows = batch_rows(
            self.data.train_rows,
            plan.config.batch_size,
            step,
            seed,
            plan.index,
            self.context.rank,
            self.context.world_size,
        )
        generator = torch.Generator().manual_seed(seed * 7919 + plan.index * 104_729 + step)
        active = self._active_tasks(plan, sampler)
        loss, parts, weights = runner(self.data.tensors, rows, plan.name, active, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in runner.parameters() if p.requires_grad], 1.0)
        optimizer.step()
        scheduler.step()
        if sampler is not None:
            # Every rank must draw the same tasks next step: feed the samplers rank-averaged losses.
            observed = {task: parts[task] for task in active if task in parts}
            sampler.update(
                {
                    k: float(all_reduce_mean(torch.tensor(v), self.context))
                    for k, v in observed.items()
                }
            )
        total = float(all_reduce_mean(loss.detach(), self.context))
        return {
            "stage": plan.name,
            "step": step,
            "global_step": self.global_step,
            "loss": {"total": total, **parts},
            "weight": weights,
            "active_tasks": active,
            "lr": scheduler.get_last_lr()[0],
        }

    def _checkpoint(
        self,
        position: tuple[int, int],
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        weighting: nn.Module | None,
        sampler: LossDrivenTaskSampler | None,
        stage_done: bool,
    ) -> None:
        if self.context.is_main:
            state = TrainingState(
                stage=position[0],
                step=position[1],
                global_step=self.global_step,
                optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(),
                weighting=dict(weighting.state_dict())
                if weighting is not None and not stage_done
                else {},
                sampler=sampler.state_dict() if sampler is not None and not stage_done else None,
                rng=torch.get_rng_state(),
                history=self.history,
            )
            if stage_done:
                # The next stage starts with a fresh optimizer: don't carry this one's state.
                state.optimizer = {"state": {}, "param_groups": []}
                state.scheduler = {}
            save_training_checkpoint(
                self.run_dir / "checkpoint",
                self.model,
                self.data.tokenizer,
                state,
                {"global_step": self.global_step},
            )
        barrier(self.context)

    def _summary(self, stopped: bool) -> dict[str, Any]:
        self.log.close()
        return {
            "global_step": self.global_step,
            "stopped_early": stopped,
            "stages": {p.name: p.steps for p in self.plans},
            "history": self.history,
            "parameters": sum(p.numel() for p in self.model.parameters()),
        }


def train(
    config: Config,
    source: str | os.PathLike[str],
    run_dir: str | os.PathLike[str],
    resume: bool = False,
    max_steps: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Train ``config`` on the world folder or manifest ``source`` into ``run_dir``.

    Args:
        resume: continue from ``run_dir/checkpoint`` (optimizer, scheduler, RNG, data order).
        max_steps: stop (with a checkpoint) after this many global steps; 0 runs the plan.
    """
    context = init_distributed()
    torch.manual_seed(config.train.seed)
    out = Path(run_dir)
    with torch_threads(config.train.threads):
        tokenizer = None
        if resume:
            if not (out / "checkpoint").is_dir():
                raise FileNotFoundError(f"--resume: no checkpoint in {out}")
            tokenizer = TextTokenizer.load(out / "checkpoint" / "tokenizer.json")
        elif context.is_main and (out / "checkpoint").exists():
            raise FileExistsError(
                f"{out} already holds a run; pass --resume or choose another --out"
            )
        out.mkdir(parents=True, exist_ok=True)
        data = prepare_data(config, source, tokenizer)
        if context.is_main:
            atomic_write_text(out / "config.json", json.dumps(to_dict(config), indent=2))
        started = time.perf_counter()
        summary = Trainer(config, data, out, context, progress).run(resume, max_steps)
        summary["train_seconds"] = time.perf_counter() - started
        return summary
