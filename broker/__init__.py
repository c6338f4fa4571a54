"""The embedded MQTT broker: a room of its own.

Mosquitto with the dynamic-security plugin: every device has its own login, bound to
its own client id, with a role that lets it publish only under `devices/<id>/` and
subscribe only to its own `config` and `receipts`; the ingest and admin logins are
services (names with "_", which device ids cannot hold). One seam, `BrokerLogins`, is
what provisioning, the demo and the tests use to add and remove device logins; the
supervised process is `Broker`. Standard library and paho-mqtt only: no Django.
"""

from broker.config import BrokerConfig, BrokerError, check_traversable, free_port, wait_for_port
from broker.logins import BrokerLogins, EmbeddedBrokerLogins, ServiceLogins, init_broker
from broker.passwords import check_password, hash_password, new_password
from broker.process import Broker, mosquitto_binary
from broker.roles import ADMIN_USER, INGEST_USER, is_service_user

__all__ = [
    "ADMIN_USER",
    "INGEST_USER",
    "Broker",
    "BrokerConfig",
    "BrokerError",
    "BrokerLogins",
    "EmbeddedBrokerLogins",
    "ServiceLogins",
    "check_password",
    "check_traversable",
    "free_port",
    "hash_password",
    "init_broker",
    "is_service_user",
    "mosquitto_binary",
    "new_password",
    "wait_for_port",
]
