"""`roadmesh rewards ...`: deploy the contracts, close epochs, verify them, claim.

`verify`, `claim`, `activate` and `chain` need no database (they never start Django).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contracts.errors import ChainError
from rewards.errors import RewardsError
from rewards.params import TOKEN
from webapp.config import SettingsError
from webapp.payouts.config import RewardsSettings, data_dir_from_env


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("rewards", help="epochs, Merkle roots on chain, verification, claims")
    cmds = parser.add_subparsers(dest="rewards_command", metavar="ACTION", required=True)

    p = cmds.add_parser(
        "deploy", help="deploy token, distributor and registry; save the deployment"
    )
    p.add_argument("--cap", type=int, default=1_000_000_000, help="token supply cap, in tokens")
    p.add_argument(
        "--root-delay", type=int, default=0, help="seconds before a proposed root takes effect"
    )
    p.add_argument("--force", action="store_true", help="replace an existing deployment file")
    p.set_defaults(func=_deploy)

    p = cmds.add_parser(
        "close-epoch", help="score the next epoch, write its inputs, publish its root"
    )
    p.add_argument("--ends-at", help="end of the epoch, ISO 8601 UTC (default: now)")
    p.add_argument("--no-publish", action="store_true", help="score and store; leave the chain")
    p.set_defaults(func=_close_epoch)

    p = cmds.add_parser("verify", help="recompute an epoch from its published inputs (no database)")
    p.add_argument("--epoch", type=int, required=True)
    p.add_argument("--inputs", default="", help="inputs file path or URL (default: the chain's)")
    p.add_argument("--claims", default="", help="claims file path or URL (default: beside inputs)")
    _chain_args(p)
    p.set_defaults(func=_verify)

    p = cmds.add_parser("claim", help="claim a wallet's tokens with its proof (no database)")
    p.add_argument("--wallet", required=True, help="the wallet to pay (0x...)")
    p.add_argument("--claims", default="", help="claims file path or URL (default: the chain's)")
    _chain_args(p)
    p.set_defaults(func=_claim)

    p = cmds.add_parser("activate", help="make the waiting root active once its delay passed")
    _chain_args(p)
    p.set_defaults(func=_activate)

    p = cmds.add_parser("chain", help="run a local anvil node in the foreground (demo)")
    p.add_argument("--port", type=int, default=8545)
    p.add_argument("--state", type=Path, default=None, help="keep the chain in this file")
    p.set_defaults(func=_run_anvil)


def _chain_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rpc", default="", help="JSON-RPC URL (default: ROADMESH_CHAIN_RPC_URL)")
    p.add_argument(
        "--deployment", type=Path, default=None, help="deployment file (ROADMESH_CHAIN_DEPLOYMENT)"
    )


class CommandError(Exception):
    """A fatal user error of a rewards command: `roadmesh` prints it and exits with `exit_code`."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _fail(message: str) -> Exception:
    return CommandError(message)


def _settings() -> RewardsSettings:
    try:
        return RewardsSettings.from_env(data_dir_from_env())
    except SettingsError as exc:
        raise _fail(str(exc)) from None


def _connect(settings: RewardsSettings, args: argparse.Namespace | None = None) -> Any:
    from contracts.chain import Chain, Deployment

    rpc = (getattr(args, "rpc", "") if args else "") or settings.rpc_url
    path = (getattr(args, "deployment", None) if args else None) or settings.deployment_file
    try:
        return Chain.connect(
            rpc, private_key=settings.private_key, deployment=Deployment.load(path)
        )
    except ChainError as exc:
        raise _fail(str(exc)) from None


def _deploy(args: argparse.Namespace) -> int:
    from contracts.chain import Chain

    settings = _settings()
    if settings.deployment_file.exists() and not args.force:
        raise _fail(f"{settings.deployment_file} exists (a deployment); --force replaces it")
    try:
        chain = Chain.connect(settings.rpc_url, private_key=settings.private_key)
        d = chain.deploy(cap=args.cap * TOKEN, root_delay_s=args.root_delay)
    except ChainError as exc:
        raise _fail(str(exc)) from None
    d.save(settings.deployment_file)
    print(
        f"deployed on chain {d.chain_id}: token {d.token}, distributor {d.distributor}, registry {d.registry}"
    )
    print(f"root delay {args.root_delay} s; deployment saved to {settings.deployment_file}")
    return 0


