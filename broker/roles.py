"""Who may do what on the broker: the dynamic-security document (clients, roles, ACLs).

The plugin in Mosquitto 2.0 has no `%u` substitution in ACL topics, so each device gets
a role of its own (`device:<id>`) naming its own topics. With the default access set to
deny, a device can publish only its frames, telemetry and status, subscribe only to its
own `config` and `receipts`, and receive nothing else; its login is bound to its own
client id, so it can neither take over another session nor join the ingest workers'
shared subscription. Service logins contain "_" (device ids cannot) and are not bound
to a client id: ingest workers share one login under many client ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import protocol
from broker.passwords import PasswordHash

INGEST_USER = "svc_ingest"
ADMIN_USER = "svc_admin"  # the dynamic-security control API (add and remove device logins)
CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
CONTROL_RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"
INGEST_ROLE = "ingest"
ADMIN_ROLE = "admin"
DEVICE_ROLE_PREFIX = "device:"

DEFAULT_ACL_ACCESS = {
    "publishClientSend": False,
    "publishClientReceive": False,
    "subscribe": False,
    "unsubscribe": True,
}


def is_service_user(username: str) -> bool:
    """Server-side logins (svc_ingest ...) contain "_"; device ids never do."""
    return "_" in username


def device_role_name(device_id: str) -> str:
    return DEVICE_ROLE_PREFIX + device_id


def _acl(kind: str, topic: str) -> dict[str, Any]:
    return {"acltype": kind, "topic": topic, "priority": 0, "allow": True}


def device_role(device_id: str) -> dict[str, Any]:
    """Publish under its own id; subscribe to and receive its own config and receipts."""
    acls = [
        _acl("publishClientSend", protocol.topic_for(device_id, ch))
        for ch in protocol.topics.DEVICE_TO_SERVER
    ]
    for ch in protocol.topics.SERVER_TO_DEVICE:
        topic = protocol.topic_for(device_id, ch)
        acls += [_acl("subscribeLiteral", topic), _acl("publishClientReceive", topic)]
    return {"rolename": device_role_name(device_id), "acls": acls}


def device_client(device_id: str, password_hash: str) -> dict[str, Any]:
    if not protocol.is_valid_device_id(device_id):
        raise ValueError(f"{device_id!r} is not a device id")
    return {
        "username": device_id,
        "clientid": device_id,  # the login only works with its own client id
        "roles": [{"rolename": device_role_name(device_id), "priority": 0}],
        **PasswordHash.parse(password_hash).dynsec_fields(),
    }


def service_roles() -> list[dict[str, Any]]:
    root = protocol.topics.TOPIC_ROOT
    ingest = []
    for ch in protocol.topics.DEVICE_TO_SERVER:
        ingest += [
            _acl("subscribePattern", f"$share/+/{root}/+/{ch}"),  # the workers' shared subscription
            _acl("subscribePattern", f"{root}/+/{ch}"),  # ROADMESH_INGEST_GROUP=none
            _acl("publishClientReceive", f"{root}/+/{ch}"),
        ]
    ingest += [
        _acl("publishClientSend", f"{root}/+/{ch}") for ch in protocol.topics.SERVER_TO_DEVICE
    ]
    admin = [
        _acl("publishClientSend", CONTROL_TOPIC),
        _acl("subscribeLiteral", CONTROL_RESPONSE_TOPIC),
        _acl("publishClientReceive", CONTROL_RESPONSE_TOPIC),
    ]
    return [{"rolename": INGEST_ROLE, "acls": ingest}, {"rolename": ADMIN_ROLE, "acls": admin}]


SERVICE_ROLES = {INGEST_USER: INGEST_ROLE, ADMIN_USER: ADMIN_ROLE}


def service_client(username: str, password_hash: str) -> dict[str, Any]:
    role = SERVICE_ROLES.get(username)
    if role is None:
        raise ValueError(f"{username!r} is not a known service login")
    return {
        "username": username,
        "roles": [{"rolename": role, "priority": 0}],
        **PasswordHash.parse(password_hash).dynsec_fields(),
    }


def document(devices: Mapping[str, str], services: Mapping[str, str]) -> dict[str, Any]:
    """The plugin's whole JSON state: `devices` and `services` map a login to its $7$ hash."""
    ids = sorted(devices)
    return {
        "defaultACLAccess": dict(DEFAULT_ACL_ACCESS),
        "clients": [service_client(u, services[u]) for u in sorted(services)]
        + [device_client(d, devices[d]) for d in ids],
        "groups": [],
        "roles": service_roles() + [device_role(d) for d in ids],
    }


def create_device_commands(device_id: str, password: str) -> list[dict[str, Any]]:
    """Control-API commands that add a device login to a running broker (the plugin hashes)."""
    return [
        {"command": "createRole", **device_role(device_id)},
        {
            "command": "createClient",
            "username": device_id,
            "password": password,
            "clientid": device_id,
            "roles": [{"rolename": device_role_name(device_id), "priority": 0}],
        },
    ]


def delete_device_commands(device_id: str) -> list[dict[str, Any]]:
    """Remove a device login; the plugin disconnects a session of it that is online."""
    return [
        {"command": "deleteClient", "username": device_id},
        {"command": "deleteRole", "rolename": device_role_name(device_id)},
    ]
