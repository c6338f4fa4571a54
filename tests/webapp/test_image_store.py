"""The image store seam: local directory and S3 (moto) behave the same."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from webapp.config import ServerSettings, SettingsError
from webapp.images import LocalObjectStore, ObjectStore, S3ObjectStore, store_for


@pytest.fixture
def s3_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3ObjectStore]:
    moto = pytest.importorskip("moto")
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with moto.mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="roadmesh-test")
        yield S3ObjectStore("roadmesh-test", client=client)


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return LocalObjectStore(tmp_path / "images")
    return request.getfixturevalue("s3_store")  # type: ignore[no-any-return]


def test_a_stored_image_comes_back_under_its_sha256(store: ObjectStore) -> None:
    data = b"\xff\xd8 a frame \xff\xd9"
    key = store.put(data)
    assert key == hashlib.sha256(data).hexdigest()
    assert store.exists(key) and store.get(key) == data


def test_storing_the_same_image_twice_is_a_no_op(store: ObjectStore) -> None:
    assert store.put(b"same") == store.put(b"same")


def test_an_absent_key_raises_key_error(store: ObjectStore) -> None:
    key = hashlib.sha256(b"never stored").hexdigest()
    assert not store.exists(key)
    with pytest.raises(KeyError):
        store.get(key)


def test_the_s3_store_keeps_objects_under_a_sharded_prefix(s3_store: S3ObjectStore) -> None:
    key = s3_store.put(b"x")
    listed = s3_store.client.list_objects_v2(Bucket="roadmesh-test")["Contents"]
    assert [o["Key"] for o in listed] == [f"images/{key[:2]}/{key[2:4]}/{key}"]


def test_the_store_setting_selects_s3_and_names_a_missing_bucket(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ROADMESH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ROADMESH_IMAGE_STORE", "s3")
    monkeypatch.delenv("ROADMESH_S3_BUCKET", raising=False)
    with pytest.raises(SettingsError, match="ROADMESH_S3_BUCKET"):
        ServerSettings.from_env()
    monkeypatch.setenv("ROADMESH_S3_BUCKET", "roadmesh-test")
    assert isinstance(store_for(ServerSettings.from_env()), S3ObjectStore)
    monkeypatch.setenv("ROADMESH_IMAGE_STORE", "ftp")
    with pytest.raises(SettingsError, match="ROADMESH_IMAGE_STORE"):
        ServerSettings.from_env()
    monkeypatch.setenv("ROADMESH_IMAGE_STORE", "local")
    store = store_for(ServerSettings.from_env())
    assert isinstance(store, LocalObjectStore) and store.root == tmp_path / "images"
