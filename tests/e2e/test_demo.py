"""`roadmesh demo` brings the whole system up, drives a simulated fleet and serves its frames."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from broker import free_port
from tests.conftest import REPO, traversable_tmpdir

pytestmark = pytest.mark.e2e


def test_the_demo_serves_the_frames_at_the_url_it_prints_until_ctrl_c() -> None:
    base = traversable_tmpdir("roadmesh-demo-")
    web_port, mqtt_port = free_port(), free_port()
    cmd = [
        sys.executable,
        "-m",
        "roadmesh",
        "demo",
        "--run-dir",
        str(base / "demo"),
        "--port",
        str(web_port),
        "--mqtt-port",
        str(mqtt_port),
        "--devices",
        "2",
        "--minutes",
        "0.5",
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO
    )
    output: list[str] = []
    try:
        deadline = time.monotonic() + 600
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            output.append(line)
            if line.startswith("Serving"):
                break
        text = "".join(output)
        match = re.search(
            r"Frames: (http://127\.0\.0\.1:\d+/api/v1/frames\?bbox=\S+)\s+\((\d+) frames\)", text
        )
        assert match, text
        with urllib.request.urlopen(match.group(1), timeout=10) as response:
            body = json.load(response)
        assert body["type"] == "FeatureCollection"
        assert len(body["features"]) == int(match.group(2)) > 0
        assert {f["properties"]["device"] for f in body["features"]} <= {"dev00", "dev01"}
        proc.send_signal(signal.SIGINT)
        # read on while it stops (a full pipe would block its last lines); every process gets
        # SIGTERM at once, SIGKILL after 15 s, then the broker and the chain: well inside 120 s
        tail, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, "".join(output) + tail
        assert "stopping" in tail
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        shutil.rmtree(base, ignore_errors=True)
