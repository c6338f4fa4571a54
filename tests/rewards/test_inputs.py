"""The published inputs file: a byte-stable round trip, and clear refusals of bad tables."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import h3.api.basic_int as h3i
import numpy as np
import pandas as pd
import pytest

from rewards.cells import parents
from rewards.errors import InputsError, ParamsError
from rewards.inputs import EpochInputs
from rewards.params import EpochParams, Region
from tests.rewards.build import X, Y, frames, inputs


def test_the_file_round_trips_and_is_the_same_bytes_every_time(tmp_path: Path) -> None:
    original = inputs(
        frames("a1", [X, Y], hdop=float("nan")) + frames("b1", [Y]),
        history={X: 1_700_000_000},
        before={"0x" + "cc" * 20: 10**30},
        regions=(Region("r", 2.0, ((24.0, 60.0), (25.0, 60.0), (25.0, 61.0))),),
    )
    sha = original.write(tmp_path / "in.zip")
    assert sha == hashlib.sha256((tmp_path / "in.zip").read_bytes()).hexdigest()
    back = EpochInputs.read(tmp_path / "in.zip")
    assert back.params == original.params
    for name, df in original.tables().items():
        pd.testing.assert_frame_equal(back.tables()[name], df, check_dtype=False)
    assert back.to_bytes() == original.to_bytes()
    with zipfile.ZipFile(tmp_path / "in.zip") as zf:
        assert zf.namelist()[0] == "params.json"
        head = zf.read("frames.csv").decode().splitlines()
    assert head[0] == "device,seq,h3_r12,hdop,satellites,fix_type,sharpness,brightness"
    assert head[1].startswith(f"a1,1,{h3i.int_to_str(X)},,")  # cells in hex; unknown hdop empty


def test_rows_are_sorted_whatever_order_they_came_in() -> None:
    a = inputs(frames("a1", [X, Y]) + frames("b1", [Y]))
    b = inputs(list(reversed(frames("a1", [X, Y]) + frames("b1", [Y]))))
    assert a.to_bytes() == b.to_bytes()


def test_a_frame_of_an_unknown_device_is_refused() -> None:
    with pytest.raises(InputsError, match="zz is not in devices"):
        inputs(frames("zz", [X]))


def test_a_repeated_frame_is_refused() -> None:
    with pytest.raises(InputsError, match="repeats"):
        inputs(frames("a1", [X]) + frames("a1", [Y]))


def test_a_file_with_a_missing_member_is_refused(tmp_path: Path) -> None:
    data = inputs(frames("a1", [X])).to_bytes()
    import io

    src = zipfile.ZipFile(io.BytesIO(data))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as out:
        for name in src.namelist()[:-1]:
            out.writestr(name, src.read(name))
    with pytest.raises(InputsError, match="expected"):
        EpochInputs.from_bytes(buf.getvalue())
    with pytest.raises(InputsError, match="not a ZIP"):
        EpochInputs.from_bytes(b"not a zip")


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"coverage_share": 0.9, "review_share": 0.2}, "more than 1"),
        ({"repeat_decay": 1.0}, "repeat_decay"),
        ({"ends_at": 0}, "ends_at"),
        ({"surprise": 1}, "unknown epoch parameter"),
        ({"pool": "lots"}, "not an integer"),
    ],
)
def test_bad_parameters_are_refused_naming_the_key(over: dict[str, object], message: str) -> None:
    base = {"epoch": 1, "starts_at": 10, "ends_at": 20}
    with pytest.raises(ParamsError, match=message):
        EpochParams.from_dict({**base, **over})


def test_parameters_round_trip_through_json() -> None:
    p = EpochParams(1, 10, 20, pool=10**30, regions=(Region("r", 2.0, ((0, 0), (1, 0), (1, 1))),))
    assert EpochParams.from_json(p.to_json()) == p


def test_parents_by_bits_match_h3() -> None:
    rng = np.random.default_rng(3)
    cells = [
        h3i.latlng_to_cell(float(lat), float(lon), 12)
        for lat, lon in zip(rng.uniform(-80, 80, 200), rng.uniform(-179, 179, 200), strict=True)
    ]
    for res in (0, 5, 8, 9, 12):
        got = parents(np.array(cells, dtype=np.int64), res)
        assert [int(g) for g in got] == [h3i.cell_to_parent(c, res) for c in cells]
