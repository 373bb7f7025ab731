"""One writer per folder: a second writer is refused naming the holder; a killed holder's lock
is free again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trimodal.cli.main import main
from trimodal.locks import FolderLock
from trimodal.world.generate import WorldSummary

ROOT = Path(__file__).resolve().parents[1]


def test_a_second_writer_is_refused_naming_the_holder(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    with (
        FolderLock(folder, "training"),
        pytest.raises(FileExistsError, match=rf"pid {os.getpid()}, training, since"),
    ):
        FolderLock(folder, "training").__enter__()
    with FolderLock(folder, "training"):  # released on exit
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == [".run.lock", "run"]
    assert list(folder.iterdir()) == []  # the folder's own files are untouched


def test_a_killed_holder_leaves_the_lock_free(tmp_path: Path) -> None:
    folder = tmp_path / "world"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from trimodal.locks import FolderLock\n"
            f"with FolderLock({str(folder)!r}, 'world generation'):\n"
            "    print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with pytest.raises(FileExistsError, match="world generation"):
        FolderLock(folder, "world generation").__enter__()
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    deadline = time.monotonic() + 5
    while True:
        try:
            with FolderLock(folder, "world generation"):
                break
        except FileExistsError:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_train_into_a_folder_being_written_is_refused(
    tiny_world: tuple[Path, WorldSummary], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    with FolderLock(run, "training"):
        status = main(
            [
                "train",
                "--config",
                str(ROOT / "configs" / "tiny.yaml"),
                "--world",
                str(tiny_world[0]),
                "--out",
                str(run),
                "--quiet",
            ]
        )
    assert status == 2
    assert "is being written by another trimodal process" in capsys.readouterr().err
    assert not (run / "checkpoint").exists()
