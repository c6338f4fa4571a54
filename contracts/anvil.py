"""Run anvil (npm `@foundry-rs/anvil`), the local EVM node of the demo and integration tests.

The npm package ships the binary inside its platform package
(`node_modules/@foundry-rs/anvil-<os>-<arch>/bin/anvil`); we run that file directly, not
the package's node wrapper, so the node is one process and one PID stops it.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from contracts.errors import ChainError

REPO = Path(__file__).resolve().parent.parent
# anvil's first default account: a well-known development key, never for real funds
DEV_ACCOUNT = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


def anvil_binary() -> Path:
    """ROADMESH_ANVIL_BIN, else the binary npm installed for this platform."""
    override = os.environ.get("ROADMESH_ANVIL_BIN")
    if override:
        return Path(override)
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower(), platform.machine().lower()
    )
    system = platform.system().lower()
    path = REPO / "node_modules" / "@foundry-rs" / f"anvil-{system}-{arch}" / "bin" / "anvil"
    if not path.exists():
        raise ChainError(f"no anvil binary at {path} (run scripts/bootstrap.sh, or npm ci)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Anvil:
    process: subprocess.Popen[bytes]
    url: str

    @property
    def pid(self) -> int:
        return self.process.pid

    @classmethod
    def start(
        cls, port: int | None = None, *, chain_id: int = 31337, state_file: Path | None = None
    ) -> Anvil:
        """Start anvil on 127.0.0.1 and wait until it answers JSON-RPC.
        `state_file`: load the chain from it at start and dump it there at exit."""
        port = port or free_port()
        cmd = [
            str(anvil_binary()),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--chain-id",
            str(chain_id),
            "--silent",
        ]
        if state_file is not None:
            state_file.parent.mkdir(parents=True, exist_ok=True)
            cmd += ["--state", str(state_file)]
        process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
        node = cls(process, f"http://127.0.0.1:{port}")
        node.wait_ready()
        return node

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ChainError(f"anvil exited with status {self.process.returncode}")
            try:
                request = urllib.request.Request(
                    self.url, body.encode(), {"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(request, timeout=2) as response:
                    if "result" in json.loads(response.read()):
                        return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise ChainError(f"anvil did not answer on {self.url} within {timeout_s:.0f} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
