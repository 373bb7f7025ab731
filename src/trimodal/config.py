"""Recipes: nested dataclasses read from YAML, with dotted ``--set a.b=c`` overrides.

A recipe file only lists what differs from the defaults below. Unknown keys and wrong types are
errors that name the dotted path (``model.image.kind: expected str, got int``). The resolved
config is saved as ``config.json`` with every run and checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, Union

import yaml


class ConfigError(ValueError):
    """A recipe or override is invalid; the message names the dotted path."""


@dataclass
class TextEncoderConfig:
    """Transformer over BPE ids."""

    depth: int = 2
    heads: int = 4
    max_length: int = 48
    causal: bool = False
    """Token ``t`` attends only to tokens ``<= t`` (CLIP's text tower). A bidirectional encoder
    with small learned positions became a bag of words here: "is the square left of the
    circle?" and its mirror encoded alike (cosine 0.999995), so relation and compare questions
    could not be answered; a causal mask makes word order part of every token."""
    causal_questions: bool = False
    """Only typed questions are encoded causally; captions keep bidirectional attention (the
    same weights), so the retrieval embedding is untouched by the mask."""
    tower: str = "none"
    """``none``: token embeddings learned from scratch over the BPE ids. ``minilm``: the frozen
    pretrained all-MiniLM-L6-v2 (``trimodal[towers]``) reads the text first and the trainable
    layers above work on its contextual token states (``modules/encoders/tower_text.py``)."""
    tower_tune: int = 0
    """Fine-tune the tower's last this many of its 6 transformer layers (0: all frozen): they
    start from MiniLM's weights, train with the model (dropout on, as BERT fine-tuning does)
    and are saved in its checkpoint; the layers before them stay frozen and memoized."""
    tower_tune_lr: float = 0.1
    """The tuned layers' learning rate as a share of the stage's ``lr``."""


@dataclass
class ImageEncoderConfig:
    """``kind``: ``conv`` (strided conv stem) or ``patch`` (ViT patch embedding).

    ``stem_norm``: ``group`` or ``batch`` normalization after each conv of the stem.
    """

    kind: str = "conv"
    patch_size: int = 8
    stem_channels: list[int] = field(default_factory=lambda: [32, 64])
    stem_norm: str = "group"
    depth: int = 2
    heads: int = 4
    tower: str = "none"
    """``none`` (the stem above, trained) or ``efficientnet``: frozen EfficientNet-Lite0
    (``trimodal[towers]``) reads the image instead of the stem, and a trainable 1x1 projection
    of its stride-32 feature map feeds the transformer (``modules/encoders/tower_image.py``)."""
    tower_scale: int = 2
    """The tower reads the image enlarged this many times (bicubic), so a 64 px image gives a
    ``64 * scale / 32`` grid: 4 x 4 at the default 2."""
    tower_tune: int = 0
    """Fine-tune the tower's last this many MBConv blocks (0: all frozen; at most 16): they
    start from the ImageNet weights, train with the model and are saved in its checkpoint, while
    the blocks before them stay frozen and memoized. Their batch norms keep ImageNet's
    statistics (eval mode)."""
    tower_tune_lr: float = 0.1
    """The tuned blocks' learning rate as a share of the stage's ``lr``."""


@dataclass
class AudioEncoderConfig:
    """Log-mel -> tokens, ``subsample`` frames per token (a power of two).

    ``stack`` frames are first concatenated and projected (a cheap stride-``stack`` patch
    embedding); stride-2 convs make up the rest of the subsampling.
    """

    subsample: int = 16
    stack: int = 4
    depth: int = 2
    heads: int = 4


@dataclass
class VideoEncoderConfig:
    """Clips ``[B, frames, 3, S, S]`` -> tokens (``depth`` 0: no video encoder).

    ``kind``: ``tubelet`` (one linear 3-D patch embedding: ``tubelet`` frames by
    ``patch_size`` pixels squared a token) or ``conv`` (frames and their differences through
    stride-2 3-D convs of ``stem_channels``, then a stride-(``tubelet``, 2, 2) conv to the model
    width: ``patch_size`` must be ``2 ** (len(stem_channels) + 1)``). Either way a clip gives
    ``frames / tubelet * (frame_size / patch_size) ** 2`` tokens.

    ``motion_classes``: outputs of a per-token motion head for dense motion supervision (the
    ``video_objects`` task; 0: no head). The world's clips need 6: its five motions plus "no
    object here".
    """

    depth: int = 0
    heads: int = 4
    frames: int = 8
    frame_size: int = 32
    tubelet: int = 2
    patch_size: int = 8
    kind: str = "tubelet"
    stem_channels: list[int] = field(default_factory=lambda: [24, 48])
    motion_classes: int = 0


@dataclass
class FusionConfig:
    """Which fusion module (see ``trimodal.modules.fusion``) and its options."""

    name: str = "cross_attention"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class DecoderModelConfig:
    """The generative decoder (``depth`` 0: none).

    ``conditioning``: how it reads image/audio tokens: ``prefix`` (before the text, LLaVA-style)
    or ``cross_attention`` (a memory every block attends to).
    """

    depth: int = 0
    dim: int = 128
    heads: int = 4
    mlp_ratio: float = 4.0
    positions: str = "learned"
    max_positions: int = 160
    conditioning: str = "prefix"
    memory_positions: bool = False
    """Add a fixed sin/cos table (a token's index within its modality) to the encoder tokens
    before the projector's linear layer."""
    memory_grid: bool = False
    """With ``memory_positions``: image tokens take the 2-D sin/cos grid table instead (half
    the channels encode the token's column, half its row), as ``model.fusion_positions`` gives
    fusion; audio tokens keep the 1-D table."""
    grounding_bins: int = 0
    """A linear head over the decoder's final state at each token of an object phrase in a
    caption predicts where that object is: its column bin and row bin on a ``bins x bins``
    grid (0: no head). Trained by ``train.generate.grounding_weight``."""


@dataclass
class ModelConfig:
    """Widths and parts of the tri-modal model."""

    dim: int = 128
    embed_dim: int = 128
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    image: ImageEncoderConfig = field(default_factory=ImageEncoderConfig)
    audio: AudioEncoderConfig = field(default_factory=AudioEncoderConfig)
    video: VideoEncoderConfig = field(default_factory=VideoEncoderConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    backbone_depth: int = 2
    backbone_heads: int = 4
    pool: str = "mean"
    """How encoders pool tokens into the shared embedding: ``mean`` or ``attention``."""
    position_init: str = "normal"
    """Initial learned positions of the text and image encoders: ``normal`` (N(0, 0.02), small
    next to the token features) or ``sincos`` (a sin/cos table on their scale). ``sincos`` made
    the default recipe worse (docs/model.md), so ``normal`` stays the default."""
    fusion_image_pool: int = 1
    """Average-pool the image token grid by this factor before fusion (K/V cost / pool**2)."""
    fusion_positions: bool = False
    """Add a fixed 2-D sin/cos table (column, row) to the image tokens fusion reads, so that
    where an object is stays legible next to what it is (spatial relations need it)."""
    transcriber_depth: int = 0
    """A CTC transcriber over audio tokens: this many transformer blocks and a linear layer onto
    the tokenizer's vocabulary plus a blank (trained by the ``transcribe`` task of stage 2b).
    With it, a spoken question is answered from its greedy transcript, read as a typed question
    (typed questions learn from every question of the scene graphs; spoken ones from one a
    scene). 0: none; spoken questions are fused as audio tokens."""
    grounding_bins: int = 0
    """A grounding head on the fused state predicts the grid cell (column and row, each in
    ``grounding_bins`` bins) of the first two objects a typed question names; 0: no head.
    Trained from a question pool (``train.multitask.question_pool``, ``train.reason``)."""
    decoder: DecoderModelConfig = field(default_factory=DecoderModelConfig)
    length_groups: int = 4
    """Encode a batch of captions, questions or audio in up to this many groups of rows of
    similar length (at least 16 rows a group), each padded only to its own longest row. The
    outputs are the same as one padded batch (the encoders are padding-invariant); the work
    on padding is not: a batch of spoken captions is about half padding. 1: one group."""
    vqa_inputs: str = "both"
    """What the answer head sees: ``both`` (image + question), or a blind baseline that sees
    only the ``question`` or only the ``image`` (trained with the same recipe otherwise)."""


@dataclass
class AudioAugmentConfig:
    """Training-time augmentation of spoken clips (captions and questions), applied to their
    log-mel features; see :class:`trimodal.data.mel_effects.AudioAugment`."""

    probability: float = 0.0
    """Share of clips heard through a channel drawn from white, pink or babble noise at an SNR
    in ``snr``, or the telephone band (0: none)."""
    snr: list[float] = field(default_factory=lambda: [5.0, 25.0])
    """``[low, high]`` dB of the noise channels."""
    rate: float = 0.0
    """Speaking rates change by a factor up to ``1 + rate`` either way (0: none)."""
    pitch: float = 0.0
    """Pitch shifts up to this many semitones either way (0: none)."""
    masks: int = 0
    """SpecAugment time masks and frequency masks per clip (0: none)."""
    frozen_view: bool = True
    """Stages that keep the audio tower frozen encode one augmented view of each clip (else
    the clean clips)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise ConfigError(
                f"data.audio_augment.probability must be in [0, 1], got {self.probability}"
            )
        if len(self.snr) != 2 or self.snr[0] > self.snr[1]:
            raise ConfigError(f"data.audio_augment.snr must be [low, high] dB, got {self.snr}")
        for name in ("rate", "pitch", "masks"):
            if getattr(self, name) < 0:
                raise ConfigError(f"data.audio_augment.{name} must be >= 0")


@dataclass
class DataConfig:
    """Preprocessing shared by training and inference."""

    image_size: int = 64
    n_mels: int = 64
    vocab_size: int = 600
    augment: bool = False
    augment_noise: float = 0.0
    """Largest sigma of training-time Gaussian pixel noise (0: none); see ``augment_probability``."""
    augment_blur: float = 0.0
    """Largest sigma (pixels) of training-time Gaussian blur (0: none)."""
    augment_probability: float = 0.5
    """Share of training images that get noise (and, drawn again, blur)."""
    augment_noise_views: int = 0
    """0: fresh pixel noise on every step. ``K``: each image's noise is one of ``K`` fixed
    draws (sigma and pattern seeded by the image's bytes), so a frozen image tower
    (``model.image.tower``) reads each noisy view once and keeps it."""
    augment_typos: float = 0.0
    """Largest per-letter typo rate of the question pools' questions (a share
    ``augment_typos_share`` of them get typos at a rate drawn up to it; 0: none)."""
    augment_typos_share: float = 0.5
    """Share of the pooled questions that get typos. Each typo makes a new text, so with a
    frozen text tower (``model.text.tower``) this share sets how many texts the tower reads."""
    augment_word_dropout: float = 0.0
    """Largest per-word dropout rate of the question pools' questions (half of them, drawn apart
    from the typos, lose words at a rate drawn up to it; 0: none)."""
    audio_augment: AudioAugmentConfig = field(default_factory=AudioAugmentConfig)
    """Training-time noise, channel, rate, pitch and SpecAugment on spoken clips."""
    phrasing: str = "canonical"
    """How the training-time question pools word their questions: ``canonical`` (as the world
    generates them) or ``varied`` (each also said in a training form of the phrasing grammar,
    see ``trimodal.world.phrasing``). Held-out forms are never used for training."""


@dataclass
class StageConfig:
    """One training stage. ``epochs`` may be fractional; 0 skips the stage."""

    epochs: float = 1.0
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 50


@dataclass
class VisionConfig(StageConfig):
    """Stage 0: the image tower alone on image-only tasks (``attributes``, ``objects``).

    Image steps cost a fraction of a full multi-task step, so a short warm-up buys the image
    tower many cheap updates on scene-graph targets before the other stages start.
    ``epochs`` 0 (the default) skips the stage.
    """

    epochs: float = 0.0
    tasks: list[str] = field(default_factory=lambda: ["objects"])


@dataclass
class AlignConfig(StageConfig):
    """Stage 1: contrastive alignment over modality pairs ("image-text", "audio-text", ...)."""

    pairs: list[str] = field(default_factory=lambda: ["image-text", "audio-text"])
    loss: str = "info_nce"
    margin: float = 0.2
    auxiliary: list[str] = field(default_factory=list)
    """Image-only tasks added to the contrastive loss at weight 1 (``attributes``,
    ``objects``): the image tower gets direct supervision from the first step."""
    anchors: dict[str, str] = field(default_factory=dict)
    """``{pair: modality}``, e.g. ``{"audio-text": "text"}``: that pair's loss moves the other
    modality toward the named one, which keeps only ``anchor_gradient`` of the pair's gradient
    (0: detached), so text stays shaped by images and audio learns to land in that space
    (ImageBind's recipe with a hub that still learns)."""
    anchor_gradient: float = 0.0
    """Fraction of an anchored pair's gradient that still reaches its anchor (0: none)."""


@dataclass
class MultiTaskConfig(StageConfig):
    """Stage 2: tasks under a joint loss.

    ``weighting``: static | uncertainty | dwa. ``scheduler``: ``all`` computes every task each
    step; ``loss_driven`` samples ``tasks_per_step`` tasks by recent loss.
    """

    tasks: list[str] = field(
        default_factory=lambda: ["contrastive", "vqa_typed", "vqa_spoken", "attributes"]
    )
    weighting: str = "uncertainty"
    static_weights: dict[str, float] = field(default_factory=dict)
    scheduler: str = "all"
    tasks_per_step: int = 2
    questions_per_scene: int = 2
    question_pool: bool = False
    """Typed questions come from every valid question of each training scene's graph
    (balanced over families and answers) instead of the manifest's few stored ones."""
    pool_family_weights: dict[str, float] = field(default_factory=dict)
    """Relative draw weight of question families in the pool (1 where absent)."""
    grounding_weight: float = 1.0
    """Weight of the grounding loss inside ``vqa_typed`` (with ``model.grounding_bins``)."""


@dataclass
class ReasonConfig(StageConfig):
    """Stage 2b: questions over frozen image and audio towers, with the grounding loss.

    The image and audio encoders' outputs are computed once at the start of the stage (eval
    mode, no gradient), so a step costs only the text tower, fusion, backbone and heads: about
    a tenth of a multi-task step. Typed questions come from every valid question of each
    training scene's graph (``family_weights`` as in ``train.multitask.pool_family_weights``),
    ``batch_size`` scenes and ``questions_per_scene`` questions each per step. ``epochs`` 0
    skips the stage.
    """

    epochs: float = 0.0
    tasks: list[str] = field(default_factory=lambda: ["vqa_typed"])
    """Any of ``vqa_typed`` (pooled questions and grounding), ``vqa_spoken`` (the stored
    spoken questions), ``contrastive`` (``train.align.pairs``) and ``transcribe`` (CTC of the
    stored spoken questions' words, with ``model.transcriber_depth``): ``vqa_spoken`` and
    ``contrastive`` keep the spoken path and the shared embedding space in step with the
    changing text tower."""
    questions_per_scene: int = 2
    family_weights: dict[str, float] = field(default_factory=dict)
    grounding_weight: float = 1.0
    """Weight of the grounding loss (with ``model.grounding_bins``) beside the answer loss."""


@dataclass
class BindConfig(StageConfig):
    """Stage 2c: re-fit one modality's projection head into another's fixed embedding space.

    At the start of the stage every training row's ``modality`` features (the encoder's pooled
    output before its projection) and ``anchor`` embeddings are computed once, in eval mode;
    then only ``<modality>_encoder.projection`` trains, by InfoNCE from each row to *all*
    training rows' anchors (rows whose content is identical are not negatives). Thousands of
    negatives per step for the cost of a matmul: ``modality: audio, anchor: text`` moves the
    audio embeddings onto the text space that images were aligned with, which is what audio
    retrieval (and emergent audio->image binding) reads. ``epochs`` 0 skips the stage.
    """

    epochs: float = 0.0
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 0.0
    warmup_steps: int = 10
    modality: str = "audio"
    anchor: str = "text"


@dataclass
class GenerateConfig(StageConfig):
    """Stage 3: the decoder learns captions, transcripts, answers and dialogues.

    ``freeze_encoders`` keeps the encoders fixed (LLaVA's first stage), training only the
    projector and the decoder over encoder outputs computed once, in eval mode, at the start
    of the stage (no image augmentation). ``epochs`` 0 skips the stage. The stage's loss is the
    weighted mean of the tasks' losses: ``task_weights`` maps a task to its weight (1 when
    absent). ``caption_variants`` draws the caption of the ``caption`` and ``dialogue`` tasks
    afresh each step among every caption the scene's graph supports (every template and object
    order; see :mod:`trimodal.world.caption_pool`) instead of the one stored caption;
    ``transcribe`` keeps the stored caption, which its audio speaks. ``grounding_weight``
    adds, to the caption task's loss, that weight times the cross-entropy of the decoder's
    grounding head (``model.decoder.grounding_bins``) at the object-phrase tokens of the drawn
    caption variant (so it needs ``caption_variants``).
    """

    epochs: float = 0.0
    tasks: list[str] = field(
        default_factory=lambda: ["caption", "transcribe", "vqa_typed", "vqa_spoken", "dialogue"]
    )
    task_weights: dict[str, float] = field(default_factory=dict)
    freeze_encoders: bool = True
    caption_variants: bool = False
    grounding_weight: float = 0.0


@dataclass
class TrainConfig:
    """The stages plus run-wide settings; the stages run in the order ``stages`` lists."""

    seed: int = 0
    threads: int = 0
    device: str = "auto"
    """``auto`` (CUDA, else MPS, else CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``; under
    torchrun on GPUs each rank takes ``cuda:LOCAL_RANK``."""
    precision: str = "auto"
    """``auto``, ``fp32``, ``bf16`` or ``fp16`` autocast (weights and optimizer stay fp32);
    ``auto`` takes bf16 only where it measures fast (see :mod:`trimodal.hardware`)."""
    compile: bool = False
    """``torch.compile`` the model's tensor-heavy parts (:meth:`TriModalModel.compile_parts`;
    the first steps of each shape pay the compile time)."""
    sharding: str = "ddp"
    """Under torchrun: ``ddp`` (DistributedDataParallel) or ``fsdp`` (FSDP2 ``fully_shard``)."""
    stages: list[str] = field(
        default_factory=lambda: ["vision", "align", "multitask", "reason", "generate", "bind"]
    )
    """Stages to run, in order (see :mod:`trimodal.train.stages`); one with ``epochs: 0`` is
    skipped. A stage's position seeds its data order, so reordering changes the batches."""
    vision: VisionConfig = field(default_factory=VisionConfig)
    align: AlignConfig = field(default_factory=AlignConfig)
    multitask: MultiTaskConfig = field(default_factory=MultiTaskConfig)
    reason: ReasonConfig = field(default_factory=ReasonConfig)
    bind: BindConfig = field(default_factory=BindConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    log_every: int = 20
    checkpoint_every: int = 200
    max_train_scenes: int = 0


@dataclass
class Config:
    """A full recipe."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


T = TypeVar("T")


def _is_optional(kind: Any) -> bool:
    origin = typing.get_origin(kind)
    return origin in (Union, types.UnionType) and type(None) in typing.get_args(kind)


def _convert(value: Any, kind: Any, path: str) -> Any:
    """Check ``value`` against annotation ``kind`` and build nested dataclasses."""
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        if not isinstance(value, dict):
            raise ConfigError(f"{path or 'config'}: expected a mapping, got {type(value).__name__}")
        return from_dict(kind, value, path)
    origin = typing.get_origin(kind)
    if _is_optional(kind):
        if value is None:
            return None
        inner = next(a for a in typing.get_args(kind) if a is not type(None))
        return _convert(value, inner, path)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, got {type(value).__name__}")
        (item,) = typing.get_args(kind)
        return [_convert(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__}")
        _, item = typing.get_args(kind)
        return {str(k): _convert(v, item, f"{path}.{k}") for k, v in value.items()}
    if kind is Any:
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is float and isinstance(value, str):
        try:  # PyYAML reads "1e-3" (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ConfigError(f"{path}: expected {kind.__name__}, got {type(value).__name__} {value!r}")
    return value


def from_dict(cls: type[T], data: dict[str, Any], path: str = "") -> T:
    """Build dataclass ``cls`` from a (partial) mapping; missing keys keep their defaults."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - names
    if unknown:
        where = path or "config"
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(names)}")
    values = {k: _convert(v, hints[k], f"{path}.{k}" if path else k) for k, v in data.items()}
    return cls(**values)


def to_dict(config: Any) -> dict[str, Any]:
    """Plain nested dict of a dataclass config."""
    return dataclasses.asdict(config)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` strings (values parsed as YAML) to a nested dict, in place."""
    for override in overrides:
        if "=" not in override:
            raise ConfigError(f"override {override!r} is not of the form a.b=c")
        dotted, raw = override.split("=", 1)
        keys = dotted.strip().split(".")
        node = data
        for key in keys[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {override!r}: {key} is not a section")
            node = child
        node[keys[-1]] = yaml.safe_load(raw)
    return data


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict) and key != "options":
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def load_config(
    path: str | os.PathLike[str] | None = None, overrides: list[str] | None = None
) -> Config:
    """Defaults, then the YAML recipe at ``path`` (if any), then ``overrides``."""
    data: dict[str, Any] = {}
    if path is not None:
        source = Path(path)
        if not source.is_file():
            raise FileNotFoundError(f"recipe not found: {source}")
        try:
            loaded = yaml.safe_load(source.read_text()) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"{source}: invalid YAML: {error}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{source}: a recipe must be a mapping at the top level")
        data = loaded
    if overrides:
        data = apply_overrides(data, overrides)
    try:
        return from_dict(Config, data)
    except ConfigError as error:
        where = f"{path}: " if path else ""
        raise ConfigError(f"{where}{error}") from None


def config_from_json(text: str) -> Config:
    """Inverse of ``json.dumps(to_dict(config))``: rebuild a saved config exactly."""
    defaults = to_dict(Config())
    return from_dict(Config, _merge(defaults, json.loads(text)))
