"""``trimodal train``: the stages a recipe lists in ``train.stages`` (:mod:`trimodal.train.stages`:
vision, align, multitask, reason, generate, bind by default), resumable, DDP-ready.

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

import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from trimodal.config import Config, StageConfig, to_dict
from trimodal.data.manifest import load_manifest
from trimodal.data.tensors import SceneTensors, attribute_names, cached_scene_tensors
from trimodal.data.tokenizer import TextTokenizer, manifest_texts, train_tokenizer
from trimodal.hardware import resolve_device
from trimodal.io import atomic_write_text
from trimodal.locks import FolderLock
from trimodal.losses.multitask import DynamicWeightAverage, LossDrivenTaskSampler
from trimodal.losses.step import freeze_perception
from trimodal.models.checkpoint import Vocabulary, recover_directory
from trimodal.models.trimodal import TriModalModel
from trimodal.train.checkpoint import TrainingState, load_training_state, save_training_checkpoint
from trimodal.train.distributed import (
    DistributedContext,
    agreed_precision,
    all_reduce_mean,
    barrier,
    init_distributed,
    rank_device,
)
from trimodal.train.errors import NonFiniteLossError
from trimodal.train.schedule import batch_rows, steps_for, warmup_cosine
from trimodal.train.sharding import (
    check_sharding,
    gathered_states,
    load_optimizer,
    shard,
    whole_model_state,
)
from trimodal.train.stages import Stage, build_stages
from trimodal.train.step import TrainStep
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
        config=config,
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
            phrasing=config.data.phrasing,
            typo_rate=config.data.augment_typos,
            typo_share=config.data.augment_typos_share,
            word_dropout=config.data.augment_word_dropout,
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


def _optimizer(step_module: TrainStep, stage: StageConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters: matrices with ``stage.weight_decay``, the rest
    without; parameters of a module with an ``lr_scale`` (fine-tuned pretrained blocks) in
    groups of their own at that share of ``stage.lr``."""
    scales = _lr_scales(step_module)
    grouped: dict[tuple[bool, float], list[nn.Parameter]] = {(True, 1.0): [], (False, 1.0): []}
    for name, parameter in step_module.named_parameters():
        if not parameter.requires_grad:
            continue
        is_matrix = parameter.ndim >= 2 and "embedding" not in name
        grouped.setdefault((is_matrix, scales.get(id(parameter), 1.0)), []).append(parameter)
    groups = [
        {
            "params": parameters,
            "weight_decay": stage.weight_decay if is_matrix else 0.0,
            "lr": stage.lr * scale,
        }
        for (is_matrix, scale), parameters in grouped.items()
    ]
    return torch.optim.AdamW(groups, lr=stage.lr, betas=(0.9, 0.98), eps=1e-6)


def _lr_scales(module: nn.Module) -> dict[int, float]:
    """``id(parameter) -> share of the stage's lr`` for the parameters of every submodule
    that declares an ``lr_scale``."""
    scales: dict[int, float] = {}
    for submodule in module.modules():
        scale = getattr(submodule, "lr_scale", None)
        if scale is not None:
            scales.update((id(parameter), float(scale)) for parameter in submodule.parameters())
    return scales


def _fit_moments_to_parameters(optimizer: torch.optim.Optimizer) -> None:
    """Reshape loaded optimizer moments to their parameter's shape where only the shape
    changed (the temperature was a 0-d parameter before it became ``[1]``)."""
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            for key, value in optimizer.state.get(parameter, {}).items():
                if (
                    isinstance(value, torch.Tensor)
                    and key != "step"
                    and value.shape != parameter.shape
                    and value.numel() == parameter.numel()
                ):
                    optimizer.state[parameter][key] = value.reshape(parameter.shape)


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
    """A stage, its position in ``train.stages`` and its step count."""

    index: int
    stage: Stage
    steps: int

    @property
    def name(self) -> str:
        """The stage's name."""
        return self.stage.name

    @property
    def config(self) -> StageConfig:
        """The stage's section of the recipe."""
        return self.stage.settings


