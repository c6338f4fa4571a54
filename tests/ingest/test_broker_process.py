"""The generated broker config works for root (Mosquitto drops to `mosquitto`) and for a normal user."""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from ingest.broker import (
    INGEST_USER,
    Broker,
    BrokerConfig,
    DeviceHold,
    free_port,
    hash_password,
    mosquitto_binary,
    wait_for_port,
    write_config,
    write_password_file,
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


def service_subscribes(
    port: int, password: str, client_id: str = "ingest-hold-test"
) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.username_pw_set(INGEST_USER, password)
    subscribed = threading.Event()
    client.on_subscribe = lambda *a: subscribed.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.subscribe([("$share/ingest/devices/+/frames", 1)])
    assert subscribed.wait(5)
    return client


def test_a_held_broker_lets_devices_in_only_once_an_ingest_worker_subscribed(base: Path) -> None:
    config = BrokerConfig(run_dir=base / "broker", port=free_port())
    write_config(config, {"dev-one": hash_password("pw"), INGEST_USER: hash_password("svc")})
    broker = Broker(config, DeviceHold(timeout_s=30))
    with broker:
        assert not device_can_log_in(config.port)
        assert "dev-one" not in config.passwd_path.read_text()
        worker = service_subscribes(config.port, "svc")
        try:
            assert broker.wait_released(5)
            time.sleep(0.3)  # the SIGHUP
            assert device_can_log_in(config.port)
        finally:
            worker.disconnect()
            worker.loop_stop()
        # A restart holds devices off again, and a device provisioned meanwhile is kept for later.
        broker.stop()
        broker.start()
        assert not device_can_log_in(config.port)
        write_password_file(
            config, {"dev-one": hash_password("pw"), INGEST_USER: hash_password("svc")}
        )
        assert "dev-one" not in config.passwd_path.read_text()
        worker = service_subscribes(config.port, "svc")
        try:
            assert broker.wait_released(5)
            time.sleep(0.3)
            assert device_can_log_in(config.port)
        finally:
            worker.disconnect()
            worker.loop_stop()
    assert not config.held_passwd_path.exists()


def test_a_hold_that_times_out_lets_devices_in_with_a_warning(
    base: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = BrokerConfig(run_dir=base / "broker", port=free_port())
    write_config(config, {"dev-one": hash_password("pw")})
    broker = Broker(config, DeviceHold(timeout_s=0.5))
    with caplog.at_level(logging.INFO, logger="ingest.broker"), broker:
        assert broker.wait_released(5)
        time.sleep(0.3)
        assert device_can_log_in(config.port)
    assert "no ingest worker subscribed within" in caplog.text


def test_a_hold_left_by_a_crash_is_undone_at_the_next_start(base: Path) -> None:
    config = BrokerConfig(run_dir=base / "broker", port=free_port())
    write_config(config, {"dev-one": hash_password("pw")})
    held = Broker(config, DeviceHold(timeout_s=30))
    held._hold_devices()  # as if the process holding devices died before releasing them
    assert "dev-one" not in config.passwd_path.read_text()
    with Broker(config):
        assert "dev-one" in config.passwd_path.read_text()
        assert device_can_log_in(config.port)
