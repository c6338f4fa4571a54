"""Device signing keys: Ed25519, stored as unencrypted PKCS#8 PEM readable by the owner only."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import stat
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from .errors import KeyFileError, ProtocolError, RejectReason

__all__ = [
    "PUBLIC_KEY_BYTES",
    "fingerprint",
    "generate_private_key",
    "load_private_key",
    "load_public_key",
    "load_public_key_hex",
    "public_key_bytes",
    "public_key_hex",
    "save_private_key",
]

PUBLIC_KEY_BYTES = 32
_MAX_KEY_FILE_BYTES = 64 * 1024


def generate_private_key() -> Ed25519PrivateKey:
    """A fresh device key."""
    return Ed25519PrivateKey.generate()


def save_private_key(key: Ed25519PrivateKey, path: Path) -> None:
    """Write `key` to `path` as PKCS#8 PEM with mode 0600, atomically.

    The key is written to a temporary file created 0600 (O_EXCL) in the same folder,
    synced, then hard-linked into place, so `path` either does not exist or holds the
    whole key, and is never readable by others. Raises FileExistsError if `path` exists.
    """
    if not isinstance(key, Ed25519PrivateKey):
        raise TypeError(f"key: expected Ed25519PrivateKey, got {type(key).__name__}")
    path = Path(path)
    pem = key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
    if path.exists() or path.is_symlink():
        raise FileExistsError(f"{path}: refusing to overwrite an existing key file")
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o600)  # a umask can only narrow it, but be explicit
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            # link() fails if the target exists, unlike rename(): no overwrite race.
            os.link(tmp, path)
        except FileExistsError:
            raise FileExistsError(f"{path}: refusing to overwrite an existing key file") from None
        except OSError:
            # Filesystems without hard links (FAT on SD cards): check, then rename.
            if path.exists():
                raise FileExistsError(
                    f"{path}: refusing to overwrite an existing key file"
                ) from None
            os.rename(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Read a key written by `save_private_key`.

    Raises KeyFileError when the file is missing or unreadable, readable by group or
    others, not a PEM private key, or not an Ed25519 key.
    """
    path = Path(path)
    try:
        info = path.stat()
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyFileError(
                f"{path}: key file mode is {stat.filemode(info.st_mode)}, it must be readable "
                f"by its owner only (chmod 600 {path})"
            )
        if info.st_size > _MAX_KEY_FILE_BYTES:
            raise KeyFileError(f"{path}: {info.st_size} bytes is too large for a key file")
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read key file ({exc.strerror or exc})") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path}: not an unencrypted PEM private key ({exc})") from None
    except UnsupportedAlgorithm as exc:
        raise KeyFileError(f"{path}: unsupported key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: expected an Ed25519 key, found {type(key).__name__}")
    return key


def public_key_bytes(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """The 32-byte raw public key (what the server registers for a device)."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    if not isinstance(public, Ed25519PublicKey):
        raise TypeError(f"key: expected an Ed25519 key, got {type(key).__name__}")
    return public.public_bytes(
        encoding=serialization.Encoding.Raw, format=serialization.PublicFormat.Raw
    )


def public_key_hex(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The raw public key as 64 lowercase hex digits."""
    return public_key_bytes(key).hex()


def fingerprint(key: Ed25519PrivateKey | Ed25519PublicKey | bytes) -> str:
    """A short name for a key, safe to log: first 8 bytes of SHA-256(raw key), hex, colon-grouped."""
    raw = key if isinstance(key, bytes) else public_key_bytes(key)
    digest = hashlib.sha256(raw).digest()[:8].hex()
    return ":".join(digest[i : i + 4] for i in range(0, len(digest), 4))


def load_public_key(raw: bytes) -> Ed25519PublicKey:
    """A public key from its 32 raw bytes; ProtocolError(BAD_FIELD) otherwise."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise ProtocolError(
            RejectReason.BAD_FIELD, f"public_key: expected bytes, got {type(raw).__name__}"
        )
    raw = bytes(raw)
    if len(raw) != PUBLIC_KEY_BYTES:
        raise ProtocolError(
            RejectReason.BAD_FIELD, f"public_key: {len(raw)} bytes, expected {PUBLIC_KEY_BYTES}"
        )
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise ProtocolError(RejectReason.BAD_FIELD, f"public_key: {exc}") from None


def load_public_key_hex(text: str) -> Ed25519PublicKey:
    """A public key from 64 hex digits; ProtocolError(BAD_FIELD) otherwise."""
    try:
        raw = bytes.fromhex(text)
    except (TypeError, ValueError):
        raise ProtocolError(RejectReason.BAD_FIELD, "public_key: not a hex string") from None
    return load_public_key(raw)
