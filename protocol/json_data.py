"""The JSON object inside telemetry messages: strict to read, canonical to write."""

from __future__ import annotations

import json
import math
from typing import Any, NoReturn

from .errors import ProtocolError, RejectReason

__all__ = ["canonical_json", "parse_json_object"]


def _bad(why: str) -> ProtocolError:
    return ProtocolError(RejectReason.BAD_FIELD, f"data: {why}")


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not allowed")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text} overflows a double")
    return number


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate key in JSON object")
    return obj


def parse_json_object(raw: bytes | memoryview) -> dict[str, Any]:
    """Strict JSON: UTF-8, an object at the top, no duplicate keys, NaN or Infinity."""
    try:
        text = str(raw, "utf-8")
        value = json.loads(
            text,
            object_pairs_hook=_unique_keys,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
        )
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError, JSONDecodeError
        raise _bad(f"not a valid JSON text ({type(exc).__name__}: {exc})") from None
    if not isinstance(value, dict):
        raise _bad(f"must be a JSON object, got {type(value).__name__}")
    return value


def canonical_json(data: object) -> bytes:
    """`data` as compact, key-sorted UTF-8 JSON; it must read back equal (str keys, lists)."""
    if not isinstance(data, dict):
        raise _bad(f"expected a dict (JSON object), got {type(data).__name__}")
    try:
        text = json.dumps(
            data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
        raw = text.encode("utf-8")
        same = parse_json_object(raw) == data
    except (TypeError, ValueError, RecursionError, ProtocolError) as exc:
        raise _bad(f"not representable as a JSON object ({exc})") from None
    if not same:
        raise _bad("does not survive a JSON round trip (non-string keys or tuples?)")
    return raw
