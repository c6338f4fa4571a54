"""What `--world` names: a world folder, the sample, or a procedural kind made on first use.

--world sample                 the committed sample (Helsinki centre, OpenStreetMap)
--world DIR                    any folder made by `roadmesh sim world`
--world rural | rural:3        a procedural world of that kind (and seed, default 1),
                               generated once into $ROADMESH_SIM_WORLDS (default out/worlds)
"""

from __future__ import annotations

import os
from pathlib import Path

from sim.procgen import KINDS
from sim.world import default_world_dir

DEFAULT_SEED = 1


def cache_root() -> Path:
    return Path(os.environ.get("ROADMESH_SIM_WORLDS", "out/worlds"))


def parse(spec: str) -> tuple[str, int] | None:
    """("rural", 3) for "rural:3", ("rural", 1) for "rural"; None for anything else."""
    kind, _, seed = spec.partition(":")
    if kind not in KINDS:
        return None
    try:
        return kind, int(seed) if seed else DEFAULT_SEED
    except ValueError:
        raise ValueError(f"--world {spec!r}: the seed after ':' must be a whole number") from None


def resolve(spec: str | Path | None) -> Path:
    """The folder a `--world` value names, generating a procedural world if needed."""
    if spec is None or str(spec) in ("", "sample"):
        return default_world_dir()
    path = Path(spec)
    if (path / "roads.geojson").exists():
        return path
    kind = parse(str(spec))
    if kind is None:
        raise ValueError(
            f"--world {spec}: not a world folder (no roads.geojson) nor a kind"
            f" ({', '.join(('sample', *KINDS))}); make a folder with `roadmesh sim world`"
        )
    out = cache_root() / f"{kind[0]}-s{kind[1]}"
    if not (out / "features.geojson").exists():
        from sim.worldgen import generate_kind

        generate_kind(kind[0], out, kind[1])
    return out


def name_of(spec: str | Path | None) -> str:
    """A short name for reports: sample, rural-s1, or the folder's name."""
    if spec is None or str(spec) in ("", "sample"):
        return "sample"
    kind = parse(str(spec))
    return f"{kind[0]}-s{kind[1]}" if kind else Path(spec).name
