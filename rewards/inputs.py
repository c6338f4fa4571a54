"""An epoch's input tables and their published file.

The file is a ZIP archive with fixed member names, order and timestamps: `params.json`
(the `EpochParams`, canonical JSON) and one CSV per table below, each sorted by its key
columns, UTF-8, `\\n` line ends. Its SHA-256 goes on chain beside the Merkle root; anyone
holding the file can recompute the epoch (`rewards.epoch.close`). It holds no personal
data beyond device ids, account keys with their wallet addresses, and H3 cells: no
positions, no timestamps of frames, no names.

| table | columns | one row per |
|---|---|---|
| `accounts` | account, wallet | account paid this epoch (wallet "" = none set: withheld) |
| `devices` | device, account, trust | device with frames or reviews in the epoch |
| `frames` | device, seq, h3_r12, hdop, satellites, fix_type, sharpness, brightness | rewardable frame |
| `history` | h3_r12, last_covered_at | epoch cell covered in an earlier epoch (unix s) |
| `usage` | h3, requests | demand cell (`demand_resolution`) with last epoch's API requests |
| `detection_reviews` | device, confirmed | settled review of one detection (1 = confirmed) |
| `votes` | account, task, answer, consensus, gold | reviewer vote ("" consensus = unsettled, "" gold = not gold) |
| `cumulative_before` | wallet, cumulative_amount | wallet allocated in earlier epochs |

H3 cells are written in their standard hexadecimal form; `sharpness` and `brightness` are
the server's measures on the reduced decode (empty when not measured).
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from rewards.errors import InputsError
from rewards.params import EpochParams

# table -> (column -> kind), kind in str | int | float | cell | bigint
SCHEMA: dict[str, dict[str, str]] = {
    "accounts": {"account": "str", "wallet": "str"},
    "devices": {"device": "str", "account": "str", "trust": "float"},
    "frames": {
        "device": "str",
        "seq": "int",
        "h3_r12": "cell",
        "hdop": "float",
        "satellites": "int",
        "fix_type": "int",
        "sharpness": "float",
        "brightness": "float",
    },
    "history": {"h3_r12": "cell", "last_covered_at": "int"},
    "usage": {"h3": "cell", "requests": "int"},
    "detection_reviews": {"device": "str", "confirmed": "int"},
    "votes": {"account": "str", "task": "int", "answer": "str", "consensus": "str", "gold": "str"},
    "cumulative_before": {"wallet": "str", "cumulative_amount": "bigint"},
}
# sort keys: the full row where rows may repeat, the key where it is unique
SORT: dict[str, list[str]] = {
    "accounts": ["account"],
    "devices": ["device"],
    "frames": ["device", "seq"],
    "history": ["h3_r12"],
    "usage": ["h3"],
    "detection_reviews": ["device", "confirmed"],
    "votes": ["task", "account"],
    "cumulative_before": ["wallet"],
}
UNIQUE = {
    "accounts": ["account"],
    "devices": ["device"],
    "frames": ["device", "seq"],
    "history": ["h3_r12"],
    "usage": ["h3"],
    "votes": ["task", "account"],
    "cumulative_before": ["wallet"],
}
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
FLOAT_DECIMALS = 3


def empty_table(name: str) -> pd.DataFrame:
    return _typed(name, pd.DataFrame({c: [] for c in SCHEMA[name]}))


def _typed(name: str, df: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in SCHEMA[name] if c not in df.columns]
    if missing:
        raise InputsError(f"table {name} lacks column(s) {', '.join(missing)}")
    out = {}
    for col, kind in SCHEMA[name].items():
        s = df[col]
        try:
            if kind == "str":
                out[col] = s.fillna("").astype(str).to_numpy(dtype=object)
            elif kind in ("int", "cell"):
                if s.isna().any():
                    raise InputsError(f"table {name}: column {col} has empty values")
                out[col] = s.to_numpy().astype(np.int64)
            elif kind == "float":  # kept to FLOAT_DECIMALS: what the file holds is what is scored
                out[col] = np.round(s.to_numpy().astype(np.float64), FLOAT_DECIMALS)
            else:  # bigint: Python ints (token amounts exceed int64)
                out[col] = np.array([int(v) for v in s], dtype=object)
        except (TypeError, ValueError, OverflowError) as exc:
            raise InputsError(f"table {name}: column {col}: {exc}") from None
    return pd.DataFrame(out, columns=list(SCHEMA[name]))


@dataclass(frozen=True)
class EpochInputs:
    """Everything an epoch's scoring reads. Build with `EpochInputs.of` (types and sorts)."""

    params: EpochParams
    accounts: pd.DataFrame
    devices: pd.DataFrame
    frames: pd.DataFrame
    history: pd.DataFrame
    usage: pd.DataFrame
    detection_reviews: pd.DataFrame
    votes: pd.DataFrame
    cumulative_before: pd.DataFrame

    @classmethod
    def of(cls, params: EpochParams, **tables: pd.DataFrame | None) -> EpochInputs:
        unknown = set(tables) - set(SCHEMA)
        if unknown:
            raise InputsError(f"unknown table(s): {', '.join(sorted(unknown))}")
        built = {}
        for name in SCHEMA:
            raw = tables.get(name)
            df = empty_table(name) if raw is None else _typed(name, raw)
            key = UNIQUE.get(name)
            if key and len(df) and df.duplicated(key).any():
                row = df[df.duplicated(key, keep=False)].iloc[0]
                raise InputsError(
                    f"table {name}: key {', '.join(key)} repeats ({', '.join(str(row[k]) for k in key)})"
                )
            built[name] = df.sort_values(SORT[name], kind="mergesort").reset_index(drop=True)
        _check_links(built)
        return cls(params, **built)

    def tables(self) -> dict[str, pd.DataFrame]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "params"}

    # -- the published file ----------------------------------------------------------------
    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            _member(zf, "params.json", self.params.to_json().encode() + b"\n")
            for name, df in self.tables().items():
                _member(zf, f"{name}.csv", _csv(name, df))
        return buf.getvalue()

    def write(self, path: Path) -> str:
        """Write the file; returns its SHA-256 (hex)."""
        data = self.to_bytes()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        return hashlib.sha256(data).hexdigest()

    @classmethod
    def from_bytes(cls, data: bytes) -> EpochInputs:
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                names = zf.namelist()
                want = ["params.json", *(f"{t}.csv" for t in SCHEMA)]
                if names != want:
                    raise InputsError(f"the inputs file holds {names}, expected {want}")
                params = EpochParams.from_json(zf.read("params.json").decode())
                tables = {t: _read_csv(t, zf.read(f"{t}.csv")) for t in SCHEMA}
        except zipfile.BadZipFile as exc:
            raise InputsError(f"the inputs file is not a ZIP archive: {exc}") from None
        return cls.of(params, **tables)

    @classmethod
    def read(cls, path: Path) -> EpochInputs:
        return cls.from_bytes(path.read_bytes())