class Trainer:
    """Runs the recipe's stages in order; see the module docstring."""

    def __init__(
        self,
        config: Config,
        data: RunData,
        run_dir: Path,
        context: DistributedContext,
        progress: bool,
        device: torch.device | None = None,
    ):
        self.config, self.run_dir, self.context, self.progress = (
            config,
            run_dir,
            context,
            progress,
        )
        self.device = device or torch.device("cpu")
        check_sharding(config.train.sharding)
        self.sharded = config.train.sharding == "fsdp" and context.enabled
        self.precision = agreed_precision(
            config.train.precision, self.device, context, width=config.model.dim
        )
        stages = build_stages(config)  # every stage's options are checked before any step
        self.model = TriModalModel(config, data.tokenizer.vocab_size, data.vocabulary)
        self.model.tokenizer = data.tokenizer
        self.model.to(self.device)
        if config.train.compile:
            self.model.compile_parts()  # compiled on first use: the first steps pay for it
        # The decoded store moves to the device once; every step gathers its batch there.
        self.data = dataclasses.replace(data, tensors=data.tensors.to(self.device))
        self.log = MetricsLog(run_dir, context.is_main)
        self.plans = [
            StagePlan(
                i,
                stage,
                steps_for(stage.settings.epochs, len(data.train_rows), stage.settings.batch_size),
            )
            for i, stage in enumerate(stages)
        ]
        self.global_step = 0
        self.history: list[dict[str, Any]] = []

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
        self.model.load_state_dict(restored.state_dict())  # copies onto the model's device
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
        weighting = plan.stage.weighting()
        if weighting is not None:
            weighting.to(self.device)  # DDP and FSDP need the whole step on one device
        plan.stage.set_trainable(self.model)
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
        towers = plan.stage.frozen_towers()
        if towers:
            step_module.frozen = freeze_perception(
                self.model,
                self.data.tensors,
                self.data.train_rows,
                towers,
                step_module.hear if self.config.data.audio_augment.frozen_view else None,
                self.config.train.seed,
            )
        plan.stage.prepare(step_module, self.model, self.data.tensors, self.data.train_rows)
        if weighting is not None and state is not None and state.step > 0:
            weighting.load_state_dict(state.weighting)
        runner = self._runner(step_module)  # FSDP shards in place: before the optimizer
        optimizer = _optimizer(step_module, plan.config)
        warmup = min(plan.config.warmup_steps, max(1, plan.steps // 5))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: warmup_cosine(s, plan.steps, warmup)
        )
        sampler = plan.stage.sampler()
        start = 0
        if state is not None:
            if state.step > 0:  # at a stage boundary the new stage starts a fresh optimizer
                self._load_optimizer(step_module, optimizer, state.optimizer)
                scheduler.load_state_dict(state.scheduler)
            torch.set_rng_state(state.rng)
            if sampler is not None and state.sampler is not None and state.step > 0:
                sampler.load_state_dict(state.sampler)
            start = state.step
        scaler = self.precision.grad_scaler()
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
            record = self._train_step(plan, step, runner, optimizer, scheduler, sampler, scaler)
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
                self._checkpoint(
                    next_state, step_module, optimizer, scheduler, weighting, sampler, done
                )
            if limit and not done:
                bar.close()
                return False
        bar.close()
        if self.sharded:
            self._unshard_model(step_module)
        # max_steps reached exactly at the end of this stage: stop before the next one
        return not (max_steps > 0 and self.global_step >= max_steps)

    def _runner(self, step_module: TrainStep) -> nn.Module:
        """The step as it runs: sharded in place (``train.sharding: fsdp``) or wrapped for
        DDP under torchrun."""
        if self.sharded:
            return shard(step_module, self.device, self.context.world_size)
        runner: nn.Module = step_module
        if self.context.enabled:
            devices = [self.device.index] if self.device.type == "cuda" else None
            runner = DistributedDataParallel(
                runner, device_ids=devices, find_unused_parameters=True
            )
        return runner

    def _load_optimizer(
        self, step_module: TrainStep, optimizer: torch.optim.Optimizer, state: dict[str, Any]
    ) -> None:
        if self.sharded:
            load_optimizer(step_module, optimizer, state)
        else:
            optimizer.load_state_dict(state)
            _fit_moments_to_parameters(optimizer)

    def _unshard_model(self, step_module: TrainStep) -> None:
        """After a sharded stage: the whole weights on every rank, in a fresh model."""
        whole = whole_model_state(step_module)
        with torch.random.fork_rng(devices=[]):  # its throwaway init must not move the stream
            model = TriModalModel(self.config, self.data.tokenizer.vocab_size, self.data.vocabulary)
        model.load_state_dict(whole)
        model.tokenizer = self.data.tokenizer
        self.model = model.to(self.device)
        if self.config.train.compile:
            self.model.compile_parts()

    def _window(self, plan: StagePlan) -> int:
        """Steps per DWA window: one epoch, or a quarter of the stage when that is shorter."""
        per_epoch = max(1, len(self.data.train_rows) // plan.config.batch_size)
        return max(1, min(per_epoch, plan.steps // 4))

    def _train_step(
        self,
        plan: StagePlan,
        step: int,
        runner: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        sampler: LossDrivenTaskSampler | None,
        scaler: torch.amp.GradScaler,
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
        ).to(self.device, non_blocking=True)
        generator = torch.Generator().manual_seed(seed * 7919 + plan.index * 104_729 + step)
        active = plan.stage.active_tasks(sampler)
        with self.precision.autocast():
            loss, parts, weights = runner(self.data.tensors, rows, plan.stage, active, generator)
        total = float(all_reduce_mean(loss.detach(), self.context))
        if not math.isfinite(total):  # every rank sees the same mean, so all stop together
            raise NonFiniteLossError(
                plan.name, step, self.global_step, parts, [self.data.tensors.ids[r] for r in rows]
            )
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)  # clip the true gradients (a no-op without fp16)
        torch.nn.utils.clip_grad_norm_([p for p in runner.parameters() if p.requires_grad], 1.0)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        if sampler is not None:
            # Every rank must draw the same tasks next step: feed the samplers rank-averaged losses.
            observed = {task: parts[task] for task in active if task in parts}
            sampler.update(
                {
                    k: float(all_reduce_mean(torch.tensor(v, device=self.device), self.context))
                    for k, v in observed.items()
                }
            )
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
        step_module: TrainStep,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        weighting: nn.Module | None,
        sampler: LossDrivenTaskSampler | None,
        stage_done: bool,
    ) -> None:
        model_state: dict[str, torch.Tensor] | None = None
        if self.sharded:  # every rank takes part in gathering the shards to rank 0
            model_state, weighting_state, optimizer_state = gathered_states(step_module, optimizer)
        elif self.context.is_main:
            optimizer_state = optimizer.state_dict()
            weighting_state = dict(weighting.state_dict()) if weighting is not None else {}
        if self.context.is_main:
            state = TrainingState(
                stage=position[0],
                step=position[1],
                global_step=self.global_step,
                optimizer=optimizer_state,
                scheduler=scheduler.state_dict(),
                weighting=weighting_state if not stage_done else {},
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
                model_state,
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
    device = resolve_device(config.train.device)
    context = init_distributed(device)
    device = rank_device(device, context)
    torch.manual_seed(config.train.seed)
    out = Path(run_dir)
    with torch_threads(config.train.threads):
        out.mkdir(parents=True, exist_ok=True)
        with FolderLock(out, "training") if context.is_main else nullcontext():
            if context.is_main:
                recovered = recover_directory(out / "checkpoint")
                if recovered:
                    print(f"trimodal train: {recovered}", file=sys.stderr)
            tokenizer = None
            if resume:
                if not (out / "checkpoint").is_dir():
                    raise FileNotFoundError(f"--resume: no checkpoint in {out}")
                tokenizer = TextTokenizer.load(out / "checkpoint" / "tokenizer.json")
            elif context.is_main and (out / "checkpoint").exists():
                raise FileExistsError(
                    f"{out} already holds a run; pass --resume or choose another --out"
                )
            data = prepare_data(config, source, tokenizer)
            if context.is_main:
                atomic_write_text(out / "config.json", json.dumps(to_dict(config), indent=2))
            started = time.perf_counter()
            trainer = Trainer(config, data, out, context, progress, device)
            summary = trainer.run(resume, max_steps)
            summary["train_seconds"] = time.perf_counter() - started
            summary["device"] = str(trainer.device)
            summary["precision"] = f"{trainer.precision.name} ({trainer.precision.reason})"
            return summary