def _close_epoch(args: argparse.Namespace) -> int:
    from webapp.django_setup import setup_django

    settings = _settings()
    try:
        ends_at = datetime.fromisoformat(args.ends_at) if args.ends_at else datetime.now(UTC)
    except ValueError:
        raise _fail(f"--ends-at {args.ends_at!r} is not an ISO 8601 time") from None
    if ends_at.tzinfo is None:
        ends_at = ends_at.replace(tzinfo=UTC)
    chain = None if args.no_publish else _connect(settings)
    setup_django()
    from webapp.payouts.epochs import close_epoch

    try:
        closed = close_epoch(
            ends_at=ends_at,
            epoch_days=settings.epoch_days,
            overrides=settings.param_overrides(),
            publish_dir=settings.publish_dir,
            file_uri=settings.file_uri,
            chain=chain,
        )
    except (RewardsError, ChainError, SettingsError) as exc:
        raise _fail(str(exc)) from None
    print(f"epoch {closed.epoch.number}: {closed.epoch.state}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from webapp.payouts.verify import verify_epoch

    chain = _connect(_settings(), args)
    try:
        verdict = verify_epoch(chain, args.epoch, inputs=args.inputs, claims=args.claims)
    except (RewardsError, ChainError) as exc:
        raise _fail(f"epoch {args.epoch}: {exc}") from None
    for line in verdict.lines:
        print(line)
    if verdict.ok:
        print(f"epoch {args.epoch} verified")
        return 0
    print(f"epoch {args.epoch} does NOT verify: {verdict.problems[0]}")
    return 1


def _claim(args: argparse.Namespace) -> int:
    import json

    from webapp.payouts.verify import claims_location, fetch

    chain = _connect(_settings(), args)
    try:
        if chain.activate_if_due():
            print("activated the waiting root (its delay had passed)")
        epoch = chain.active_epoch()
        if epoch == 0:
            raise _fail("no root is active on chain yet")
        location = args.claims or claims_location(chain.epoch_root(epoch).inputs_uri)
        claims = json.loads(fetch(location))
        if claims.get("epoch") != epoch:
            raise _fail(f"{location} is for epoch {claims.get('epoch')}, the active one is {epoch}")
        mine = claims["claims"].get(args.wallet.lower())
        if mine is None:
            raise _fail(f"{args.wallet} has no allocation in epoch {epoch}")
        cumulative = int(mine["cumulative_amount"])
        already = chain.claimed(args.wallet)
        if cumulative <= already:
            print(f"{args.wallet}: nothing to claim (claimed {already} of {cumulative})")
            return 0
        proof = [bytes.fromhex(h[2:]) for h in mine["proof"]]
        result = chain.claim(args.wallet, cumulative, proof)
    except (RewardsError, ChainError) as exc:
        raise _fail(str(exc)) from None
    print(
        f"{result.account}: claimed {result.paid} base units ({result.paid / TOKEN:.6f} tokens) "
        f"in epoch {epoch}, tx {result.tx}"
    )
    return 0


def _activate(args: argparse.Namespace) -> int:
    chain = _connect(_settings(), args)
    try:
        done = chain.activate_if_due()
    except ChainError as exc:
        raise _fail(str(exc)) from None
    print("activated the waiting root" if done else "no root is due")
    return 0


def _run_anvil(args: argparse.Namespace) -> int:
    from contracts.anvil import Anvil

    try:
        node = Anvil.start(args.port, state_file=args.state)
    except ChainError as exc:
        raise _fail(str(exc)) from None
    print(f"anvil (pid {node.pid}) serving {node.url}; Ctrl-C stops it", flush=True)
    try:
        return node.process.wait()
    except KeyboardInterrupt:
        node.stop()
        return 0
