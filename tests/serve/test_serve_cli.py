"""`trimodal serve` as a user starts it: a child process answering on its port."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from trimodal.cli.main import main


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serve_starts_and_answers(tiny_run: Path, gallery_folder: Path, tmp_path: Path) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text("k1\n")
    port = free_port()
    command = [sys.executable, "-m", "trimodal.cli.main", "serve", "--checkpoint", str(tiny_run)]
    command += ["--index", str(gallery_folder), "--port", str(port), "--api-key-file", str(keys)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.HTTPError:
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                assert time.monotonic() < deadline, "serve did not start"
                time.sleep(0.2)
        assert health.json() == {
            "status": "ok",
            "model": "tiny",
            "modalities": ["text", "image", "audio"],
        }
        models = httpx.get(
            f"http://127.0.0.1:{port}/v1/models", headers={"Authorization": "Bearer k1"}
        )
        assert models.json()["data"][0]["trimodal"]["search"]["image"]["index"] == "exact"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_serve_refuses_bad_arguments_in_one_line(
    tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["serve", "--checkpoint", str(tiny_run), "--api-key-file", str(tmp_path / "none")])
        == 2
    )
    assert "API key file not found" in capsys.readouterr().err
    assert main(["serve", "--checkpoint", str(tiny_run), "--index", str(tmp_path)]) == 2
    assert "no gallery at" in capsys.readouterr().err
    # --llava must name a llava run, and it stands instead of --llm, not beside it
    assert main(["serve", "--checkpoint", str(tiny_run), "--llava", str(tmp_path)]) == 2
    assert "is not a llava run" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["serve", "--checkpoint", str(tiny_run), "--llm", "smollm2", "--llava", str(tmp_path)])
    assert "not allowed with argument" in capsys.readouterr().err
