"""Shared by the tests/e2e/test_edge_*.py files: one SQLite LocalStack per module."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from roadmesh.stack import LocalStack
from tests.conftest import traversable_tmpdir


@pytest.fixture(scope="module")
def edge_stack() -> Iterator[LocalStack]:
    base = traversable_tmpdir("roadmesh-e2e-edge-")
    stack = LocalStack(run_dir=base)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        shutil.rmtree(base, ignore_errors=True)


def assert_exactly_once(stack: LocalStack, device_id: str, expected: int) -> None:
    stack.wait_for(
        lambda: len(stack.device_frames(device_id)) >= expected,
        60,
        f"{expected} frames of {device_id}",
    )
    seqs = [f["properties"]["seq"] for f in stack.device_frames(device_id)]
    assert seqs == list(range(1, expected + 1)), seqs
