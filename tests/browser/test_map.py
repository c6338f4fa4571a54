"""The map page in a real headless Chromium: MapLibre draws the stored frames."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from roadmesh.stack import LocalStack
from tests.conftest import SAMPLE_DATA, traversable_tmpdir

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

# Playwright adds --headless and a fresh temporary --user-data-dir itself.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="module")
def stack_with_frames() -> Iterator[LocalStack]:
    base = traversable_tmpdir("roadmesh-browser-")
    stack = LocalStack(run_dir=base)
    try:
        stack.start()
        device_dir = stack.provision("dev-map")
        assert stack.replay(SAMPLE_DATA / "drives" / "sample", device_dir).returncode == 0
        stack.wait_for_frames(12)
        yield stack
    finally:
        stack.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("Debian's chromium is not installed (scripts/bootstrap.sh test installs it)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield b
        b.close()


def test_the_map_shows_the_stored_frames_and_a_clicked_frames_photo(
    stack_with_frames: LocalStack, browser: Browser, tmp_path: Path
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"http://127.0.0.1:{stack_with_frames.web_port}/")
    page.wait_for_function("window.roadmeshFramesLoaded === 12", timeout=30_000)
    page.wait_for_function(
        "window.roadmeshMap.loaded() && window.roadmeshMap.queryRenderedFeatures({layers: ['frames']}).length > 0",
        timeout=30_000,
    )
    assert page.locator("#visible").inner_text() == "12 frames in view"
    assert "© OpenStreetMap contributors" in page.locator(".maplibregl-ctrl-attrib").inner_text()
    rendered = page.evaluate(
        "window.roadmeshMap.queryRenderedFeatures({layers: ['frames']}).length"
    )
    assert rendered >= 1
    # click the first frame's dot: its photo appears in the panel
    point = page.evaluate(
        "(() => { const f = window.roadmeshMap.queryRenderedFeatures({layers: ['frames']})[0];"
        " const p = window.roadmeshMap.project(f.geometry.coordinates); return [p.x, p.y]; })()"
    )
    page.mouse.click(point[0], point[1])
    photo = page.locator("#photo img")
    photo.wait_for(timeout=10_000)
    page.wait_for_function(
        "document.querySelector('#photo img').naturalWidth === 1280", timeout=10_000
    )
    page.screenshot(path=str(tmp_path / "map.png"))
    assert not errors, errors
