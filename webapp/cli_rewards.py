"""`roadmesh rewards ...`: epoch scoring over the stored frames (first piece: coverage)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

from webapp.django_setup import setup_django


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("rewards", help="score contributors (coverage so far)")
    cmds = parser.add_subparsers(dest="rewards_command", metavar="ACTION", required=True)
    cov = cmds.add_parser("coverage", help="distinct H3 res-12 cells per owner, freshness-weighted")
    cov.add_argument(
        "--days", type=float, default=30.0, help="frames captured in the last N days (default 30)"
    )
    cov.add_argument(
        "--half-life", type=float, default=30.0, help="freshness half-life in days (default 30)"
    )
    cov.set_defaults(func=_coverage)


def _coverage(args: argparse.Namespace) -> int:
    setup_django()
    from rewards.coverage import Observation, coverage
    from webapp.fleet.models import Frame

    now = datetime.now(UTC)
    rows = (
        Frame.objects.filter(captured_at__gte=now - timedelta(days=args.days))
        .exclude(state=Frame.State.FLAGGED)  # accepted, and processed by vision
        .values_list("device__owner__username", "h3_r12", "captured_at")
        .iterator()
    )
    scores = coverage(
        (Observation(o, c, t) for o, c, t in rows), now=now, half_life_days=args.half_life
    )
    print(f"{'owner':<24} {'cells':>8} {'fresh cells':>12}")
    for s in scores:
        print(f"{s.contributor:<24} {s.cells:>8} {s.fresh_cells:>12.2f}")
    print(f"{len(scores)} contributors; flagged frames excluded")
    return 0
