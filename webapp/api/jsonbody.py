"""Request bodies as JSON objects, with their nesting bounded *before* parsing: CPython's
JSON scanner recurses in C, and a body of 100,000 brackets overflows the stack of a server
thread (a crash, not an exception). Strings are skipped, then brackets counted."""

from __future__ import annotations

import json
import re
from typing import Any

from webapp.api.errors import ApiError

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")


def nesting_exceeds(raw: bytes, limit: int) -> bool:
    depth = 0
    for m in _BRACKET.finditer(_STRING.sub(b'""', raw)):
        if m.group() in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def parse_object(raw: bytes, limit: int) -> dict[str, Any]:
    """The body as a JSON object; ApiError(400) when it is not one or nests past `limit`."""
    if nesting_exceeds(raw, limit):
        raise ApiError(400, f"the JSON body nests deeper than {limit}")
    try:
        data = json.loads(raw or b"{}")
    except RecursionError:
        raise ApiError(400, "the JSON body nests too deeply") from None
    except (ValueError, UnicodeError):
        raise ApiError(400, "the body is not JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the JSON body must be an object")
    return data
