"""The embedded broker, run for real: logins, what a device may publish and subscribe to,
client ids bound to logins, the control API, and a supervised process that never orphans."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from broker import (
    ADMIN_USER,
    INGEST_USER,
    Broker,
    BrokerConfig,
    BrokerError,
    EmbeddedBrokerLogins,
    ServiceLogins,
    free_port,
    hash_password,
    init_broker,
    mosquitto_binary,
    wait_for_port,
)
from broker.process import running_pid
from tests.conftest import traversable_tmpdir

pytestmark = pytest.mark.e2e


@pytest.fixture
def base() -> Iterator[Path]:
    path = traversable_tmpdir("roadmesh-broker-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Client:
    """A paho client that records what happened to it."""

    def __init__(self, port: int, username: str, password: str, client_id: str) -> None:
        self.events: dict[str, Any] = {}
        self.messages: list[str] = []
        self.connected = threading.Event()
        self.answered = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        self.client.on_message = lambda c, u, m: self.messages.append(m.topic)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.connected.wait(5)

    def _on_connect(self, c: Any, u: Any, f: Any, reason: Any, p: Any) -> None:
        self.events["connect"] = reason
        self.connected.set()

    def _on_disconnect(self, c: Any, u: Any, f: Any, reason: Any, p: Any) -> None:
        self.events["disconnect"] = reason

    def _on_subscribe(self, c: Any, u: Any, mid: int, reasons: Any, p: Any) -> None:
        self.events["subscribe"] = reasons[0]
        self.answered.set()

    def _on_publish(self, c: Any, u: Any, mid: int, reason: Any, p: Any) -> None:
        self.events["publish"] = reason
        self.answered.set()

    @property
    def logged_in(self) -> bool:
        reason = self.events.get("connect")
        return reason is not None and not reason.is_failure

    def subscribe(self, topic: str) -> str:
        self.answered.clear()
        self.client.subscribe(topic, qos=1)
        assert self.answered.wait(5)
        return str(self.events["subscribe"])

    def publish(self, topic: str, payload: bytes = b"x") -> str:
        self.answered.clear()
        self.client.publish(topic, payload, qos=1)
        assert self.answered.wait(5)
        return str(self.events["publish"])

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def running(base: Path) -> Iterator[tuple[Broker, ServiceLogins]]:
    config = BrokerConfig(run_dir=base / "broker", port=free_port())
    services = init_broker(
        config, {"dev-one": hash_password("pw1"), "dev-two": hash_password("pw2")}
    )
    broker = Broker(config)
    broker.start()
    try:
        yield broker, services
    finally:
        broker.stop()


def test_a_device_logs_in_with_its_password_and_not_with_a_wrong_one(
    running: tuple[Broker, ServiceLogins],
) -> None:
    broker, _ = running
    ok = Client(broker.config.port, "dev-one", "pw1", "dev-one")
    bad = Client(broker.config.port, "dev-one", "wrong", "dev-one")
    try:
        assert ok.logged_in and not bad.logged_in
    finally:
        ok.close()
        bad.close()
    if os.geteuid() == 0:  # it ran as `mosquitto`, which owns what it writes
        assert pwd.getpwuid(broker.config.data_dir.stat().st_uid).pw_name == "mosquitto"


def test_a_device_may_subscribe_only_to_its_own_config_and_receipts(
    running: tuple[Broker, ServiceLogins],
) -> None:
    broker, _ = running
    dev = Client(broker.config.port, "dev-one", "pw1", "dev-one")
    try:
        assert dev.subscribe("devices/dev-one/config") == "Granted QoS 1"
        assert dev.subscribe("devices/dev-one/receipts") == "Granted QoS 1"
        for topic in (
            "$share/ingest/devices/+/frames",
            "devices/+/frames",
            "devices/dev-two/receipts",
            "devices/dev-one/frames",
            "#",
            "$CONTROL/dynamic-security/v1/response",
        ):
            assert dev.subscribe(topic) == "Not authorized", topic
    finally:
        dev.close()


def test_a_device_cannot_join_the_ingest_share_so_no_other_devices_frames_are_lost(
    running: tuple[Broker, ServiceLogins],
) -> None:
    broker, services = running
    port = broker.config.port
    worker = Client(port, INGEST_USER, services.password(INGEST_USER), "ingest_test_0")
    thief = Client(port, "dev-two", "pw2", "dev-two")
    sender = Client(port, "dev-one", "pw1", "dev-one")
    try:
        assert worker.subscribe("$share/ingest/devices/+/frames") == "Granted QoS 1"
        assert thief.subscribe("$share/ingest/devices/+/frames") == "Not authorized"
        for _ in range(10):
            assert sender.publish("devices/dev-one/frames") == "Success"
        deadline = time.monotonic() + 5
        while len(worker.messages) < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert worker.messages == ["devices/dev-one/frames"] * 10
        assert thief.messages == []
    finally:
        for c in (worker, thief, sender):
            c.close()


def test_a_device_publishes_only_under_its_own_id(running: tuple[Broker, ServiceLogins]) -> None:
    broker, _ = running
    dev = Client(broker.config.port, "dev-one", "pw1", "dev-one")
    try:
        assert dev.publish("devices/dev-two/frames") == "Not authorized"
        assert dev.publish("devices/dev-one/receipts") == "Not authorized"
        assert dev.publish("devices/dev-one/frames") == "No matching subscribers"
    finally:
        dev.close()


def test_a_client_id_is_bound_to_its_login_so_no_session_can_be_taken_over(
    running: tuple[Broker, ServiceLogins],
) -> None:
    broker, services = running
    port = broker.config.port
    worker = Client(port, INGEST_USER, services.password(INGEST_USER), "ingest_test_0")
    owner = Client(port, "dev-one", "pw1", "dev-one")
    try:
        assert worker.logged_in and owner.logged_in
        for stolen in ("ingest_test_0", "dev-one"):
            thief = Client(port, "dev-two", "pw2", stolen)
            assert not thief.logged_in, stolen
            thief.close()
        time.sleep(0.3)
        assert "disconnect" not in worker.events and "disconnect" not in owner.events
    finally:
        worker.close()
        owner.close()


def test_logins_added_and_removed_while_the_broker_runs_take_effect_at_once(
    running: tuple[Broker, ServiceLogins],
) -> None:
    broker, _ = running
    logins = EmbeddedBrokerLogins(broker.config)
    logins.add_device("dev-new", "pw-new")
    new = Client(broker.config.port, "dev-new", "pw-new", "dev-new")
    assert new.logged_in
    assert new.subscribe("devices/dev-new/receipts") == "Granted QoS 1"
    assert logins.device_ids() == ["dev-new", "dev-one", "dev-two"]
    logins.remove_device("dev-new")
    deadline = time.monotonic() + 5
    while "disconnect" not in new.events and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "disconnect" in new.events  # the online session was dropped
    new.close()
    again = Client(broker.config.port, "dev-new", "pw-new", "dev-new")
    assert not again.logged_in
    again.close()
    # stopped, the same seam edits the plugin's state; the next start reads it
    broker.stop()
    logins.add_device("dev-later", "pw-later")
    broker.start()
    later = Client(broker.config.port, "dev-later", "pw-later", "dev-later")
    assert later.logged_in
    later.close()


def test_a_start_refuses_a_mosquitto_left_running_on_the_same_directory(
    running: tuple[Broker, ServiceLogins],
) -> None:
    broker, _ = running
    with pytest.raises(BrokerError, match=f"pid {broker.pid}"):
        Broker(BrokerConfig.load(broker.config.run_dir)).start()


def roadmesh(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "roadmesh", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def can_log_in(port: int, device: str, password: str) -> bool:
    client = Client(port, device, password, device)
    try:
        return client.logged_in
    finally:
        client.close()


def test_a_killed_wrapper_takes_mosquitto_with_it_and_a_revocation_holds_after_the_restart(
    base: Path,
) -> None:
    port = free_port()
    run = base / "broker"
    env = {
        **os.environ,
        "ROADMESH_DATA_DIR": str(base / "data"),
        "ROADMESH_BROKER_DIR": str(run),
        "ROADMESH_MQTT_PORT": str(port),
    }
    env.pop("ROADMESH_DATABASE_URL", None)
    roadmesh(env, "web", "migrate")
    roadmesh(env, "broker", "init", "--run-dir", str(run), "--port", str(port))
    roadmesh(
        env,
        "device",
        "provision",
        "--owner",
        "o",
        "--create-owner",
        "--device-id",
        "dev-rev",
        "--out",
        str(base / "dev"),
        "--mqtt-port",
        str(port),
    )
    password = __import__("json").loads((base / "dev" / "device.json").read_text())["mqtt"][
        "password"
    ]
    config = BrokerConfig.load(run)

    def wrapper() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "roadmesh", "broker", "run", "--run-dir", str(run)], env=env
        )
        assert wait_for_port("127.0.0.1", port, 20)
        return proc

    proc = wrapper()
    try:
        assert can_log_in(port, "dev-rev", password)
        child = running_pid(config)
        assert child is not None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 10
        while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not Path(f"/proc/{child}").exists(), "mosquitto outlived its wrapper"
        assert not wait_for_port("127.0.0.1", port, 0.5)
        # revoked in the database alone (no broker reachable): the restart rewrites the logins
        env_no_broker = {k: v for k, v in env.items() if k != "ROADMESH_BROKER_DIR"}
        roadmesh(env_no_broker, "device", "revoke", "dev-rev")
        proc = wrapper()
        assert not can_log_in(port, "dev-rev", password)
    finally:
        proc.terminate()
        proc.wait(15)


@pytest.mark.skipif(os.geteuid() != 0, reason="the 0700-parent problem exists only as root")
def test_a_broker_under_a_private_0700_directory_runs_as_root() -> None:
    """`mktemp -d` makes a 0700 directory the `mosquitto` user cannot enter: its own files
    then live in a state directory of their own, and it works."""
    private = Path(tempfile.mkdtemp(prefix="roadmesh-private-"))
    assert private.stat().st_mode & 0o777 == 0o700
    config = BrokerConfig(run_dir=private / "broker", port=free_port())
    try:
        assert config.state != config.run_dir
        init_broker(config, {"dev-one": hash_password("pw1")})
        with Broker(config):
            assert can_log_in(config.port, "dev-one", "pw1")
            logins = EmbeddedBrokerLogins(config)
            logins.add_device("dev-two", "pw2")
            assert can_log_in(config.port, "dev-two", "pw2")
        assert pwd.getpwuid(config.state.stat().st_uid).pw_name == "mosquitto"
    finally:
        from broker.config import remove_state

        remove_state(config)
        shutil.rmtree(private, ignore_errors=True)


@pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root to start the broker as another, unprivileged user"
)
def test_the_config_for_a_normal_user_runs_mosquitto_unprivileged(base: Path) -> None:
    config = BrokerConfig(run_dir=base / "broker", port=free_port(), drop_to_user=None)
    init_broker(config, {"dev-one": hash_password("pw1")})
    assert "\nuser " not in config.conf_path.read_text()
    subprocess.run(["chown", "-R", "nobody", str(base)], check=True)
    proc = subprocess.Popen(
        ["runuser", "-u", "nobody", "--", mosquitto_binary(), "-c", str(config.conf_path)]
    )
    try:
        assert wait_for_port("127.0.0.1", config.port, 10), config.log_path.read_text()
        assert can_log_in(config.port, "dev-one", "pw1")
    finally:
        proc.terminate()
        proc.wait(10)
    assert pwd.getpwuid((config.data_dir / "mosquitto.db").stat().st_uid).pw_name == "nobody"
    assert ADMIN_USER in config.dynsec_path.read_text()
