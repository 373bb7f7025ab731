"""API keys and the body-size limit, checked before any route runs."""

from __future__ import annotations

import httpx
import pytest
from openai import AuthenticationError, OpenAI

from tests.serve.conftest import LiveServer
from trimodal.cli.serve import read_api_keys
from trimodal.inference import Model
from trimodal.serve.app import create_app
from trimodal.serve.engine import Engine


def test_keys_guard_the_api_but_not_the_page(head_model: Model, tmp_path) -> None:
    key_file = tmp_path / "keys.txt"
    key_file.write_text("# clients\nsecret-one\n\nsecret-two\n")
    keys = read_api_keys(str(key_file))
    assert keys == ["secret-one", "secret-two"]
    app = create_app(Engine(head_model, "tiny"), api_keys=keys, max_body_bytes=4096)
    with LiveServer(app) as server:
        with pytest.raises(AuthenticationError):
            OpenAI(base_url=f"{server.url}/v1", api_key="wrong", max_retries=0).models.list()
        missing = httpx.get(f"{server.url}/v1/models")
        assert missing.status_code == 401
        assert missing.json()["error"]["code"] == "invalid_api_key"
        for key in keys:
            api = OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)
            assert api.models.list().data[0].id == "tiny"
        assert httpx.get(f"{server.url}/health").status_code == 200
        assert httpx.get(f"{server.url}/").status_code == 200
        odd = httpx.get(f"{server.url}/v1/models", headers={"Authorization": b"Bearer \xe9\xff"})
        assert odd.status_code == 401  # bytes that are no key: refused, not a 500
        assert httpx.get(f"{server.url}/v1/unknown-route").status_code == 401  # closed by default
        big = httpx.post(
            f"{server.url}/v1/embeddings",
            json={"model": "tiny", "input": "x" * 5000},
            headers={"Authorization": "Bearer secret-one"},
        )
        assert big.status_code == 413 and big.json()["error"]["param"] == "body"

        def chunked():  # no Content-Length: counted as it arrives
            for _ in range(10):
                yield b"x" * 1000

        streamed = httpx.post(
            f"{server.url}/v1/embeddings",
            content=chunked(),
            headers={"Authorization": "Bearer secret-one", "content-type": "application/json"},
        )
        assert streamed.status_code == 413
        assert httpx.get(f"{server.url}/health").status_code == 200


def test_a_key_file_must_hold_a_key(tmp_path) -> None:
    empty = tmp_path / "keys.txt"
    empty.write_text("# nothing\n\n")
    with pytest.raises(ValueError, match="holds no key"):
        read_api_keys(str(empty))
    with pytest.raises(FileNotFoundError, match="API key file not found"):
        read_api_keys(str(tmp_path / "missing.txt"))


def test_open_paths_are_judged_as_the_router_sees_them() -> None:
    from trimodal.serve.app import _is_open

    assert _is_open({}, "/health") and _is_open({}, "/")
    assert not _is_open({}, "/v1/models") and not _is_open({}, "/anything")
    mounted = {"root_path": "/api"}
    assert _is_open(mounted, "/api/health")
    assert not _is_open(mounted, "/api/v1/models")  # a root_path no longer skips the key


def test_a_key_file_with_non_ascii_keys_is_refused(tmp_path) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text("clé\n", encoding="utf-8")
    with pytest.raises(ValueError, match="key 1 is not printable ASCII"):
        read_api_keys(str(keys))
