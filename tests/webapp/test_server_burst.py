"""A burst of heavy anonymous requests against a real server (`roadmesh web serve`, 8
threads) leaves /healthz fast: the heavy ones past the per-process cap are refused at once
with 429 instead of taking every thread."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from broker import free_port, wait_for_port
from tests.conftest import traversable_tmpdir

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


def fetch(url: str) -> tuple[int, float]:
    t = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            r.read()
            code = r.status
    except urllib.error.HTTPError as exc:
        code = exc.code
    return code, time.perf_counter() - t


def test_sixteen_heavy_requests_at_once_leave_healthz_fast() -> None:
    base = traversable_tmpdir("roadmesh-burst-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROADMESH_")}
    env.update({"ROADMESH_DATA_DIR": str(base / "data")})
    proc = None
    try:
        for args in (["-m", "roadmesh", "web", "migrate"], ["-m", "tests.browser.seed"]):
            done = subprocess.run(
                [sys.executable, *args],
                env=env,
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode == 0, done.stderr
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "roadmesh", "web", "serve", "--port", str(port)],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert wait_for_port("127.0.0.1", port, 60)
        url = f"http://127.0.0.1:{port}"
        assert fetch(f"{url}/healthz")[0] == 200
        quiet = min(fetch(f"{url}/healthz")[1] for _ in range(5))
        heavy: list[int] = []
        threads = [
            threading.Thread(
                target=lambda: heavy.append(fetch(f"{url}/downloads/features.gpkg")[0])
            )
            for _ in range(16)
        ]
        for th in threads:
            th.start()
        time.sleep(0.05)
        during = [fetch(f"{url}/healthz") for _ in range(5)]
        for th in threads:
            th.join()
        assert {code for code, _ in during} == {200}
        assert max(s for _, s in during) < 1.0, (quiet, during)
        assert set(heavy) <= {200, 429} and 200 in heavy
        assert 429 in heavy  # past the cap of 4 at once: refused at once
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        shutil.rmtree(base, ignore_errors=True)
