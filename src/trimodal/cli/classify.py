"""``trimodal classify``: train, evaluate and use an image + text classifier from a CSV.

    trimodal classify example --kind scans --out data/scans
    trimodal classify train --csv data/scans/data.csv --image-col path --text-col report \\
        --label-col finding --out runs/scans
    trimodal classify eval --checkpoint runs/scans --csv data/scans/data.csv --split test
    trimodal classify predict --checkpoint runs/scans --image scan.png --text "..."
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

from trimodal.classify.examples import write_digits, write_scans
from trimodal.classify.report import NOT_MEDICAL, evaluate_table, summary_lines
from trimodal.classify.run import VARIANTS, ClassifierRun, ModelOptions, train_run
from trimodal.classify.table import (
    SPLITS,
    Table,
    TableSpec,
    read_table,
    split_rows,
    table_from_records,
)
from trimodal.classify.train import FitSettings
from trimodal.hardware import resolve_device
from trimodal.io import atomic_write_text
from trimodal.locks import FolderLock


def register(verbs: Any) -> None:
    """Add ``classify`` and its sub-verbs."""
    parser = verbs.add_parser(
        "classify", help="image + free-text classification from your CSV (not a medical device)"
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    _register_example(actions)
    _register_train(actions)
    _register_eval(actions)
    _register_predict(actions)


def _device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto|cpu|cuda[:N]|mps")


def _register_example(actions: Any) -> None:
    parser = actions.add_parser("example", help="write an example table (CSV + images)")
    parser.add_argument("--kind", choices=("scans", "digits"), required=True)
    parser.add_argument("--out", required=True, help="folder for data.csv and images/")
    parser.add_argument("--count", type=int, default=1200, help="scans: how many")
    parser.add_argument("--limit", type=int, default=0, help="digits: the first N (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(run=_run_example)


def _register_train(actions: Any) -> None:
    parser = actions.add_parser("train", help="train the fused model and its two baselines")
    parser.add_argument("--csv", required=True, help="the table (a header row, then records)")
    parser.add_argument("--image-col", required=True, help="column of image paths")
    parser.add_argument("--text-col", required=True, help="column of free text")
    parser.add_argument("--label-col", required=True, help="column of labels")
    parser.add_argument("--split-col", default=None, help="column of train/val/test (optional)")
    parser.add_argument(
        "--label-sep", default=None, help="multi-label: the separator between a row's labels"
    )
    parser.add_argument("--out", required=True, help="run folder to write")
    defaults, options = FitSettings(), ModelOptions()
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--image-size", type=int, default=options.image_size)
    parser.add_argument("--dim", type=int, default=options.dim, help="token width")
    parser.add_argument("--fusion", default=options.fusion, help="a fusion module's name")
    parser.add_argument("--no-augment", action="store_true", help="no image shifts and jitter")
    parser.add_argument("--no-baselines", action="store_true", help="train the fused model only")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--on-error", choices=("raise", "skip"), default="raise")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    _device_argument(parser)
    parser.set_defaults(run=_run_train)


def _register_eval(actions: Any) -> None:
    parser = actions.add_parser("eval", help="score a run on a labelled table; write a report")
    parser.add_argument("--checkpoint", required=True, help="a run folder")
    parser.add_argument("--csv", required=True)
    parser.add_argument(
        "--split",
        choices=("all", *SPLITS),
        default="all",
        help="rows to score: all, or one split (the run's split of its own training table is "
        "made again from its seed)",
    )
    parser.add_argument("--out", default=None, help="report folder (default: RUN/report)")
    parser.add_argument("--on-error", choices=("raise", "skip"), default="raise")
    _device_argument(parser)
    parser.set_defaults(run=_run_eval)


def _register_predict(actions: Any) -> None:
    parser = actions.add_parser("predict", help="classify one image + text, or every CSV row")
    parser.add_argument("--checkpoint", required=True, help="a run folder")
    parser.add_argument("--image", default=None, help="one image")
    parser.add_argument("--text", default=None, help="its text")
    parser.add_argument("--csv", default=None, help="a table (the run's image and text columns)")
    parser.add_argument("--out", default=None, help="with --csv: write predictions here")
    parser.add_argument("--on-error", choices=("raise", "skip"), default="raise")
    _device_argument(parser)
    parser.set_defaults(run=_run_predict)


def _run_example(args: argparse.Namespace) -> int:
    if args.kind == "scans":
        path = write_scans(args.out, count=args.count, seed=args.seed)
        columns = "--image-col path --text-col report --label-col finding"
    else:
        path = write_digits(args.out, seed=args.seed, limit=args.limit)
        columns = "--image-col path --text-col note --label-col digit"
    print(f"wrote {path}")
    print(f"train with: trimodal classify train --csv {path} {columns} --out RUN")
    return 0


def _run_train(args: argparse.Namespace) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    spec = TableSpec(args.image_col, args.text_col, args.label_col, args.split_col, args.label_sep)
    options = ModelOptions(args.image_size, args.dim, args.fusion)
    settings = FitSettings(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        augment=not args.no_augment,
        seed=args.seed,
    )
    out = Path(args.out)
    with FolderLock(out, "classify training"):
        started = time.perf_counter()
        table = read_table(args.csv, spec, options.image_size, args.on_error)
        _say_skipped(table)
        variants = ("fused",) if args.no_baselines else tuple(VARIANTS)
        report = None if args.quiet else (lambda line: print(line, flush=True))
        run, metrics = train_run(table, settings, options, device, variants, report)
        metrics["train_seconds"] = round(time.perf_counter() - started, 1)
        run.save(out, metrics)
    print(f"trained in {metrics['train_seconds']} s; splits {metrics['splits']}")
    print("test split:")
    print("\n".join(summary_lines(metrics["test"])))
    print(f"run: {out}  ({NOT_MEDICAL})")
    return 0


def _say_skipped(table: Table) -> None:
    if table.skipped:
        print(f"skipped {len(table.skipped)} row(s):", file=sys.stderr)
        for line in table.skipped:
            print(f"  {line}", file=sys.stderr)


def _run_eval(args: argparse.Namespace) -> int:
    run = ClassifierRun.load(args.checkpoint, resolve_device(args.device))
    table = read_table(args.csv, run.spec, run.image_size, args.on_error)
    _say_skipped(table)
    if args.split != "all":
        table = table.subset(split_rows(table, int(run.info.get("seed", 0)))[args.split])
    out = Path(args.out) if args.out else Path(args.checkpoint) / "report"
    metrics = evaluate_table(run, table, out)
    print(f"{len(table.rows)} rows ({args.split}) of {table.source}:")
    print("\n".join(summary_lines(metrics)))
    print(f"report: {out / 'report.md'}")
    return 0


def _run_predict(args: argparse.Namespace) -> int:
    run = ClassifierRun.load(args.checkpoint, resolve_device(args.device))
    if args.csv is not None:
        if args.image or args.text:
            raise ValueError("give either --csv or --image with --text, not both")
        return _predict_table(run, args)
    if not args.image or args.text is None:
        raise ValueError("give --image and --text (or --csv)")
    table = _one_row_table(run, Path(args.image), args.text)
    probabilities = run.probabilities("fused", run.encode(table, with_targets=False))[0]
    print(json.dumps(_prediction(run, probabilities), indent=2))
    return 0


def _one_row_table(run: ClassifierRun, image: Path, text: str) -> Table:
    """A one-row table for ``--image``/``--text``, checked as a CSV row would be."""
    spec = TableSpec("--image", "--text")
    record = {"--image": str(image.resolve()), "--text": text}
    return table_from_records(Path("command line"), [(1, record)], spec, run.image_size)


def _prediction(run: ClassifierRun, probabilities: Any) -> dict[str, Any]:
    decided = run.labels.decide(probabilities.unsqueeze(0))[0]
    return {
        "labels": list(decided),
        "probabilities": {
            name: round(float(p), 4)
            for name, p in zip(run.labels.classes, probabilities, strict=True)
        },
    }


def _predict_table(run: ClassifierRun, args: argparse.Namespace) -> int:
    spec = TableSpec(run.spec.image_col, run.spec.text_col)
    table = read_table(args.csv, spec, run.image_size, args.on_error)
    _say_skipped(table)
    probabilities = run.probabilities("fused", run.encode(table, with_targets=False))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["line", "prediction", *(f"p_{name}" for name in run.labels.classes)])
    for row, p in zip(table.rows, probabilities, strict=True):
        decided = ";".join(run.labels.decide(p.unsqueeze(0))[0])
        writer.writerow([row.line, decided, *(f"{float(v):.4f}" for v in p)])
    if args.out:
        atomic_write_text(args.out, buffer.getvalue())
        print(f"wrote {len(table.rows)} predictions to {args.out}")
    else:
        sys.stdout.write(buffer.getvalue())
    return 0
