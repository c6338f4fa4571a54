"""`roadmesh device ...`: operator commands to provision and revoke devices on this machine.

Provisioning creates the device's key where the device will read it (mode 0600),
registers the public key with its owner in the database, adds its login to the embedded
broker (`--broker-dir`, or ROADMESH_BROKER_DIR), and writes device.json with the login
and the server's public key (it signs the receipts).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from roadmesh.cli import CommandError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("device", help="provision, list and revoke devices (operator)")
    cmds = parser.add_subparsers(dest="device_command", metavar="ACTION", required=True)
    prov = cmds.add_parser("provision", help="create a device key and register the device")
    prov.add_argument("--owner", required=True, help="username of the owner (a driver)")
    prov.add_argument(
        "--create-owner", action="store_true", help="create the owner as a driver if missing"
    )
    prov.add_argument("--wallet", default="", help="the created owner's wallet address (0x...)")
    prov.add_argument("--device-id", help="device id (default: dev-<random>)")
    prov.add_argument(
        "--out", type=Path, required=True, help="device directory to write key and login into"
    )
    prov.add_argument("--mqtt-host", default="127.0.0.1")
    prov.add_argument("--mqtt-port", type=int, default=1883)
    prov.add_argument(
        "--broker-dir",
        type=Path,
        help="embedded broker run dir: add the login there (default ROADMESH_BROKER_DIR)",
    )
    prov.set_defaults(func=_provision)
    lst = cmds.add_parser("list", help="list devices")
    lst.set_defaults(func=_list)
    rev = cmds.add_parser("revoke", help="revoke a device: its frames and login are refused")
    rev.add_argument("device_id")
    rev.add_argument("--broker-dir", type=Path)
    rev.set_defaults(func=_revoke)


def _provision(args: argparse.Namespace) -> int:
    from webapp.django_setup import setup_django

    setup_django()
    from django.conf import settings

    import protocol
    from broker import BrokerError
    from edge.identity import DeviceIdentity, MqttLogin, create_key
    from webapp import serverkey
    from webapp.accounts.models import User
    from webapp.fleet.provisioning import ProvisioningError, new_device_id, register_device

    owner = User.objects.filter(username=args.owner).first()
    if owner is None:
        if not args.create_owner:
            raise CommandError(
                f"no user {args.owner!r} (use --create-owner to create a driver account)"
            )
        from webapp.accounts.models import validate_wallet

        try:
            validate_wallet(args.wallet)
        except Exception as exc:
            raise CommandError(f"--wallet: {exc}") from None
        owner = User.objects.create_user(
            username=args.owner, role=User.Role.DRIVER, wallet_address=args.wallet
        )
    device_id = args.device_id or new_device_id()
    if not protocol.is_valid_device_id(device_id):
        raise CommandError(f"device id {device_id!r} must match {protocol.DEVICE_ID_PATTERN}")
    try:
        key = create_key(args.out)
    except FileExistsError:
        raise CommandError(f"{args.out} already holds a device key; use another --out") from None
    try:
        logins = _logins(args.broker_dir)
        _device, password = register_device(
            owner, device_id, protocol.public_key_bytes(key), logins
        )
    except (ProvisioningError, BrokerError) as exc:
        raise CommandError(str(exc)) from None
    DeviceIdentity(
        device_id=device_id,
        mqtt=MqttLogin(
            host=args.mqtt_host, port=args.mqtt_port, username=device_id, password=password
        ),
        server_public_key=serverkey.public_key_hex(settings.SERVER.server_key_file),
    ).save(args.out)
    where = "the broker" if logins is not None else "no embedded broker: add the login yourself"
    print(
        f"provisioned {device_id} for {owner.username}: key {args.out / 'device.key'} (0600),"
        f" login in {where}"
    )
    return 0


def _logins(broker_dir: Path | None):  # type: ignore[no-untyped-def]
    """The embedded broker's logins: --broker-dir, else ROADMESH_BROKER_DIR, else None."""
    from django.conf import settings

    from broker import BrokerConfig, EmbeddedBrokerLogins
    from webapp.fleet.provisioning import broker_logins

    if broker_dir is not None:
        return EmbeddedBrokerLogins(BrokerConfig.load(broker_dir))
    return broker_logins(settings.SERVER)


def _list(args: argparse.Namespace) -> int:
    from webapp.django_setup import setup_django

    setup_django()
    from webapp.fleet.models import Device

    for d in Device.objects.select_related("owner").order_by("device_id"):
        print(f"{d.device_id}\t{d.owner.username}\t{d.status}\tlast seen {d.last_seen_at or '-'}")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    from webapp.django_setup import setup_django

    setup_django()
    from broker import BrokerError
    from webapp.fleet.provisioning import ProvisioningError, revoke_device

    try:
        revoke_device(args.device_id, _logins(args.broker_dir))
    except (ProvisioningError, BrokerError) as exc:
        raise CommandError(str(exc)) from None
    print(f"revoked {args.device_id}")
    return 0
