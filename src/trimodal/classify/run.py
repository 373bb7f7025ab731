"""A trained classification run: the fused model and its image-only and text-only baselines,
the tokenizer, the classes and the columns it reads, saved as one folder.

Layout of a run::

    RUN/classify.json        columns, classes, settings, temperatures, split sizes, fit history
    RUN/tokenizer.json       byte-level BPE trained on the training rows' texts
    RUN/<variant>/config.json, RUN/<variant>/model.safetensors   per variant (fused, image, text)
    RUN/metrics.json         each variant's test scores
    RUN/report/              report.md, reliability.png, explanations.png (written by eval)

The folder is written to a staging folder and swapped in whole (never half a run).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from trimodal.classify.labels import LabelSpace
from trimodal.classify.metrics import classification_metrics
from trimodal.classify.model import ClassifierConfig, ImageTextClassifier
from trimodal.classify.table import Table, TableSpec, split_rows
from trimodal.classify.train import EncodedRows, FitResult, FitSettings, fit, logits_of
from trimodal.config import TextEncoderConfig, from_dict, to_dict
from trimodal.data.tensors import tokenized
from trimodal.data.tokenizer import TextTokenizer, train_tokenizer
from trimodal.io import atomic_write_text
from trimodal.models.checkpoint import save_weights, write_directory_atomically

VARIANTS: dict[str, tuple[str, ...]] = {
    "fused": ("image", "text"),
    "image": ("image",),
    "text": ("text",),
}
"""Each model a run trains and the inputs it reads; ``fused`` is the one that predicts."""
TOKENIZER_VOCABULARY = 1000


@dataclass
class ModelOptions:
    """Architecture choices of a run's models (:class:`ClassifierConfig` takes the rest)."""

    image_size: int = 64
    dim: int = 128
    fusion: str = "concat"
    fusion_depth: int = 1
    max_length: int = 64
    """Tokens read per text (longer texts are cut)."""


@dataclass
class ClassifierRun:
    """Everything prediction and evaluation need, loaded or freshly trained."""

    spec: TableSpec
    labels: LabelSpace
    tokenizer: TextTokenizer
    models: dict[str, ImageTextClassifier]
    temperatures: dict[str, float]
    info: dict[str, Any]
    max_length: int = 64
    """Longest token sequence read per text."""

    @property
    def image_size(self) -> int:
        """Side of the square images the models read."""
        return self.models["fused"].config.image_size

    @property
    def device(self) -> torch.device:
        """Where the models are."""
        return next(self.models["fused"].parameters()).device

    def encode(self, table: Table, with_targets: bool = True) -> EncodedRows:
        """A table's rows as model inputs (targets empty when ``with_targets`` is False)."""
        ids, mask = tokenized(self.tokenizer, table.texts, self.max_length)
        if with_targets:
            places = [f"{table.source}:{row.line}" for row in table.rows]
            targets = self.labels.targets([row.labels for row in table.rows], places)
        else:
            targets = torch.zeros(len(table.rows), dtype=torch.long)
        return EncodedRows(table.pixels, ids, mask, targets)

    def probabilities(self, variant: str, rows: EncodedRows) -> torch.Tensor:
        """Calibrated probabilities ``[N, C]`` of ``variant`` (its logits over its temperature)."""
        logits = logits_of(self.models[variant], rows, self.device)
        return self.labels.probabilities(logits / self.temperatures[variant])

    def all_probabilities(self, rows: EncodedRows) -> dict[str, np.ndarray]:
        """:meth:`probabilities` of every variant, as arrays ``[N, C]``."""
        return {variant: self.probabilities(variant, rows).numpy() for variant in self.models}

    def score(
        self, probabilities: dict[str, np.ndarray], targets: torch.Tensor
    ) -> dict[str, dict[str, Any]]:
        """:func:`classification_metrics` of each variant's probabilities against ``targets``."""
        classes, multi = list(self.labels.classes), self.labels.multi_label
        return {
            variant: classification_metrics(p, targets.numpy(), classes, multi)
            for variant, p in probabilities.items()
        }

    def evaluate(self, rows: EncodedRows) -> dict[str, dict[str, Any]]:
        """:func:`classification_metrics` of every variant on ``rows``."""
        return self.score(self.all_probabilities(rows), rows.targets)

    def save(self, out: str | os.PathLike[str], metrics: dict[str, Any]) -> Path:
        """Write the run folder atomically (see the module docstring)."""

        def write(staging: Path) -> None:
            self.tokenizer.save(staging / "tokenizer.json")
            for variant, model in self.models.items():
                (staging / variant).mkdir()
                atomic_write_text(
                    staging / variant / "config.json",
                    json.dumps(to_dict(model.config), indent=2) + "\n",
                )
                save_weights(model, staging / variant / "model.safetensors")
            record = {
                "spec": asdict(self.spec),
                "classes": list(self.labels.classes),
                "multi_label": self.labels.multi_label,
                "temperatures": self.temperatures,
                "max_length": self.max_length,
                **self.info,
            }
            atomic_write_text(staging / "classify.json", json.dumps(record, indent=2) + "\n")
            atomic_write_text(staging / "metrics.json", json.dumps(metrics, indent=2) + "\n")

        return write_directory_atomically(Path(out), write)

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: torch.device) -> ClassifierRun:
        """Load a run folder written by :meth:`save` onto ``device``.

        Raises:
            FileNotFoundError: not a run folder (names the missing file).
        """
        folder = Path(path)
        record_path = folder / "classify.json"
        if not record_path.is_file():
            raise FileNotFoundError(
                f"{folder} is not a classification run (no classify.json); train one with "
                "trimodal classify train"
            )
        record = json.loads(record_path.read_text())
        models = {}
        for variant in VARIANTS:
            if not (folder / variant / "config.json").is_file():
                continue
            config = from_dict(
                ClassifierConfig, json.loads((folder / variant / "config.json").read_text())
            )
            model = ImageTextClassifier(config)
            model.load_state_dict(load_file(str(folder / variant / "model.safetensors")))
            models[variant] = model.to(device).eval()
        if "fused" not in models:
            raise FileNotFoundError(f"{folder}/fused/config.json: the run has no fused model")
        info_keys = set(record) - {"spec", "classes", "multi_label", "temperatures", "max_length"}
        return cls(
            TableSpec(**record["spec"]),
            LabelSpace(tuple(record["classes"]), bool(record["multi_label"])),
            TextTokenizer.load(folder / "tokenizer.json"),
            models,
            {k: float(v) for k, v in record["temperatures"].items()},
            {k: record[k] for k in info_keys},
            int(record["max_length"]),
        )


