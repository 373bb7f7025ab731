"""Robustness curves: accuracy and R@1 as each input is corrupted more and more.

Images get Gaussian noise, Gaussian blur and an FGSM attack (on the VQA loss); audio gets white
and babble noise at decreasing SNRs (spoken captions and spoken questions alike); text gets
character typos; a stored modality (video) gets the corruptions its modality object lists
(:meth:`~trimodal.modalities.base.StoredModality.corruptions`). Each level re-runs VQA and the retrieval direction the corrupted modality
queries or is queried by, on the same subset of scenes as the clean reference. Corrupted images
are re-quantized to uint8, as a real corrupted photo would be.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from trimodal.data import audio_effects
from trimodal.data.dataset import pad_sequences
from trimodal.data.manifest import Manifest, Sample
from trimodal.data.tensors import SceneTensors, logmel_of_waves
from trimodal.data.transforms import ImageTransform, load_audio
from trimodal.eval import corruptions
from trimodal.eval.basic import retrieval_metrics, vqa_accuracy
from trimodal.inference import Model
from trimodal.modalities import get_modality
from trimodal.modalities.base import StoredModality

Metrics = dict[str, float]


@dataclass
class RobustnessSettings:
    """Levels of every corruption (the clean reference is always measured too)."""

    image_noise_sigma: list[float] = field(default_factory=lambda: [0.05, 0.1, 0.2, 0.4])
    image_blur_sigma: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.0, 3.0])
    audio_snr_db: list[float] = field(default_factory=lambda: [20.0, 10.0, 5.0, 0.0])
    babble_talkers: int = 3
    typo_rate: list[float] = field(default_factory=lambda: [0.05, 0.1, 0.2, 0.3])
    fgsm_epsilon: list[float] = field(default_factory=lambda: [1 / 255, 2 / 255, 4 / 255, 8 / 255])
    media_levels: list[float] = field(default_factory=lambda: [0.05, 0.1, 0.2, 0.4])
    """Levels of each stored modality's corruptions (noise sigma, drop probability, ...)."""
    seed: int = 0


@dataclass
class CurveSpec:
    """One corruption: its x axis and how a level turns the clean store into a corrupted one."""

    name: str
    x_label: str
    levels: list[float]
    corrupt: Callable[[float], SceneTensors]
    measures: tuple[str, ...]


def measure(model: Model, store: SceneTensors, names: Sequence[str]) -> Metrics:
    """The named metrics on every row of ``store``: ``vqa_typed``, ``vqa_spoken``, ``A->B R@1``."""
    network = model.network
    store = store.to(network.device)  # corrupted on the host, measured where the model runs
    rows = torch.arange(len(store), device=network.device)
    out: Metrics = {}
    with torch.no_grad():
        if any(name.startswith("vqa_") for name in names):
            scores = vqa_accuracy(network, store, rows)
            for kind in ("typed", "spoken"):
                if f"vqa_{kind}" in names and kind in scores:
                    out[f"vqa_{kind}"] = scores[kind]["accuracy"]
        directions = tuple(
            tuple(name.removesuffix(" R@1").split("->")) for name in names if "->" in name
        )
        if directions:
            retrieval = retrieval_metrics(network, store, rows, directions)  # type: ignore[arg-type]
            for query, target in directions:
                key = f"{query}->{target}"
                if key in retrieval:
                    out[f"{key} R@1"] = retrieval[key]["R@1"]
    return out


def robustness_curves(
    model: Model,
    manifest: Manifest,
    tensors: SceneTensors,
    rows: torch.Tensor,
    settings: RobustnessSettings,
) -> dict[str, Any]:
    """Every curve on ``rows`` (a subset of the evaluation split).

    Returns:
        ``{"scenes": n, "clean": metrics, "curves": {name: {"x_label", "levels",
        metric: [value per level]}}}``.
    """
    store = tensors.subset(rows).to(torch.device("cpu"))  # corruptions work on the host
    samples = [manifest.samples[i] for i in rows.tolist()]
    specs = _specs(model, store, samples, settings)
    every = sorted({m for spec in specs for m in spec.measures})
    clean = measure(model, store, every)
    curves: dict[str, Any] = {}
    for spec in specs:
        curve: dict[str, Any] = {"x_label": spec.x_label, "levels": spec.levels}
        points = [measure(model, spec.corrupt(level), spec.measures) for level in spec.levels]
        for metric in spec.measures:
            if metric in clean:
                curve[metric] = [point.get(metric, float("nan")) for point in points]
        if len(curve) > 2:  # some metric applies (a manifest without audio has no audio curve)
            curves[spec.name] = curve
    return {"scenes": len(rows), "clean": clean, "curves": curves}


