"""Rasterise the traffic-sign pictograms the simulator uses from the npm package
`mapillary_sprite_source` (MIT, (c) 2015 mapillary) into sim/assets/signs/*.png.

    npm pack mapillary_sprite_source@1.8.0 && tar xzf mapillary_sprite_source-1.8.0.tgz
    .venv/bin/pip install cairosvg && .venv/bin/python scripts/sign_sprites.py package/bundle

The PNGs are committed, so neither npm nor cairosvg is needed to render or test.
"""

from __future__ import annotations

import sys
from pathlib import Path

SPRITES = {
    "stop": "regulatory--stop--g1.svg",
    "yield": "regulatory--yield--g1.svg",
    "no_entry": "regulatory--no-entry--g1.svg",
    "speed_limit_30": "regulatory--maximum-speed-limit-30--g1.svg",
    "speed_limit_40": "regulatory--maximum-speed-limit-40--g1.svg",
    "speed_limit_50": "regulatory--maximum-speed-limit-50--g1.svg",
    "speed_limit_60": "regulatory--maximum-speed-limit-60--g1.svg",
    "pedestrian_crossing": "information--pedestrians-crossing--g1.svg",
}
OUT = Path(__file__).resolve().parents[1] / "sim" / "assets" / "signs"


def main(bundle: Path) -> int:
    import cairosvg

    OUT.mkdir(parents=True, exist_ok=True)
    for cls, name in SPRITES.items():
        cairosvg.svg2png(
            url=str(bundle / name),
            write_to=str(OUT / f"{cls}.png"),
            output_width=256,
            output_height=256,
        )
        print(f"{name} -> {OUT / f'{cls}.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
