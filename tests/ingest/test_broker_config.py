"""The generated broker files: Mosquitto password hashes and the per-device ACL."""

from __future__ import annotations

from ingest.broker import INGEST_USER, acl_text, check_password, hash_password, password_file_text


def test_a_password_hash_checks_only_its_own_password() -> None:
    stored = hash_password("s3cret")
    assert stored.startswith("$7$101$")
    assert check_password("s3cret", stored)
    assert not check_password("s3cret!", stored)
    assert hash_password("s3cret") != stored  # salted


def test_the_acl_lets_a_device_write_only_under_its_own_id() -> None:
    acl = acl_text()
    assert "pattern write devices/%u/frames" in acl
    assert "pattern write devices/#" not in acl
    assert f"user {INGEST_USER}\ntopic read devices/#" in acl


def test_the_password_file_is_sorted_user_colon_hash_lines() -> None:
    assert password_file_text({"b": "$7$x", "a": "$7$y"}) == "a:$7$y\nb:$7$x\n"