def _specs(
    model: Model, store: SceneTensors, samples: list[Sample], settings: RobustnessSettings
) -> list[CurveSpec]:
    image_measures = ("vqa_typed", "vqa_spoken", "text->image R@1")
    audio_measures = ("vqa_spoken", "audio->text R@1", "audio->image R@1")
    waves = _waveforms(model, samples, store)
    seed = settings.seed
    return [
        CurveSpec(
            "image_noise",
            "Gaussian noise sigma (pixels in [0, 1])",
            settings.image_noise_sigma,
            lambda s: _with_images(
                store,
                corruptions.gaussian_noise(_pixels(store), s, torch.Generator().manual_seed(seed)),
            ),
            image_measures,
        ),
        CurveSpec(
            "image_blur",
            "Gaussian blur sigma (pixels)",
            settings.image_blur_sigma,
            lambda s: _with_images(store, corruptions.gaussian_blur(_pixels(store), s)),
            image_measures,
        ),
        CurveSpec(
            "image_fgsm",
            "FGSM epsilon (pixels in [0, 1])",
            settings.fgsm_epsilon,
            lambda e: _with_images(store, _fgsm_images(model, store, e)),
            image_measures,
        ),
        CurveSpec(
            "audio_white_noise",
            "SNR (dB), white noise",
            settings.audio_snr_db,
            lambda snr: _with_audio(model, store, waves, snr, "white", settings),
            audio_measures,
        ),
        CurveSpec(
            "audio_babble_noise",
            f"SNR (dB), babble of {settings.babble_talkers} talkers",
            settings.audio_snr_db,
            lambda snr: _with_audio(model, store, waves, snr, "babble", settings),
            audio_measures,
        ),
        CurveSpec(
            "text_typos",
            "typo rate (per letter)",
            settings.typo_rate,
            lambda rate: _with_typos(model, store, samples, rate, seed),
            ("vqa_typed", "text->image R@1", "text->audio R@1"),
        ),
        *_media_specs(store, settings),
    ]


def _media_specs(store: SceneTensors, settings: RobustnessSettings) -> list[CurveSpec]:
    """One curve per corruption of each stored modality the store carries (``video``)."""
    specs = []
    for name in store.media:
        modality = get_modality(name)
        assert isinstance(modality, StoredModality)
        for kind, corrupt in modality.corruptions().items():
            specs.append(
                CurveSpec(
                    f"{name}_{kind}",
                    f"{kind.replace('_', ' ')} level",
                    settings.media_levels,
                    partial(_with_media, store, name, corrupt, settings.seed),
                    ("vqa_typed", "vqa_spoken", f"text->{name} R@1", f"audio->{name} R@1"),
                )
            )
    return specs


def _with_media(
    store: SceneTensors, name: str, corrupt: Any, seed: int, level: float
) -> SceneTensors:
    """``store`` with modality ``name``'s stored rows corrupted at ``level``."""
    media = store.media[name]
    corrupted = corrupt(media.data, level, torch.Generator().manual_seed(seed))
    return replace(store, media=store.media | {name: replace(media, data=corrupted)})


# -- images -------------------------------------------------------------------------------------
def _pixels(store: SceneTensors) -> torch.Tensor:
    return store.images.float() / 255.0


def _with_images(store: SceneTensors, pixels: torch.Tensor) -> SceneTensors:
    """``store`` with its images replaced by ``pixels`` ``[N, 3, S, S]`` in [0, 1] (re-quantized)."""
    return replace(store, images=(pixels.clamp(0, 1) * 255).round().to(torch.uint8))


def _fgsm_images(
    model: Model, store: SceneTensors, epsilon: float, batch: int = 128
) -> torch.Tensor:
    """FGSM on the typed-VQA cross-entropy of each scene's questions, in pixel space."""
    network = model.network
    normalize = ImageTransform(size=store.images.shape[-1]).normalize
    out = []
    for start in range(0, len(store), batch):
        rows = torch.arange(start, min(start + batch, len(store)), device="cpu")
        scene, question = torch.nonzero(store.answers[rows] >= 0, as_tuple=True)
        pixels = _pixels(store)[rows]
        if scene.numel() == 0:
            out.append(pixels)
            continue
        ids, mask = (
            store.question_ids[rows[scene], question],
            store.question_mask[rows[scene], question],
        )
        targets = store.answers[rows[scene], question]

        def loss(
            x: torch.Tensor,
            ids: torch.Tensor = ids,
            mask: torch.Tensor = mask,
            scene: torch.Tensor = scene,
            targets: torch.Tensor = targets,
        ) -> torch.Tensor:
            image = network.image_context(network.encode("image", normalize(x)))
            text = network.encode_question(ids, mask).sequence()
            logits = network.answer_logits({"image": image.select(scene), "text": text})
            return F.cross_entropy(logits.float(), targets.to(logits.device))

        out.append(corruptions.fgsm(pixels, loss, epsilon))
    return torch.cat(out)


