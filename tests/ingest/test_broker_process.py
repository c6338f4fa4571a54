"""The generated broker config works for root (Mosquitto drops to `mosquitto`) and for a normal user."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from ingest.broker import (
    Broker,
    BrokerConfig,
    free_port,
    hash_password,
    mosquitto_binary,
    wait_for_port,
    write_config,
)
from tests.conftest import traversable_tmpdir

pytestmark = pytest.mark.e2e


@pytest.fixture
def base() -> Iterator[Path]:
    path = traversable_tmpdir("roadmesh-broker-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def device_can_log_in(port: int, password: str = "pw") -> bool:
    ok = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="login-test", protocol=mqtt.MQTTv5)
    client.username_pw_set("dev-one", password)
    client.on_connect = lambda c, u, f, reason, p: ok.set() if not reason.is_failure else None
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        return ok.wait(5)
    finally:
        client.disconnect()
        client.loop_stop()


def test_the_broker_accepts_a_device_login_and_refuses_a_wrong_password(base: Path) -> None:
    config = BrokerConfig(run_dir=base / "broker", port=free_port())
    write_config(config, {"dev-one": hash_password("pw")})
    with Broker(config):
        assert device_can_log_in(config.port)
        assert not device_can_log_in(config.port, password="wrong")
    if os.geteuid() == 0:  # it ran as `mosquitto`, which owns what it writes
        assert pwd.getpwuid((base / "broker" / "data").stat().st_uid).pw_name == "mosquitto"
        assert "user mosquitto" in config.conf_path.read_text()


@pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root to start the broker as another, unprivileged user"
)
def test_the_config_for_a_normal_user_runs_mosquitto_unprivileged(base: Path) -> None:
    config = BrokerConfig(run_dir=base / "broker", port=free_port(), drop_to_user=None)
    write_config(config, {"dev-one": hash_password("pw")})
    assert "\nuser " not in config.conf_path.read_text()
    subprocess.run(["chown", "-R", "nobody", str(base)], check=True)
    proc = subprocess.Popen(
        ["runuser", "-u", "nobody", "--", mosquitto_binary(), "-c", str(config.conf_path)]
    )
    try:
        assert wait_for_port("127.0.0.1", config.port, 10), config.log_path.read_text()
        assert device_can_log_in(config.port)
    finally:
        proc.terminate()
        proc.wait(10)
    assert (
        pwd.getpwuid((base / "broker" / "data" / "mosquitto.db").stat().st_uid).pw_name == "nobody"
    )
