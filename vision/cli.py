"""`roadmesh vision ...`: run the vision runtime on image files."""

from __future__ import annotations

import argparse
from pathlib import Path


class CommandError(Exception):
    """A fatal user error of a vision command: `roadmesh` prints it and exits with `exit_code`."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("vision", help="vision runtime on image files")
    cmds = parser.add_subparsers(dest="vision_command", metavar="ACTION", required=True)
    q = cmds.add_parser("quality", help="sharpness, exposure and obstruction scores of images")
    q.add_argument("images", type=Path, nargs="+")
    q.set_defaults(func=_quality)


def _quality(args: argparse.Namespace) -> int:
    import cv2

    from vision.quality import score

    failures = 0
    for path in args.images:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            print(f"{path}: not a readable image")
            failures += 1
            continue
        s = score(image)
        print(
            f"{path}: sharpness={s.sharpness:.1f} exposure={s.exposure:.3f} obstruction={s.obstruction:.3f}"
        )
    if failures == len(args.images):
        raise CommandError("no readable image")
    return 1 if failures else 0
