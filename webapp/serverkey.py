"""The server's Ed25519 key: it signs the receipts devices keep as proof of delivery.

One key for the whole deployment (`ROADMESH_SERVER_KEY_FILE`, default
`DATA_DIR/server.key`, PEM, mode 0600). It is made on first use; every ingest worker,
on every machine, must read the same file (copy it; never make a second one). Its public
half is served by `GET /api/v1/server-key` and written into each device's `device.json`
at provisioning.
"""

from __future__ import annotations

import functools
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import protocol


def load_or_create(path: Path) -> Ed25519PrivateKey:
    """The key in `path`, made there (0600, atomically, never overwritten) when absent."""
    if path.exists():
        return protocol.load_private_key(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        protocol.save_private_key(protocol.generate_private_key(), path)
    except FileExistsError:
        pass  # another process made it first: use theirs
    return protocol.load_private_key(path)


@functools.lru_cache(maxsize=4)
def server_key(path: Path) -> Ed25519PrivateKey:
    return load_or_create(path)


def public_key_hex(path: Path) -> str:
    return protocol.public_key_hex(server_key(path))