def macro_f1_score(labels: LabelSpace) -> Callable[[torch.Tensor, torch.Tensor], float]:
    """``(probabilities, targets) -> macro-F1`` for :func:`fit`'s epoch choice."""

    def score(probabilities: torch.Tensor, targets: torch.Tensor) -> float:
        metrics = classification_metrics(
            probabilities.numpy(), targets.numpy(), list(labels.classes), labels.multi_label
        )
        return float(metrics["macro_f1"])

    return score


def train_run(
    table: Table,
    settings: FitSettings,
    options: ModelOptions,
    device: torch.device,
    variants: tuple[str, ...] = tuple(VARIANTS),
    report: Callable[[str], None] | None = None,
) -> tuple[ClassifierRun, dict[str, Any]]:
    """Split ``table``, train every variant on ``train`` (epoch chosen on ``val``) and score it
    on ``test``.

    Returns:
        the run and its metrics: ``{"test": {variant: scores}, "splits": {split: rows},
        "fit": {variant: FitResult as a dict}}``.
    """
    if "fused" not in variants:
        raise ValueError("the variants must include 'fused' (the model that predicts)")
    splits = split_rows(table, settings.seed)
    parts = {name: table.subset(rows) for name, rows in splits.items()}
    labels = LabelSpace.from_rows(
        [row.labels for row in parts["train"].rows], table.spec.multi_label
    )
    tokenizer = train_tokenizer(parts["train"].texts, vocab_size=TOKENIZER_VOCABULARY)
    run = ClassifierRun(table.spec, labels, tokenizer, {}, {}, {}, options.max_length)
    encoded = {name: run.encode(part) for name, part in parts.items()}
    fits: dict[str, FitResult] = {}
    for variant in variants:
        config = ClassifierConfig(
            classes=list(labels.classes),
            multi_label=labels.multi_label,
            vocab_size=tokenizer.vocab_size,
            modalities=list(VARIANTS[variant]),
            image_size=options.image_size,
            dim=options.dim,
            fusion=options.fusion,
            fusion_depth=options.fusion_depth,
            text=TextEncoderConfig(depth=2, heads=4, max_length=options.max_length),
        )
        say = None if report is None else (lambda line, v=variant: report(f"[{v}] {line}"))
        with torch.random.fork_rng(devices=[]):  # the same weights whatever ran before
            torch.manual_seed(settings.seed)
            model = ImageTextClassifier(config)
            fits[variant] = fit(
                model,
                encoded["train"],
                encoded["val"],
                labels,
                settings,
                device,
                macro_f1_score(labels),
                say,
            )
        run.models[variant] = model.eval()
        run.temperatures[variant] = fits[variant].temperature
    run.info = {
        "source": str(table.source),
        "seed": settings.seed,
        "settings": asdict(settings),
        "options": asdict(options),
        "splits": {name: len(rows) for name, rows in splits.items()},
        "skipped_rows": list(table.skipped),
        "fit": {variant: asdict(result) for variant, result in fits.items()},
    }
    metrics = {"test": run.evaluate(encoded["test"]), "splits": run.info["splits"]}
    return run, metrics
