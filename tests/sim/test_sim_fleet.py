from __future__ import annotations

import json
from pathlib import Path

from sim.fleet import ADVERSARY_KINDS, plan_fleet, run_fleet


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_the_same_seed_gives_the_same_fleet(tmp_path: Path) -> None:
    runs = []
    for k in range(2):
        plan = plan_fleet(3, 0.05, seed=9, adversaries="duplicate_farmer", width=320, height=180)
        run_fleet(plan, tmp_path / str(k), workers=2, show_progress=False)
        runs.append(_files(tmp_path / str(k)))
    assert runs[0].keys() == runs[1].keys()
    truth = [
        k
        for k in runs[0]
        if k.endswith((".nmea", ".csv", ".jsonl", "fleet.json", "manifest.json", ".gpx"))
    ]
    assert len(truth) > 10
    for k in truth:
        assert runs[0][k] == runs[1][k], k
    for k in (k for k in runs[0] if k.endswith(".mp4")):
        assert runs[0][k] == runs[1][k], k
    other = plan_fleet(3, 0.05, seed=10, adversaries="duplicate_farmer", width=320, height=180)
    run_fleet(other, tmp_path / "other", workers=1, show_progress=False)
    assert (tmp_path / "other" / "devices" / "dev00" / "gnss.nmea").read_bytes() != runs[0][
        "devices/dev00/gnss.nmea"
    ]


def test_a_fleet_labels_every_adversary_and_keeps_most_devices_honest() -> None:
    plan = plan_fleet(16, 1.0, seed=1, adversaries="all")
    roles = [d.role for d in plan.devices]
    assert set(ADVERSARY_KINDS) <= set(roles)
    clones = [d for d in plan.devices if d.role == "cloned_key"]
    assert len(clones) == 2 and clones[0].device_id == clones[1].device_id
    assert (
        clones[0].spec and clones[1].spec and clones[0].spec.device_id == clones[1].spec.device_id
    )
    auto = plan_fleet(10, 1.0, seed=1)
    assert sum(d.role == "honest" for d in auto.devices) >= 6
    doc = [d.to_dict() for d in auto.devices]
    assert all(d["adversarial"] == (d["role"] != "honest") for d in doc)
    json.dumps(doc)
