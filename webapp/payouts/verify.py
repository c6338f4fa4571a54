"""Recompute a published epoch from its inputs file and check it against the chain.

Plain Python over `rewards` and `contracts`: no database, no Django. Anyone with the
inputs file (from the URI the distributor holds, or a local copy), the claims file beside
it, and a JSON-RPC endpoint can run it.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contracts.chain import Chain
from rewards.epoch import close, first_difference
from rewards.errors import RewardsError
from rewards.inputs import EpochInputs, sha256_hex

MAX_DOWNLOAD = 2 * 1024**3


class FetchError(RewardsError):
    """A published file could not be read."""


def fetch(location: str) -> bytes:
    """Bytes of a local path, a file:// URI or an http(s):// URL."""
    parsed = urllib.parse.urlparse(location)
    try:
        if parsed.scheme in ("http", "https"):
            with urllib.request.urlopen(location, timeout=60) as response:
                data = response.read(MAX_DOWNLOAD + 1)
            if len(data) > MAX_DOWNLOAD:
                raise FetchError(f"{location} is larger than {MAX_DOWNLOAD} bytes")
            return bytes(data)
        if parsed.scheme == "file":
            return Path(urllib.request.url2pathname(parsed.path)).read_bytes()
        if parsed.scheme == "":
            return Path(location).read_bytes()
    except OSError as exc:
        raise FetchError(f"cannot read {location}: {exc}") from None
    raise FetchError(f"cannot read {location}: scheme {parsed.scheme!r} is not supported")


def claims_location(inputs_location: str) -> str:
    """Where the claims file lies beside an inputs file (…-inputs.zip -> …-claims.json)."""
    if not inputs_location.endswith("-inputs.zip"):
        raise FetchError(f"no claims file name follows from {inputs_location}: pass --claims")
    return inputs_location[: -len("-inputs.zip")] + "-claims.json"


@dataclass
class Verdict:
    epoch: int
    lines: list[str] = field(default_factory=list)  # what was checked, one line each
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def check(self, ok: bool, good: str, bad: str) -> None:
        self.lines.append(("ok    " if ok else "FAIL  ") + (good if ok else bad))
        if not ok:
            self.problems.append(bad)


def verify_epoch(chain: Chain, epoch: int, *, inputs: str = "", claims: str = "") -> Verdict:
    verdict = Verdict(epoch)
    on = chain.epoch_root(epoch)
    if on.status == "none":
        verdict.check(False, "", f"epoch {epoch} has no root on chain")
        return verdict
    verdict.lines.append(
        f"chain: epoch {epoch} {on.status}, root 0x{on.root.hex()}, inputs sha256 {on.inputs_hash.hex()}"
    )
    inputs_at = inputs or on.inputs_uri
    data = fetch(inputs_at)
    sha = sha256_hex(data)
    verdict.check(
        sha == on.inputs_hash.hex(),
        f"inputs {inputs_at}: sha256 matches the chain",
        f"inputs {inputs_at}: sha256 {sha} differs from the chain's {on.inputs_hash.hex()}",
    )
    parsed = EpochInputs.from_bytes(data)
    verdict.check(
        parsed.params.epoch == epoch,
        "inputs are for this epoch",
        f"the inputs are for epoch {parsed.params.epoch}",
    )
    result = close(parsed, sha)
    root = result.root or b""
    verdict.check(
        root == on.root,
        f"recomputed {len(result.allocations)} allocations: root matches the chain",
        f"recomputed root 0x{root.hex()} differs from the chain's 0x{on.root.hex()}",
    )
    published: dict[str, Any] = json.loads(fetch(claims or claims_location(inputs_at)))
    diff = first_difference(result.claims(), published)
    verdict.check(
        diff is None,
        "recomputed allocations equal the published claims file",
        f"first differing account: {diff}",
    )
    if published.get("root") != ("0x" + on.root.hex()):
        verdict.check(False, "", f"the published claims file has root {published.get('root')}")
    return verdict
