"""A device publishes to Mosquitto over TLS: with the CA file from device.json, and with a
client certificate when the broker requires one. Certificates are made here (cryptography).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import pwd
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import protocol
from broker import Broker, BrokerConfig, free_port, hash_password, init_broker
from edge.identity import DeviceIdentity, MqttLogin
from edge.outbox import Outbox
from edge.uplink import MqttUplink, UplinkError
from tests.conftest import traversable_tmpdir

pytestmark = pytest.mark.e2e
SERVER = protocol.public_key_hex(protocol.generate_private_key())  # no receipts come here

DEVICE, PASSWORD = "dev-tls", "device-password"


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_client_cert: Path  # signed by a CA the broker does not trust
    other_client_key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[str, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = issuer if issuer else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Path:
    path.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def make_pki(d: Path) -> Pki:
    ca_key, other_ca_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = _cert("RoadMesh test CA", ca_key, None, ca=True)
    _write(d / "ca.pem", ca, ca_key)
    keys = {n: ec.generate_private_key(ec.SECP256R1()) for n in ("server", "client", "other")}
    _write(
        d / "server.pem",
        _cert("localhost", keys["server"], ("RoadMesh test CA", ca_key), server=True),
        keys["server"],
    )
    _write(
        d / "client.pem",
        _cert(DEVICE, keys["client"], ("RoadMesh test CA", ca_key)),
        keys["client"],
    )
    _write(
        d / "other.pem", _cert(DEVICE, keys["other"], ("Another CA", other_ca_key)), keys["other"]
    )
    if os.geteuid() == 0:  # the broker runs as `mosquitto` and must read its certificate and key
        entry = pwd.getpwnam("mosquitto")
        for name in ("ca.pem", "server.pem", "server.key"):
            os.chown(d / name, entry.pw_uid, entry.pw_gid)
    return Pki(
        d / "ca.pem",
        d / "server.pem",
        d / "server.key",
        d / "client.pem",
        d / "client.key",
        d / "other.pem",
        d / "other.key",
    )


@pytest.fixture(scope="module")
def pki_dir() -> Iterator[Path]:
    base = traversable_tmpdir("roadmesh-e2e-tls-")
    yield base
    shutil.rmtree(base, ignore_errors=True)


def tls_broker(base: Path, pki: Pki, require_certificate: bool) -> Broker:
    config = BrokerConfig(
        run_dir=base / f"broker-{require_certificate}",
        port=free_port(),
        tls_certfile=pki.server_cert,
        tls_keyfile=pki.server_key,
        tls_cafile=pki.ca,
        require_certificate=require_certificate,
    )
    init_broker(config, {DEVICE: hash_password(PASSWORD)})
    broker = Broker(config)
    broker.start()
    return broker


def publish_three(
    tmp_path: Path,
    port: int,
    ca: Path,
    cert: Path | None = None,
    key: Path | None = None,
    timeout_s: float = 15.0,
) -> tuple[MqttUplink, bool]:
    identity = DeviceIdentity(
        DEVICE, MqttLogin("127.0.0.1", port, DEVICE, PASSWORD, str(ca)), server_public_key=SERVER
    )
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    for _ in range(3):
        outbox.put(lambda seq: (f"devices/{DEVICE}/frames", os.urandom(2000)))
    uplink = MqttUplink(
        identity,
        protocol.generate_private_key(),
        outbox,
        tls_cert=str(cert or ""),
        tls_key=str(key or ""),
        reconnect_min_s=0.2,
        reconnect_max_s=1.0,
    )
    uplink.start()
    deadline = time.monotonic() + timeout_s
    try:  # no ingest runs here: the broker taking the frames (PUBACK 0 or 16) is the point
        while uplink.acked + uplink.refused_by_broker < 3 and time.monotonic() < deadline:
            uplink.pump()
            time.sleep(0.05)
    finally:
        uplink.stop()
    return uplink, uplink.acked + uplink.refused_by_broker == 3


def test_a_device_publishes_over_tls_trusting_the_ca_file_from_its_login(
    pki_dir: Path, tmp_path: Path
) -> None:
    pki = make_pki(pki_dir)
    broker = tls_broker(pki_dir, pki, require_certificate=False)
    try:
        uplink, done = publish_three(tmp_path, broker.config.port, pki.ca)
    finally:
        broker.stop()
    assert done and uplink.errors["connect_failed"] == 0, uplink.errors
    log = broker.config.log_path.read_text()
    assert f"u'{DEVICE}'" in log or DEVICE in log


# paho-mqtt 2.2 leaves the socket of a failed TLS handshake to the garbage collector
# (client._ssl_wrap_socket does not close it): a ResourceWarning, not a leak that lasts.
PAHO_HANDSHAKE_SOCKET = "ignore::pytest.PytestUnraisableExceptionWarning"


@pytest.mark.filterwarnings(PAHO_HANDSHAKE_SOCKET)
def test_a_device_without_the_servers_ca_does_not_connect(
    pki_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pki = make_pki(pki_dir)
    broker = tls_broker(pki_dir, pki, require_certificate=False)
    try:  # a CA that did not sign the server's certificate: the handshake must fail
        uplink, done = publish_three(
            tmp_path, broker.config.port, pki.other_client_cert, timeout_s=3
        )
    finally:
        broker.stop()
    assert not done and uplink.acked == 0
    assert uplink.errors["connect_failed"] >= 1
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text  # the log says why


@pytest.mark.filterwarnings(PAHO_HANDSHAKE_SOCKET)
def test_a_broker_requiring_client_certificates_takes_a_device_with_one_and_refuses_others(
    pki_dir: Path, tmp_path: Path
) -> None:
    pki = make_pki(pki_dir)
    broker = tls_broker(pki_dir, pki, require_certificate=True)
    try:
        with_cert, done = publish_three(
            tmp_path / "a", broker.config.port, pki.ca, pki.client_cert, pki.client_key
        )
        assert done, with_cert.errors
        without, done = publish_three(tmp_path / "b", broker.config.port, pki.ca, timeout_s=3)
        assert not done and without.acked == 0
        foreign, done = publish_three(
            tmp_path / "c",
            broker.config.port,
            pki.ca,
            pki.other_client_cert,
            pki.other_client_key,
            timeout_s=3,
        )
        assert not done and foreign.acked == 0
    finally:
        broker.stop()


def test_unusable_tls_files_stop_the_start_with_a_message(tmp_path: Path) -> None:
    identity = DeviceIdentity(
        DEVICE,
        MqttLogin("127.0.0.1", 1, DEVICE, PASSWORD, str(tmp_path / "missing-ca.pem")),
        server_public_key=SERVER,
    )
    with pytest.raises(UplinkError, match="TLS settings are unusable"):
        MqttUplink(identity, protocol.generate_private_key(), Outbox(tmp_path / "o.sqlite3"))
