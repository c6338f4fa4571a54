"""The `roadmesh` command: one dispatcher over each package's own subcommands.

Each package that owns commands has a `cli.py` with `register(subparsers)`, which adds
one parser (`roadmesh <name> ...`) and sets `func(args) -> int` on every leaf. Modules
are imported lazily by name so that `roadmesh edge ...` never imports Django.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# subcommand name -> module that registers it
COMMANDS: dict[str, str] = {
    "device": "roadmesh.device",
    "edge": "edge.cli",
    "broker": "webapp.cli_broker",
    "ingest": "ingest.cli",
    "web": "webapp.cli",
    "sim": "sim.cli",
    "vision": "ingest.vision_cli",  # vision.cli plus its server processes (worker, map)
    "rewards": "webapp.cli_rewards",
    "demo": "roadmesh.demo",
}


class CommandError(Exception):
    """A fatal user-facing error; `main` prints it and exits with `exit_code`.

    Each package's commands raise their own (edge.cli.CommandError ...), so no package
    imports this dispatcher: `main` treats any exception carrying an integer `exit_code`
    the same way."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="roadmesh", description=__doc__.splitlines()[0])
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, module_name in COMMANDS.items():
        # Import only the module for the command asked for (fast start, no Django on the edge).
        if wanted is not None and wanted != name:
            sub.add_parser(name, help=f"(run `roadmesh {name} -h`)")
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                sub.add_parser(name, help="(not available in this build)")
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args_list)
    args = parser.parse_args(args_list)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    func = getattr(args, "func", None)
    if func is None:
        parser.parse_args([*args_list, "-h"])
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        code = getattr(exc, "exit_code", None)
        if isinstance(code, int) and not isinstance(code, bool):
            print(f"roadmesh: error: {exc}", file=sys.stderr)
            return code
        # Database errors name what to do; anything else keeps its traceback.
        if type(exc).__module__.startswith("django.db"):
            print(
                f"roadmesh: database error: {exc} (is the schema migrated? `roadmesh web migrate`)",
                file=sys.stderr,
            )
            return 3
        raise


if __name__ == "__main__":
    # Run through the imported module, so `CommandError` is the class the commands raise.
    from roadmesh.cli import main as _main

    sys.exit(_main())
