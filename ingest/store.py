"""Content-addressed image store: one seam (`ObjectStore`), a local-directory implementation.

Keys are the lowercase hex SHA-256 of the bytes, so writing the same image twice is a no-op
and a key always names exactly one content.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

_KEY_RE = re.compile(r"^[0-9a-f]{64}$")


class ObjectStoreError(Exception):
    """The store could not read or write an object."""


def content_key(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_key(key: str) -> str:
    if not _KEY_RE.match(key):
        raise KeyError(f"not a sha256 key: {key!r}")
    return key


class ObjectStore(Protocol):
    def put(self, data: bytes) -> str:
        """Store `data` durably and return its key (idempotent)."""
        ...

    def get(self, key: str) -> bytes:
        """Return the bytes under `key`; KeyError if absent."""
        ...

    def exists(self, key: str) -> bool: ...


class LocalObjectStore:
    """Files under `root/ab/cd/<sha256>`; written to a temp file, fsynced, then renamed."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_for(self, key: str) -> Path:
        check_key(key)
        return self.root / key[:2] / key[2:4] / key

    def put(self, data: bytes) -> str:
        key = content_key(data)
        target = self.path_for(key)
        if target.exists():
            return key
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            dir_fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise ObjectStoreError(f"cannot write {target}: {exc}") from exc
        return key

    def get(self, key: str) -> bytes:
        try:
            return self.path_for(key).read_bytes()
        except FileNotFoundError:
            raise KeyError(key) from None

    def exists(self, key: str) -> bool:
        return self.path_for(key).exists()
