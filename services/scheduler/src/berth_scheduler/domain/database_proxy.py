"""A public database whose allow-list does not admit everyone, as data: the TCP proxy that publishes it.

Docker's port publishing cannot filter by source address and Berth manages no firewall on a server, so such
a database publishes nothing itself: a proxy container, ``berth-db-<database id>-proxy``, of Berth's own
Traefik image publishes the public port on every address of the server and forwards each connection whose
client address is in the allow-list to the database's private host name and port on its network
(``berth_common.traefik_tcp``: one TCP entry point, a ``HostSNI(`*`)`` router behind the ``ipAllowList``
middleware). A connection from any other address is closed before a byte reaches the database.

Traefik sees the client's own address: a published port reaches the container through destination NAT,
which keeps the source address. A connection made on the server itself to its loopback address goes through
Docker's userland proxy instead and arrives from the network's gateway address, so it counts as that
address. The proxy carries ``berth.team`` and ``berth.kind`` ``database-proxy`` but not ``berth.app``:
the database's metrics and alerts are its own container's. Its labels carry a digest of what it was made
from (allow-list, port, target, image), so a changed exposure makes it again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from berth_common import dbengines, traefik_tcp
from berth_common import labels as label
from berth_common.catalogue import DatabaseSpec
from berth_scheduler.domain import databases as db
from berth_scheduler.domain.containers import LOG_CONFIG

KIND = "database-proxy"
DATABASE_LABEL = "berth.database"  # the database a proxy publishes
STOP_TIMEOUT_S = 10


@dataclass(frozen=True)
class ProxyContainer:
    """What the scheduler makes for a database published through a proxy."""

    name: str
    body: dict[str, Any]
    file_path: str  # where the dynamic configuration goes in the container
    file: bytes
    digest: str


def name(database_id: str) -> str:
    return f"{dbengines.container_name(database_id)}-proxy"


def needed(spec: DatabaseSpec) -> bool:
    """Whether the database is published through a proxy: public, and not for everyone."""
    return spec.public is not None and not spec.public.everyone


def upstream(spec: DatabaseSpec) -> str:
    """The database's private host name and port on its network."""
    return f"{dbengines.container_name(spec.database_id)}:{dbengines.engine(spec.engine).port}"


def ready_check(spec: DatabaseSpec) -> list[str]:
    """What the scheduler runs in the proxy's container until it passes: Traefik answers its ping, so the
    public port listens (``berth_common.traefik_tcp.ready_check``)."""
    assert spec.public is not None
    return traefik_tcp.ready_check(spec.public.port)


def container(spec: DatabaseSpec, image: str) -> ProxyContainer:
    """The create body and configuration file of ``spec``'s proxy (``image``: Berth's Traefik image)."""
    assert spec.public is not None
    port = spec.public.port
    file = traefik_tcp.dynamic_file(spec.public.allow, upstream(spec))
    network = db.network_of(spec)
    key = f"{port}/tcp"
    labels = {
        label.TEAM: spec.team_id,
        label.MANAGED: "true",
        label.KIND: KIND,
        DATABASE_LABEL: spec.database_id,
    }
    body: dict[str, Any] = {
        "Image": image,
        "Cmd": traefik_tcp.arguments(port),
        "Labels": labels,
        "ExposedPorts": {key: {}},
        "StopTimeout": STOP_TIMEOUT_S,
        "HostConfig": {
            "RestartPolicy": {"Name": "unless-stopped"},
            "LogConfig": LOG_CONFIG,
            "PortBindings": {key: [{"HostIp": "0.0.0.0", "HostPort": str(port)}]},
        },
        "NetworkingConfig": {"EndpointsConfig": {network: {}}},
    }
    made = json.dumps({"body": body, "file": file.decode()}, sort_keys=True)
    digest = hashlib.sha256(made.encode()).hexdigest()[:32]
    body["Labels"] = {**labels, db.SPEC_LABEL: digest}
    return ProxyContainer(name(spec.database_id), body, traefik_tcp.FILE, file, digest)
