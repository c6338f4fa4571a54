"""The whole server side on one machine, as processes: broker, ingest workers, image-check
worker, web server.

`make demo` and the end-to-end tests both drive this class, through the same `roadmesh`
commands an operator would type (`roadmesh broker run` supervises Mosquitto; devices are
provisioned with `roadmesh device provision`), so the demo and the tests exercise the
real path.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broker import BrokerConfig, free_port, wait_for_port
from broker.config import remove_state
from broker.process import running_pid


class StackError(RuntimeError):
    pass


@dataclass
class LocalStack:
    run_dir: Path
    database_url: str = ""  # empty: SQLite under run_dir/data
    mqtt_port: int = field(default_factory=free_port)
    web_port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    api_key: str = ""  # an operator's API key, issued by prepare()

    def __post_init__(self) -> None:
        self.run_dir = self.run_dir.resolve()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.broker_config = BrokerConfig(run_dir=self.run_dir / "broker", port=self.mqtt_port)
        (self.run_dir / "logs").mkdir(parents=True, exist_ok=True)

    # -- environment and commands -------------------------------------------------------
    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "ROADMESH_DATA_DIR": str(self.run_dir / "data"),
                "ROADMESH_MQTT_HOST": "127.0.0.1",
                "ROADMESH_MQTT_PORT": str(self.mqtt_port),
                "ROADMESH_MQTT_PASSWORD_FILE": str(self.broker_config.run_dir / "ingest.secret"),
                "ROADMESH_BROKER_DIR": str(self.broker_config.run_dir),
                "PYTHONUNBUFFERED": "1",
                # the tests and the demo read whole drives in one page, and poll often
                "ROADMESH_API_MAX_PAGE_SIZE": "10000",
                "ROADMESH_API_KEY_RATE": "6000/minute",
            }
        )
        if self.database_url:
            env["ROADMESH_DATABASE_URL"] = self.database_url
        else:
            env.pop("ROADMESH_DATABASE_URL", None)
        env.update(extra)
        return env

    def roadmesh(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "roadmesh", *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise StackError(
                f"roadmesh {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def spawn(self, name: str, *args: str, **extra_env: str) -> subprocess.Popen[bytes]:
        log = open(self.run_dir / "logs" / f"{name}.log", "ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "roadmesh", *args],
            env=self.env(**extra_env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.processes[name] = proc
        return proc

    def log(self, name: str) -> str:
        path = self.run_dir / "logs" / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- lifecycle ----------------------------------------------------------------------
    def prepare(self) -> None:
        """Schema and broker config (with fresh service logins)."""
        self.roadmesh("web", "migrate")
        # frames and images need a key (webapp.api.access): the stack reads as an operator
        self.api_key = self.roadmesh(
            "web", "apikey", "--user", "stack-operator", "--create", "--role", "operator"
        ).stdout.strip()
        self.roadmesh(
            "broker",
            "init",
            "--run-dir",
            str(self.broker_config.run_dir),
            "--port",
            str(self.mqtt_port),
        )

    def start_broker(self) -> None:
        """`roadmesh broker run` (it writes every registered device's login, then supervises
        Mosquitto); waits until Mosquitto listens."""
        before = self.log("broker").count("running on")
        self.spawn("broker", "broker", "run", "--run-dir", str(self.broker_config.run_dir))
        self.wait_for(
            lambda: self.log("broker").count("running on") > before, 30, "the broker to start"
        )
        if not wait_for_port("127.0.0.1", self.mqtt_port, 10):
            raise StackError(f"the broker does not listen:\n{self.log('broker')}")

    def stop_broker(self) -> None:
        """SIGTERM to the wrapper: Mosquitto saves its persistence file and stops."""
        self.stop_process("broker")

    def kill_broker(self) -> None:
        """SIGKILL Mosquitto itself, as in a crash or a power cut: nothing saved since its last
        autosave. Its wrapper then exits too (it reports the crash)."""
        pid = running_pid(self.broker_config)
        if pid is None:
            raise StackError("the broker is not running")
        os.kill(pid, signal.SIGKILL)
        proc = self.processes.pop("broker", None)
        if proc is not None:
            proc.wait(15)

    def restart_broker(self, down_s: float = 1.0, *, crash: bool = False) -> None:
        """Stop the broker (or kill it, `crash`), wait, start it again on the same port."""
        self.kill_broker() if crash else self.stop_broker()
        time.sleep(down_s)
        self.start_broker()

    def start_ingest(self, index: int = 0) -> subprocess.Popen[bytes]:
        return self.start_ingest_worker(index, wait=False)

    def start_ingest_worker(
        self, index: int, wait: bool = True, **extra_env: str
    ) -> subprocess.Popen[bytes]:
        """One more `roadmesh ingest run` with client id ingest_test_<index>; waits until it consumes.

        Restarting a worker with the same index reuses its client id, hence its broker
        session and the messages still unacknowledged in it.
        """
        name = f"ingest-{index}"
        env = {"ROADMESH_INGEST_CLIENT_ID": f"ingest_test_{index}", **extra_env}
        before = self.log(name).count("consuming")
        proc = self.spawn(name, "-v", "ingest", "run", **env)
        if wait:
            self.wait_for(
                lambda: self.log(name).count("consuming") > before, 30, f"{name} to subscribe"
            )
        return proc

    def start_checks(self, index: int = 0, *args: str) -> subprocess.Popen[bytes]:
        """An image-check worker (`roadmesh ingest checks ARGS`): frames leave `pending`."""
        return self.spawn(f"checks-{index}", "-v", "ingest", "checks", *args)

    def kill_process(self, name: str) -> None:
        """SIGKILL, as in a crash: no drain, no disconnect."""
        proc = self.processes.pop(name, None)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def start_web(self) -> None:
        self.spawn("web", "web", "serve", "--port", str(self.web_port))
        if not wait_for_port("127.0.0.1", self.web_port, 30):
            raise StackError(f"web server did not start:\n{self.log('web')}")

    def start(self) -> None:
        self.prepare()
        self.start_broker()
        self.start_ingest()
        self.start_checks()
        self.start_web()
        self.wait_for(lambda: "consuming" in self.log("ingest-0"), 30, "ingest worker to subscribe")

    def stop_process(self, name: str, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        proc = self.processes.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM to every process but the broker at once, SIGKILL to any still running
        after `timeout` (stopping them one after another could take one timeout each); then
        the broker, which the others drain into."""
        others = {n: p for n, p in self.processes.items() if n != "broker" and p.poll() is None}
        for proc in others.values():
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name, proc in others.items():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            self.processes.pop(name, None)
        for name in [n for n in self.processes if n != "broker"]:
            self.processes.pop(name, None)  # those that had exited already
        self.stop_broker()
        remove_state(self.broker_config)

    # -- devices and data ---------------------------------------------------------------
    def provision(self, device_id: str, owner: str = "driver1", wallet: str = "") -> Path:
        device_dir = self.run_dir / "devices" / device_id
        self.roadmesh(
            "device",
            "provision",
            "--owner",
            owner,
            "--create-owner",
            "--device-id",
            device_id,
            "--out",
            str(device_dir),
            "--mqtt-port",
            str(self.mqtt_port),
            *(("--wallet", wallet) if wallet else ()),
        )
        return device_dir

    def replay(
        self, drive: Path, device_dir: Path, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return self.roadmesh(
            "edge",
            "replay",
            str(drive),
            "--device-dir",
            str(device_dir),
            "--timeout",
            str(timeout),
            check=False,
            timeout=timeout + 60,
        )

    def get(self, path: str) -> tuple[int, bytes, str]:
        url = f"http://127.0.0.1:{self.web_port}{path}"
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        try:
            with urllib.request.urlopen(
                urllib.request.Request(url, headers=headers), timeout=10
            ) as resp:
                return resp.status, resp.read(), resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), exc.headers.get("Content-Type", "")

    def get_json(self, path: str) -> Any:
        status, body, _ = self.get(path)
        if status != 200:
            raise StackError(f"GET {path} -> {status}: {body[:300]!r}")
        return json.loads(body)

    def stats(self) -> dict[str, Any]:
        return dict(self.get_json("/api/v1/stats"))

    @staticmethod
    def is_service(name: str) -> bool:
        """The broker, workers and web server must keep running; clients (edge ...) may end."""
        return name in ("web", "broker") or name.startswith(("ingest-", "checks-"))

    def wait_for(self, condition: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if condition():
                    return
            except (TimeoutError, urllib.error.URLError, ConnectionError):
                pass  # a server slow to answer one poll (a loaded machine): ask again
            for name, proc in self.processes.items():
                if self.is_service(name) and proc.poll() is not None:
                    raise StackError(
                        f"{name} exited {proc.returncode} while waiting for {what}:\n{self.log(name)[-3000:]}"
                    )
            time.sleep(0.2)
        raise StackError(f"timed out after {timeout}s waiting for {what}")

    def wait_for_frames(self, n: int, timeout: float = 60) -> dict[str, Any]:
        self.wait_for(lambda: self.stats()["frames"] >= n, timeout, f"{n} frames")
        return self.stats()

    def wait_image_checked(self, timeout: float = 120) -> dict[str, Any]:
        """Until no stored frame is pending (the image-check worker caught up)."""
        self.wait_for(lambda: self.stats()["frames_pending"] == 0, timeout, "the image checks")
        return self.stats()

    # -- edge end-to-end helpers ----------------------------------------------------------
    def create_user(self, username: str, password: str) -> None:
        """A driver account with a password (the enrolment credential of `roadmesh edge provision`)."""
        code = (
            "from webapp.django_setup import setup_django; setup_django()\n"
            "from webapp.accounts.models import User\n"
            f"User.objects.create_user(username={username!r}, password={password!r}, role=User.Role.DRIVER)\n"
        )
        proc = subprocess.run(
            [sys.executable, "-c", code],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if proc.returncode != 0:
            raise StackError(f"creating user {username} failed:\n{proc.stderr}")

    def device_frames(
        self, device_id: str, bbox: str = "24.80,60.10,25.10,60.30"
    ) -> list[dict[str, Any]]:
        """GeoJSON features of one device's stored frames, in seq order."""
        body = self.get_json(f"/api/v1/frames?bbox={bbox}&limit=10000")
        feats = [f for f in body["features"] if f["properties"]["device"] == device_id]
        return sorted(feats, key=lambda f: f["properties"]["seq"])
