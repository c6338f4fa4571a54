"""Device key files: owner-only, written atomically, never overwritten."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1
from cryptography.hazmat.primitives.asymmetric.ec import generate_private_key as ec_key

from protocol import (
    KeyFileError,
    ProtocolError,
    RejectReason,
    fingerprint,
    generate_private_key,
    load_private_key,
    load_public_key,
    load_public_key_hex,
    public_key_bytes,
    public_key_hex,
    save_private_key,
)


def test_a_saved_key_file_is_created_0600_and_loads_back(tmp_path: Path) -> None:
    key = generate_private_key()
    path = tmp_path / "device.key"
    old_umask = os.umask(0)  # even with a permissive umask
    try:
        save_private_key(key, path)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public_key_bytes(load_private_key(path)) == public_key_bytes(key)
    assert [p.name for p in tmp_path.iterdir()] == ["device.key"]  # no temp file left


def test_it_refuses_to_overwrite_an_existing_key_file(tmp_path: Path) -> None:
    path = tmp_path / "device.key"
    first = generate_private_key()
    save_private_key(first, path)
    with pytest.raises(FileExistsError):
        save_private_key(generate_private_key(), path)
    assert public_key_bytes(load_private_key(path)) == public_key_bytes(first)
    assert [p.name for p in tmp_path.iterdir()] == ["device.key"]


def test_it_refuses_to_load_a_key_file_others_can_read(tmp_path: Path) -> None:
    path = tmp_path / "device.key"
    save_private_key(generate_private_key(), path)
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_private_key(path)


def test_it_explains_a_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot read"):
        load_private_key(tmp_path / "absent.key")


def test_it_refuses_a_file_that_is_not_a_pem_key(tmp_path: Path) -> None:
    path = tmp_path / "device.key"
    path.write_bytes(b"hello")
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match="not an unencrypted PEM private key"):
        load_private_key(path)


def test_it_refuses_a_key_that_is_not_ed25519(tmp_path: Path) -> None:
    path = tmp_path / "device.key"
    pem = ec_key(SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match="Ed25519"):
        load_private_key(path)


def test_public_keys_round_trip_as_raw_bytes_and_hex() -> None:
    key = generate_private_key()
    raw = public_key_bytes(key)
    assert len(raw) == 32
    assert public_key_bytes(load_public_key(raw)) == raw
    assert public_key_bytes(load_public_key_hex(public_key_hex(key))) == raw
    assert public_key_bytes(key.public_key()) == raw


def test_a_fingerprint_is_short_and_stable() -> None:
    key = generate_private_key()
    assert fingerprint(key) == fingerprint(key.public_key()) == fingerprint(public_key_bytes(key))
    assert len(fingerprint(key)) == 19  # 4 groups of 4 hex digits


@pytest.mark.parametrize("text", ["zz", "00" * 31, 42])
def test_it_rejects_a_malformed_public_key(text: object) -> None:
    with pytest.raises(ProtocolError) as info:
        load_public_key_hex(text)  # type: ignore[arg-type]
    assert info.value.reason is RejectReason.BAD_FIELD
