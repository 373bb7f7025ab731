"""A live trimodal server on 127.0.0.1 (a free port), over the tiny checkpoints."""

from __future__ import annotations

import base64
import io
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from fastapi import FastAPI

from trimodal.config import load_config
from trimodal.inference import Model
from trimodal.serve.app import create_app
from trimodal.serve.engine import Engine
from trimodal.serve.gallery import Gallery, build_gallery
from trimodal.train.loop import train
from trimodal.world.generate import WorldSummary

ROOT = Path(__file__).resolve().parents[2]


class LiveServer:
    """uvicorn serving ``app`` in a thread; ``url`` is its base URL."""

    def __init__(self, app: FastAPI):
        import uvicorn

        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.socket.close()


@pytest.fixture(scope="session")
def generate_run(
    tiny_world: tuple[Path, WorldSummary], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The tiny recipe with a decoder (configs/tiny_generate.yaml), trained on the tiny world."""
    run = tmp_path_factory.mktemp("run") / "tiny-generate"
    config = load_config(ROOT / "configs" / "tiny_generate.yaml")
    train(config, tiny_world[0], run, progress=False)
    return run


@pytest.fixture(scope="session")
def head_model(tiny_run: Path) -> Model:
    """The tiny checkpoint (answer head, transcriber, no decoder)."""
    return Model.from_pretrained(tiny_run)


@pytest.fixture(scope="session")
def decoder_model(generate_run: Path) -> Model:
    """The tiny checkpoint with a decoder whose weights are redrawn at random (seeded).

    Trained for seconds, the tiny decoder ends every reply at once; random weights talk (rarely
    choosing ``<eos>``), which gives the server's streaming, stop and length logic text to cut.
    """
    model = Model.from_pretrained(generate_run)
    assert model.network.decoder is not None
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.network.decoder.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    return model


@pytest.fixture(scope="session")
def gallery_folder(
    head_model: Model,
    tiny_world: tuple[Path, WorldSummary],
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """The tiny world's test and hold-out items indexed by the tiny checkpoint."""
    folder = tmp_path_factory.mktemp("gallery") / "tiny"
    build_gallery(head_model, tiny_world[0] / "manifest.jsonl", folder, ["test", "holdout"])
    return folder


@pytest.fixture(scope="session")
def head_server(head_model: Model, gallery_folder: Path) -> Iterator[LiveServer]:
    """A server over the tiny answer-head checkpoint with its gallery."""
    engine = Engine(head_model, "tiny", wait_ms=2.0)
    with LiveServer(create_app(engine, Gallery.load(gallery_folder))) as server:
        yield server


@pytest.fixture(scope="session")
def decoder_server(decoder_model: Model) -> Iterator[LiveServer]:
    """A server over the tiny decoder checkpoint."""
    with LiveServer(create_app(Engine(decoder_model, "tiny-generate"))) as server:
        yield server


def data_url(path: Path) -> str:
    """A file as a ``data:image/png;base64,...`` URL."""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def wav_base64(waveform: np.ndarray, rate: int = 16_000, subtype: str = "PCM_16") -> str:
    """A waveform as base64 WAV bytes (``subtype="FLOAT"`` keeps NaN and Inf)."""
    buffer = io.BytesIO()
    soundfile.write(buffer, waveform, rate, format="WAV", subtype=subtype)
    return base64.b64encode(buffer.getvalue()).decode()
