"""One-click databases as data: the exact Docker Engine API bodies of a database's volume and container.

A database is one container, ``berth-db-<database id>`` (``berth_common.dbengines.container_name``), whose
name is also its private host name: on ``local`` it joins the team's network (``berth-team-<team id>``,
which the team's linked applications join), on another server that server's Berth network (where the
applications placed there run), with the name as network alias. Its data directory is the named volume
``berth-db-<database id>-data`` labelled ``berth.team``, ``berth.app`` (the database id) and
``berth.volume`` (``data``). The container's labels carry a digest of what it was made from, so a command
with another spec (image, credentials, configuration, limits, exposure, health check) makes it again,
keeping the volume. Its Docker health check (``domain.database_health``) asks the engine whether it answers,
with no credential in it, so that a hung engine shows as ``unhealthy``.

A public database publishes its port on every address of its server itself only when the allow-list
admits everyone: Docker's port publishing cannot filter by source address, and Berth does not manage the
server's firewall, so with a narrower allow-list the database publishes nothing and its TCP proxy
(``domain.database_proxy``) publishes the port, admitting only the listed addresses (the event's reason
says so).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from berth_common import dbengines
from berth_common import labels as label
from berth_common.catalogue import DatabaseSpec
from berth_common.fleet import SERVER_NETWORK
from berth_scheduler.domain.containers import LOG_CONFIG, MIB, NANO
from berth_scheduler.domain.database_health import HealthTiming, healthcheck
from berth_scheduler.domain.routing import LOCAL

VOLUME_LABEL = "berth.volume"  # the volume's name in its owner's spec
SPEC_LABEL = "berth.database-spec"  # digest of what the container was made from
DATA_VOLUME = "data"
KIND = "database"
STOP_TIMEOUT_S = 60  # an engine flushes and shuts down cleanly on SIGTERM
THROUGH_PROXY = (
    "the port is published by the database's TCP proxy, which closes every connection from an address "
    "outside the allow-list (a connection made on the server itself to its loopback address comes from "
    "the network's gateway address)"
)


@dataclass(frozen=True)
class DatabaseContainer:
    """What the scheduler makes for one database on its server."""

    name: str
    network: str
    volume: str
    volume_body: dict[str, Any]
    body: dict[str, Any]
    digest: str
    published: bool


def owner_labels(spec: DatabaseSpec) -> dict[str, str]:
    return {label.TEAM: spec.team_id, label.APP: spec.database_id, label.MANAGED: "true", label.KIND: KIND}


def network_of(spec: DatabaseSpec) -> str:
    """The team's network on ``local``; the server's Berth network elsewhere."""
    return dbengines.team_network(spec.team_id) if spec.server_id == LOCAL else SERVER_NETWORK


def digest(spec: DatabaseSpec, image: str, password: str, health: dict[str, Any] | None = None) -> str:
    """A digest of everything the container is made from (the password included, hashed with the rest)."""
    made_of = spec.model_dump(mode="python", exclude={"password"})
    text = json.dumps(
        {"spec": made_of, "image": image, "password": password, "health": health}, sort_keys=True, default=str
    )
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def container(
    spec: DatabaseSpec, image: str, password: str | None = None, health: HealthTiming | None = None
) -> DatabaseContainer:
    """The volume and container create bodies of ``spec`` (``image``: the official name after the image map;
    ``password``: the plaintext to run with, by default the spec's; ``health``: the health check's timing)."""
    engine = dbengines.engine(spec.engine)
    secret = spec.reveal() if password is None else password
    creds = dbengines.Credentials(spec.user, secret, spec.database)
    name = dbengines.container_name(spec.database_id)
    volume = dbengines.volume_name(spec.database_id)
    network = network_of(spec)
    owner = owner_labels(spec)
    check = healthcheck(spec.engine, spec.user, spec.database, health or HealthTiming())
    made = digest(spec, image, secret, check)
    key = f"{engine.port}/tcp"
    host_config: dict[str, Any] = {
        "RestartPolicy": {"Name": "unless-stopped"},
        "Init": True,
        "LogConfig": LOG_CONFIG,
        "Mounts": [{"Type": "volume", "Source": volume, "Target": engine.data_dir}],
    }
    if spec.limits.cpus is not None:
        host_config["NanoCpus"] = round(spec.limits.cpus * NANO)
    if spec.limits.memory_mb is not None:
        host_config["Memory"] = spec.limits.memory_mb * MIB
    published = spec.public is not None and spec.public.everyone
    if published and spec.public is not None:
        host_config["PortBindings"] = {key: [{"HostIp": "0.0.0.0", "HostPort": str(spec.public.port)}]}
    body: dict[str, Any] = {
        "Image": image,
        "Env": [f"{k}={v}" for k, v in dbengines.container_env(spec.engine, creds).items()],
        "Labels": {**owner, SPEC_LABEL: made},
        "ExposedPorts": {key: {}},
        "StopTimeout": STOP_TIMEOUT_S,
        "Healthcheck": check,
        "HostConfig": host_config,
        "NetworkingConfig": {"EndpointsConfig": {network: {"Aliases": [name]}}},
    }
    command = dbengines.container_command(spec.engine, creds, spec.config)
    if command:
        body["Cmd"] = command
    volume_body = {"Name": volume, "Labels": {**owner, VOLUME_LABEL: DATA_VOLUME}}
    return DatabaseContainer(name, network, volume, volume_body, body, made, published)


def never_started(info: dict[str, Any]) -> bool:
    """Whether a container (its inspect document) is one Docker did not start: never started (``created``),
    its last start failed (Docker's error), or ``dead``. Stopping such a database removes the container (its
    volume stays, the next start makes it again), so that it is not taken for a database failing to start."""
    state = info.get("State") or {}
    return state.get("Status") in ("created", "dead") or bool(state.get("Error"))


def exposure_note(spec: DatabaseSpec) -> str:
    """What the event says about a public database published through its proxy ("" otherwise)."""
    return THROUGH_PROXY if spec.public is not None and not spec.public.everyone else ""
