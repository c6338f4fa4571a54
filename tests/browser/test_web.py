"""The web app in a real headless Chromium (Debian's, driven by Playwright): the map shows
features and coverage on our own road tiles, a reviewer settles three tasks with the
keyboard, and a driver's dashboard shows an epoch's earnings. Each test saves a screenshot
under out/browser/ (the test output; docs/img/ holds a committed copy)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from broker import free_port, wait_for_port
from tests.browser.seed import PASSWORD
from tests.conftest import traversable_tmpdir

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "out" / "browser"
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
def server() -> Iterator[str]:
    """`roadmesh web serve` on a seeded SQLite database of its own."""
    base = traversable_tmpdir("roadmesh-web-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROADMESH_")}
    env.update({"ROADMESH_DATA_DIR": str(base / "data"), "PYTHONUNBUFFERED": "1"})
    for args in (["-m", "roadmesh", "web", "migrate"], ["-m", "tests.browser.seed"]):
        done = subprocess.run(
            [sys.executable, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout + done.stderr
    port = free_port()
    log = open(base / "web.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "roadmesh", "web", "serve", "--port", str(port)],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        assert wait_for_port("127.0.0.1", port, 60), (base / "web.log").read_text()
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
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


def new_page(browser: Browser) -> tuple[Page, list[str]]:
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return page, errors


def sign_in(page: Page, server: str, username: str, then: str) -> None:
    page.goto(f"{server}/accounts/login/?next={then}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server}{then}*", timeout=20_000)


def shot(page: Page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    page.screenshot(path=str(path))
    return path


def rendered(page: Page, layer: str) -> int:
    return int(
        page.evaluate(f"window.roadmeshMap.queryRenderedFeatures({{layers: ['{layer}']}}).length")
    )


def test_the_map_shows_roads_coverage_and_features_and_a_features_evidence(
    server: str, browser: Browser
) -> None:
    page, errors = new_page(browser)
    page.goto(f"{server}/#map=16/60.17160/24.94430")
    page.wait_for_function("window.roadmeshReady === true", timeout=60_000)
    page.wait_for_function(
        "['roads', 'coverage', 'features'].every(l => window.roadmeshMap.queryRenderedFeatures({layers: [l]}).length > 0)",
        timeout=30_000,
    )
    assert rendered(page, "roads") > 10
    assert rendered(page, "coverage") > 5
    assert rendered(page, "features") > 5
    assert "© OpenStreetMap contributors" in page.locator(".maplibregl-ctrl-attrib").inner_text()
    assert "frames" not in page.evaluate("window.roadmeshMap.getStyle().layers.map(l => l.id)")
    # clicking a feature's icon opens its details
    point = page.evaluate(
        "(() => { const f = window.roadmeshMap.queryRenderedFeatures({layers: ['features']})"
        ".find(f => { const p = window.roadmeshMap.project(f.geometry.coordinates);"
        " return p.x > 420 && p.y > 80 && p.x < 1200 && p.y < 760; });"
        " const p = window.roadmeshMap.project(f.geometry.coordinates); return [p.x, p.y, f.properties.id]; })()"
    )
    page.mouse.click(point[0], point[1] + 44)  # the map starts below the 44 px header
    page.wait_for_function(f"window.roadmeshFeatureShown === {point[2]}", timeout=10_000)
    # a feature with evidence: its details, the picture and the box
    page.evaluate("window.roadmeshShowFeature(1)")
    page.wait_for_function("window.roadmeshFeatureShown === 1", timeout=10_000)
    page.wait_for_function(
        "document.querySelector('#details .evidence img') && document.querySelector('#details .evidence img').naturalWidth === 1280",
        timeout=10_000,
    )
    details = page.locator("#details").inner_text()
    assert "first seen" in details and "passes" in details and "uncertainty" in details
    assert page.locator("#details .evidence .box").count() >= 1
    page.wait_for_timeout(300)
    shot(page, "map.png")
    # a class filter goes into the URL and hides the other classes
    page.check("input[name=class][value=fire_hydrant]")
    page.wait_for_function("location.search.includes('class=fire_hydrant')", timeout=5_000)
    page.wait_for_timeout(500)
    classes = page.evaluate(
        "[...new Set(window.roadmeshMap.queryRenderedFeatures({layers: ['features']}).map(f => f.properties.class))]"
    )
    assert classes == ["fire_hydrant"]
    assert not errors, errors


def test_a_reviewer_settles_three_tasks_with_the_keyboard(server: str, browser: Browser) -> None:
    page, errors = new_page(browser)
    sign_in(page, server, "reviewer", "/review/")
    page.wait_for_function("window.roadmeshReviewReady === true", timeout=20_000)
    page.wait_for_function(
        "document.getElementById('frame-img').naturalWidth === 1280", timeout=10_000
    )
    shot(page, "review.png")
    for n in range(1, 4):
        task = page.evaluate("window.roadmeshReview.task.id")
        page.keyboard.press("a")
        page.wait_for_function(
            f"window.roadmeshReview.votes === {n} && (!window.roadmeshReview.task || window.roadmeshReview.task.id !== {task})",
            timeout=10_000,
        )
    assert page.evaluate("window.roadmeshReview.settled") == 3
    assert "Settled: accept" in page.locator("#flash").inner_text()
    assert not errors, errors


def test_a_drivers_dashboard_shows_an_epochs_earnings_and_how_to_claim(
    server: str, browser: Browser
) -> None:
    page, errors = new_page(browser)
    sign_in(page, server, "driver", "/dashboard/")
    page.wait_for_function("window.roadmeshDashboardReady === true", timeout=30_000)
    earnings = page.locator("#earnings").inner_text()
    assert "41.2500 RMT" in earnings and "epoch 1" in earnings
    assert "image quality" in earnings
    assert "online" in page.locator("#devices").inner_text()
    assert "stale" in page.locator("#refused").inner_text()
    page.wait_for_timeout(300)
    shot(page, "dashboard.png")
    page.click("#claim summary")
    assert page.locator(".claim-data").inner_text().startswith("0x")
    assert not errors, errors
