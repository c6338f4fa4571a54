"""The outbox stays under its byte bound, evicting well-covered frames first; config applies live."""

from __future__ import annotations

from pathlib import Path

import h3.api.basic_int as h3i
import pytest

from edge.outbox import Outbox
from edge.settings import EdgeSettings, SettingsError

COVERED = h3i.latlng_to_cell(60.17, 24.94, 12)
ELSEWHERE = h3i.latlng_to_cell(60.20, 24.99, 12)


def put(outbox: Outbox, cell: int, kind: str = "frame", size: int = 1000) -> int:
    seq = outbox.put(lambda s: ("devices/dev-x/frames", bytes(size)), kind=kind, cell=cell)
    assert seq is not None
    return seq


def test_frames_in_well_covered_cells_are_evicted_first_then_the_oldest(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3", max_bytes=5000)
    outbox.set_cells([h3i.cell_to_parent(COVERED, 9)])
    first = put(outbox, ELSEWHERE)
    covered = put(outbox, COVERED)
    for _ in range(3):
        put(outbox, ELSEWHERE)
    assert outbox.total_bytes() == 5000
    put(outbox, ELSEWHERE)  # one too many: the covered frame goes, not the oldest
    seqs = [i.seq for i in outbox.pending()]
    assert covered not in seqs and first in seqs
    put(outbox, ELSEWHERE)  # nothing covered left: the oldest goes
    assert first not in [i.seq for i in outbox.pending()]
    assert outbox.total_bytes() <= 5000
    assert outbox.evicted == {"well_covered": 1, "frame": 1}


def test_sequence_numbers_never_repeat_after_eviction(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3", max_bytes=2000)
    seqs = [put(outbox, ELSEWHERE) for _ in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    reopened = Outbox(tmp_path / "o.sqlite3", max_bytes=2000)
    assert put(reopened, ELSEWHERE) == 6


def test_settings_come_from_the_file_and_the_environment_and_bad_values_name_the_variable(
    tmp_path: Path,
) -> None:
    conf = tmp_path / "edge.toml"
    conf.write_text(
        "sample_distance_m = 10\nprivacy_zones = [[[24.9, 60.1], [25.0, 60.1], [25.0, 60.2]]]\n"
    )
    s = EdgeSettings.load(conf, {"ROADMESH_EDGE_MAX_HDOP": "3.5"})
    assert (s.sample_distance_m, s.max_hdop, len(s.privacy_zones)) == (10.0, 3.5, 1)
    with pytest.raises(SettingsError, match="ROADMESH_EDGE_MIN_SATELLITES"):
        EdgeSettings.load(None, {"ROADMESH_EDGE_MIN_SATELLITES": "four"})
    conf.write_text("sampel_distance = 3\n")
    with pytest.raises(SettingsError, match="unknown setting 'sampel_distance'"):
        EdgeSettings.load(conf, {})
