"""H3 cell arithmetic the scoring needs, vectorised: parents by bit operations, and regions
rasterised to cells once per parameter set."""

from __future__ import annotations

from functools import cache

import h3
import h3.api.basic_int as h3i
import numpy as np

from rewards.params import Region

_RES_SHIFT = 52
_RES_MASK = np.uint64(0xF) << np.uint64(_RES_SHIFT)


def parents(cells: np.ndarray, resolution: int) -> np.ndarray:
    """The ancestor at `resolution` of each H3 cell (int64 ids of resolution >= `resolution`),
    as `h3.cell_to_parent` gives it: the resolution field set, the finer digits set to 7."""
    u = cells.astype(np.int64).view(np.uint64)
    digits = 0
    for r in range(resolution + 1, 16):
        digits |= 7 << ((15 - r) * 3)
    out = (u & ~_RES_MASK) | (np.uint64(resolution) << np.uint64(_RES_SHIFT)) | np.uint64(digits)
    return out.view(np.int64)


@cache
def region_cells(regions: tuple[Region, ...], resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted cell ids at `resolution` whose centre lies in a region, and each cell's weight
    (the largest of the regions holding it)."""
    weight: dict[int, float] = {}
    for region in regions:
        ring = [(lat, lon) for lon, lat in region.polygon]
        for cell in h3i.h3shape_to_cells(h3.LatLngPoly(ring), resolution):
            weight[cell] = max(weight.get(cell, 0.0), region.weight)
    ids = np.array(sorted(weight), dtype=np.int64)
    return ids, np.array([weight[int(c)] for c in ids], dtype=np.float64)


def lookup(
    keys: np.ndarray, table_keys: np.ndarray, table_values: np.ndarray, default: float
) -> np.ndarray:
    """table_values at each key (table_keys sorted ascending), `default` where absent."""
    out = np.full(len(keys), default, dtype=np.float64)
    if len(table_keys) == 0 or len(keys) == 0:
        return out
    pos = np.searchsorted(table_keys, keys)
    pos_c = np.minimum(pos, len(table_keys) - 1)
    hit = table_keys[pos_c] == keys
    out[hit] = table_values[pos_c[hit]]
    return out