def _check_links(t: dict[str, pd.DataFrame]) -> None:
    accounts = set(t["accounts"]["account"])
    devices = set(t["devices"]["device"])
    for table, col, known, what in (
        ("devices", "account", accounts, "accounts"),
        ("frames", "device", devices, "devices"),
        ("detection_reviews", "device", devices, "devices"),
        ("votes", "account", accounts, "accounts"),
    ):
        stray = set(t[table][col]) - known
        if stray:
            raise InputsError(f"table {table}: {col} {sorted(stray)[0]} is not in {what}")


def _member(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    zf.writestr(info, data, compresslevel=1)


def _csv(name: str, df: pd.DataFrame) -> bytes:
    out = df.copy()
    for col, kind in SCHEMA[name].items():
        if kind == "cell":
            out[col] = [format(int(c) & 0xFFFFFFFFFFFFFFFF, "x") for c in out[col]]
        elif kind == "bigint":
            out[col] = [str(int(v)) for v in out[col]]
    return out.to_csv(index=False, lineterminator="\n").encode()


def _read_csv(name: str, data: bytes) -> pd.DataFrame:
    kinds = SCHEMA[name]
    dtype = {c: (str if k in ("str", "cell", "bigint") else None) for c, k in kinds.items()}
    try:
        df = pd.read_csv(
            io.BytesIO(data),
            dtype={c: d for c, d in dtype.items() if d is not None},
            keep_default_na=False,
            na_values={c: [""] for c, k in kinds.items() if k == "float"},
        )
    except (ValueError, pd.errors.ParserError) as exc:
        raise InputsError(f"{name}.csv: {exc}") from None
    if list(df.columns) != list(kinds):
        raise InputsError(f"{name}.csv has columns {list(df.columns)}, expected {list(kinds)}")
    for col, kind in kinds.items():
        try:
            if kind == "cell":
                df[col] = np.array([int(v, 16) for v in df[col]], dtype=np.uint64).view(np.int64)
            elif kind == "bigint":
                df[col] = [int(v) for v in df[col]]
        except ValueError as exc:
            raise InputsError(f"{name}.csv: column {col}: {exc}") from None
    return df


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
