"""The web page in headless Chromium (Debian's, driven by Playwright; never `playwright
install`): upload an image, ask, see the streamed answer; search and see thumbnails."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.serve.conftest import LiveServer
from trimodal.data.manifest import load_manifest
from trimodal.inference import Model
from trimodal.world.generate import WorldSummary

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (make install as root)"
)


def test_ask_about_an_uploaded_image_and_search(
    head_server: LiveServer,
    head_model: Model,
    tiny_world: tuple[Path, WorldSummary],
    tmp_path: Path,
) -> None:
    from playwright.sync_api import sync_playwright

    sample = load_manifest(tiny_world[0] / "manifest.jsonl").split("test")[0]
    assert sample.image is not None
    question = sample.questions[-1].question
    ((expected, _),) = head_model.ask(sample.image, text=question)
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 720})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            outside: list[str] = []
            page.on(
                "request",
                lambda r: (
                    None
                    if r.url.startswith(head_server.url)
                    or r.url.startswith("blob:")
                    or r.url.startswith("data:")
                    else outside.append(r.url)
                ),
            )
            page.goto(head_server.url + "/")
            page.wait_for_function(
                "document.getElementById('model-name').textContent.includes('tiny')"
            )
            page.set_input_files("#image-file", str(sample.image))
            page.wait_for_function(
                "document.getElementById('attached').textContent.includes('image')"
            )
            page.fill("#message", question)
            page.click("#send")
            page.wait_for_selector(".message.assistant[data-done='true']", timeout=30_000)
            assert page.inner_text(".message.assistant span") == expected
            assert page.locator(".message.user img").count() == 1
            page.fill("#query", sample.text or "a small red circle")
            page.click("#search-button")
            page.wait_for_selector("#results[data-count]", timeout=30_000)
            thumbnails = page.locator("#results img")
            assert thumbnails.count() > 0
            page.wait_for_function(
                "[...document.querySelectorAll('#results img')].every(i => i.complete && i.naturalWidth > 0)"
            )
            shot = Path(os.environ.get("TRIMODAL_PAGE_SCREENSHOT", tmp_path / "page.png"))
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            assert errors == [] and outside == []
        finally:
            browser.close()