# -- audio --------------------------------------------------------------------------------------
@dataclass
class Waveforms:
    """Raw clips of the subset: spoken captions and spoken questions (None where absent)."""

    captions: list[np.ndarray | None]
    questions: list[np.ndarray | None]


def _waveforms(model: Model, samples: list[Sample], store: SceneTensors) -> Waveforms:
    rate = model.log_mel.sample_rate

    def load(path: Any) -> np.ndarray | None:
        return None if path is None else load_audio(path, rate).numpy().astype(np.float64)

    questions = []
    for sample, index in zip(samples, store.spoken_index.tolist(), strict=True):
        path = sample.questions[index].spoken_question if index >= 0 else None
        questions.append(load(path))
    return Waveforms([load(s.audio) for s in samples], questions)


def _noisy(
    clips: list[np.ndarray | None],
    snr_db: float,
    kind: str,
    talkers: int,
    generator: np.random.Generator,
) -> list[torch.Tensor | None]:
    present = [i for i, clip in enumerate(clips) if clip is not None]
    out: list[torch.Tensor | None] = [None] * len(clips)
    for i in present:
        clip = clips[i]
        assert clip is not None
        if kind == "white":
            noise = audio_effects.white_noise(len(clip), generator)
        else:
            others = [clips[j] for j in present if j != i]
            chosen = [o for o in others if o is not None]
            noise = audio_effects.babble_noise(
                chosen, len(clip), min(talkers, len(chosen)), generator
            )
        noisy = audio_effects.add_noise_at_snr(clip, noise, snr_db)
        out[i] = torch.from_numpy(noisy.astype(np.float32))
    return out


def _with_audio(
    model: Model,
    store: SceneTensors,
    waves: Waveforms,
    snr_db: float,
    kind: str,
    settings: RobustnessSettings,
) -> SceneTensors:
    generator = np.random.default_rng([settings.seed, int(snr_db * 10) + 1000])
    talkers = settings.babble_talkers
    captions = _noisy(waves.captions, snr_db, kind, talkers, generator)
    questions = _noisy(waves.questions, snr_db, kind, talkers, generator)
    return replace(
        store,
        caption_audio=logmel_of_waves(captions, model.log_mel),
        spoken_audio=logmel_of_waves(questions, model.log_mel),
    )


# -- text ---------------------------------------------------------------------------------------
def _with_typos(
    model: Model, store: SceneTensors, samples: list[Sample], rate: float, seed: int
) -> SceneTensors:
    generator = np.random.default_rng([seed, int(rate * 1000)])
    tokenizer, limit = model.tokenizer, model.network.config.model.text.max_length

    def encode(text: str) -> torch.Tensor:
        ids = tokenizer.encode(corruptions.typos(text, rate, generator))[:limit]
        return torch.tensor(ids or [tokenizer.unk_id], dtype=torch.long, device="cpu")

    caption_ids, caption_mask = store.caption_ids.clone(), store.caption_mask.clone()
    with_text = [i for i, s in enumerate(samples) if s.text is not None]
    if with_text:
        ids, mask = pad_sequences(
            [encode(samples[i].text or "") for i in with_text], tokenizer.pad_id
        )
        caption_ids, caption_mask = (
            _widen(caption_ids, ids.shape[1], tokenizer.pad_id),
            _widen(caption_mask, ids.shape[1], False),
        )
        caption_ids[with_text], caption_mask[with_text] = tokenizer.pad_id, False
        caption_ids[with_text, : ids.shape[1]] = ids
        caption_mask[with_text, : ids.shape[1]] = mask
    question_ids, question_mask = store.question_ids.clone(), store.question_mask.clone()
    slots = [(i, q) for i, s in enumerate(samples) for q in range(len(s.questions))]
    if slots:
        ids, mask = pad_sequences(
            [encode(samples[i].questions[q].question) for i, q in slots], tokenizer.pad_id
        )
        question_ids = _widen(question_ids, ids.shape[1], tokenizer.pad_id)
        question_mask = _widen(question_mask, ids.shape[1], False)
        scene = torch.tensor([s for s, _ in slots], device="cpu")
        question = torch.tensor([q for _, q in slots], device="cpu")
        question_ids[scene, question] = tokenizer.pad_id
        question_mask[scene, question] = False
        question_ids[scene, question, : ids.shape[1]] = ids
        question_mask[scene, question, : ids.shape[1]] = mask
    return replace(
        store,
        caption_ids=caption_ids,
        caption_mask=caption_mask,
        question_ids=question_ids,
        question_mask=question_mask,
    )


def _widen(values: torch.Tensor, width: int, fill: Any) -> torch.Tensor:
    """Pad the last dimension of ``values`` with ``fill`` up to ``width`` (never narrows)."""
    missing = width - values.shape[-1]
    if missing <= 0:
        return values
    padding = torch.full(
        (*values.shape[:-1], missing), fill, dtype=values.dtype, device=values.device
    )
    return torch.cat([values, padding], dim=-1)
