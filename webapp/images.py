"""Content-addressed image store: one seam (`ObjectStore`); a local directory or an S3 bucket.

Keys are the lowercase hex SHA-256 of the bytes, so writing the same image twice is a no-op
and a key always names exactly one content.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import re
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from webapp.config import ServerSettings

SYNC_THREADS = 8  # concurrent fsyncs: the filesystem journal commits them together

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

    def put_many(self, items: Sequence[bytes], keys: Sequence[str] | None = None) -> list[str]:
        """`put` for a batch: every object durable when it returns; keys in order.

        `keys`, when given, are the items' SHA-256 keys already known to the caller (the
        protocol decoder checked them against the bytes); the store does not hash again.
        """
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

    def put_many(self, items: Sequence[bytes], keys: Sequence[str] | None = None) -> list[str]:
        """Write every new object to a temp file, fsync them all at once, then rename them all.

        The same guarantee as `put` (the data, then the name, on disk before it returns)
        with the fsyncs issued together, so the journal commits them as one. `keys`: the
        items' SHA-256 keys when the caller already verified them (no second hash).
        """
        if keys is None:
            keys = [content_key(data) for data in items]
        else:
            keys = [check_key(k) for k in keys]
            if len(keys) != len(items):
                raise ValueError(f"{len(items)} items but {len(keys)} keys")
        todo: dict[str, bytes] = {}
        for key, data in zip(keys, items, strict=True):
            if key not in todo and not self.path_for(key).exists():
                todo[key] = data
        if not todo:
            return keys
        temps: list[tuple[int, str, Path]] = []
        try:
            try:
                for key, data in todo.items():
                    target = self.path_for(key)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
                    temps.append((fd, tmp, target))
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                with ThreadPoolExecutor(min(SYNC_THREADS, len(temps))) as pool:
                    list(pool.map(os.fsync, [fd for fd, _, _ in temps]))
                for _fd, tmp, target in temps:
                    os.replace(tmp, target)
                dirs = sorted({target.parent for _, _, target in temps})
                with ThreadPoolExecutor(min(SYNC_THREADS, len(dirs))) as pool:
                    list(pool.map(_fsync_dir, dirs))
            finally:
                for fd, tmp, _ in temps:
                    os.close(fd)
                    Path(tmp).unlink(missing_ok=True)
        except OSError as exc:
            raise ObjectStoreError(
                f"cannot write {len(todo)} objects under {self.root}: {exc}"
            ) from exc
        return keys

    def get(self, key: str) -> bytes:
        try:
            return self.path_for(key).read_bytes()
        except FileNotFoundError:
            raise KeyError(key) from None

    def exists(self, key: str) -> bool:
        return self.path_for(key).exists()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class S3ObjectStore:
    """Objects in an S3-compatible bucket under `prefix/ab/cd/<sha256>` (AWS, MinIO, Ceph ...).

    `put` checks for the key first (HEAD), so writing the same image twice uploads once; the
    PUT carries the SHA-256 checksum, which the service verifies before it stores the object.
    """

    def __init__(
        self, bucket: str, *, prefix: str = "images", client: Any = None, **client_args: Any
    ) -> None:
        if client is None:
            import boto3

            client = boto3.client("s3", **{k: v for k, v in client_args.items() if v})
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    def object_key(self, key: str) -> str:
        check_key(key)
        return (
            f"{self.prefix}/{key[:2]}/{key[2:4]}/{key}"
            if self.prefix
            else f"{key[:2]}/{key[2:4]}/{key}"
        )

    def put(self, data: bytes, key: str | None = None) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        key = content_key(data) if key is None else check_key(key)
        if self.exists(key):
            return key
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=self.object_key(key),
                Body=data,
                ContentType="image/jpeg",
                ChecksumSHA256=base64.b64encode(bytes.fromhex(key)).decode(),
            )
        except (BotoCoreError, ClientError) as exc:
            raise ObjectStoreError(
                f"cannot write s3://{self.bucket}/{self.object_key(key)}: {exc}"
            ) from exc
        return key

    def put_many(self, items: Sequence[bytes], keys: Sequence[str] | None = None) -> list[str]:
        """Uploads in parallel (an upload is durable when its PUT returns); the PUT carries the
        SHA-256 checksum, so a wrong known key is refused by the service."""
        if keys is not None and len(keys) != len(items):
            raise ValueError(f"{len(items)} items but {len(keys)} keys")
        with ThreadPoolExecutor(SYNC_THREADS) as pool:
            return list(
                pool.map(self.put, items, keys if keys is not None else [None] * len(items))
            )

    def get(self, key: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.object_key(key))
            return bytes(response["Body"].read())
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise KeyError(key) from None
            raise ObjectStoreError(
                f"cannot read s3://{self.bucket}/{self.object_key(key)}: {exc}"
            ) from exc
        except BotoCoreError as exc:
            raise ObjectStoreError(
                f"cannot read s3://{self.bucket}/{self.object_key(key)}: {exc}"
            ) from exc

    def exists(self, key: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return False
            raise ObjectStoreError(
                f"cannot check s3://{self.bucket}/{self.object_key(key)}: {exc}"
            ) from exc
        except BotoCoreError as exc:
            raise ObjectStoreError(
                f"cannot check s3://{self.bucket}/{self.object_key(key)}: {exc}"
            ) from exc


def store_for(settings: ServerSettings) -> ObjectStore:
    """The store the settings name: a local directory (default) or an S3 bucket.

    For s3, credentials come from boto3's usual chain (AWS_ACCESS_KEY_ID /
    AWS_SECRET_ACCESS_KEY, a profile, an IAM role).
    """
    if settings.image_store == "s3":
        assert settings.s3 is not None
        s3 = settings.s3
        return S3ObjectStore(
            s3.bucket, prefix=s3.prefix, endpoint_url=s3.endpoint_url, region_name=s3.region
        )
    return LocalObjectStore(settings.image_dir)


@functools.lru_cache(maxsize=8)
def shared_store(settings: ServerSettings) -> ObjectStore:
    """`store_for`, made once per process and settings: for request handlers (an S3 client
    is too costly to make per request)."""
    return store_for(settings)
