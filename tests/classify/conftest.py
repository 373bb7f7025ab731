"""A small generated scans table and a run trained on it once per session (about 15 s)."""

from __future__ import annotations

from pathlib import Path

import pytest

from trimodal.classify.examples import write_scans
from trimodal.cli.main import main

TINY_TRAIN = ["--epochs", "12", "--image-size", "32", "--dim", "48", "--quiet"]
COLUMNS = ["--image-col", "path", "--text-col", "report", "--label-col", "finding"]


@pytest.fixture(scope="session")
def scans_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """400 generated scans with reports (``data.csv`` beside ``images/``)."""
    return write_scans(tmp_path_factory.mktemp("scans"), count=400, seed=0)


@pytest.fixture(scope="session")
def scans_run(scans_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fused model and both baselines trained by ``trimodal classify train``."""
    out = tmp_path_factory.mktemp("classify") / "run"
    status = main(
        [
            "classify",
            "train",
            "--csv",
            str(scans_csv),
            *COLUMNS,
            "--out",
            str(out),
            *TINY_TRAIN,
            "--device",
            "cpu",
        ]
    )
    assert status == 0
    return out
