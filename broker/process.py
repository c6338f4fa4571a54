"""The supervised Mosquitto process: started as a child that cannot outlive its parent.

The child is started with `PR_SET_PDEATHSIG` (SIGTERM): if the process that owns it dies,
even by SIGKILL, the kernel stops Mosquitto too (it saves its persistence file on
SIGTERM), so a crashed wrapper never leaves an orphan broker that a later start would
mistake for its own. The kernel clears that setting when a process changes its user, so
as root the child drops to the broker's user *before* the setting is made and before
Mosquitto runs (Mosquitto, started unprivileged, then has nothing to drop). A pid file
names the running broker; a start that finds a live Mosquitto of the same config
refuses, naming the pid, instead of reporting "running".
"""

from __future__ import annotations

import ctypes
import logging
import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

from broker.config import BrokerConfig, BrokerError, wait_for_port

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


def mosquitto_binary() -> str:
    for candidate in (
        shutil.which("mosquitto"),
        "/usr/sbin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ):
        if candidate and Path(candidate).exists():
            return candidate
    raise BrokerError(
        "mosquitto is not installed (apt-get install mosquitto, or run scripts/bootstrap.sh)"
    )


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def running_pid(config: BrokerConfig) -> int | None:
    """The pid of a live Mosquitto started on this config (from its pid file), if any."""
    try:
        pid = int(config.pid_path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None  # gone
    if any(b"mosquitto" in part for part in cmdline[:1]) and str(config.conf_path).encode() in (
        cmdline
    ):
        return pid
    return None  # the pid was reused by another program


class Broker:
    """A Mosquitto process owned by this Python process."""

    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 10.0) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        stale = running_pid(self.config)
        if stale is not None:
            raise BrokerError(
                f"a Mosquitto from an earlier start (pid {stale}) still serves {self.config.run_dir};"
                f" it is not this process's child: stop it first (kill {stale})"
            )
        if not self.config.conf_path.exists():
            raise BrokerError(
                f"{self.config.conf_path} not found: run `roadmesh broker init` first"
            )
        as_user: dict[str, object] = {}
        user = self.config.drop_to_user
        if user is not None and os.geteuid() == 0:
            entry = pwd.getpwnam(user)
            as_user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        with open(self.config.stderr_path, "ab") as stderr:
            self.process = subprocess.Popen(  # type: ignore[call-overload]
                [mosquitto_binary(), "-c", str(self.config.conf_path)],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                preexec_fn=_die_with_parent,  # runs after the user change
                **as_user,
            )
        # named before the port opens: whoever sees the port open can find the pid
        self.config.pid_path.write_text(f"{self.process.pid}\n")
        if not wait_for_port(self.config.host, self.config.port, timeout_s):
            self.stop()
            problems = self.config.stderr_path.read_text(errors="replace").strip()[-2000:]
            raise BrokerError(
                f"mosquitto did not listen on {self.config.port}: {problems or 'no output'}"
            )
        logger.info(
            "mosquitto (pid %d) listening on %s:%d",
            self.process.pid,
            self.config.host,
            self.config.port,
        )

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM (Mosquitto saves its persistence file), SIGKILL after `timeout_s`."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        self.config.pid_path.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL: no final save, as in a crash or power loss."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.stop()

    def wait(self) -> int:
        """Block until Mosquitto exits; its exit status."""
        if self.process is None:
            return 0
        code = self.process.wait()
        self.config.pid_path.unlink(missing_ok=True)
        return code

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __enter__(self) -> Broker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def terminate(pid: int, timeout_s: float = 10.0) -> None:
    """Stop a Mosquitto by pid (a broker run by another process), waiting for it to exit."""
    import time

    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists():
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
