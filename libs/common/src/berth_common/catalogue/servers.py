"""Servers and certificates: a server's Docker engine stops or starts answering; a certificate expires soon."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from pydantic import Field

from berth_common.catalogue.base import Event, Id, register

# --- servers -------------------------------------------------------------------------------------------
# Produced by the metrics service, which reads every server's Docker engine each collection; consumed by
# the notifier, and by the scheduler (unreachable and back: a server known to be unreachable is not
# contacted by deployments until it is back). A server event concerns every team with containers on that
# server: ``team_ids`` lists the teams whose containers (``berth.team`` label) ran there at the last
# reading, and the notifier delivers to each of them. One outage is one ``evt.server.unreachable`` and one ``evt.server.back`` with the same
# ``outage_id``. Times are UTC.


class ServerEvent(Event):
    """Fields every ``evt.server.*`` event has (not a message by itself)."""

    PRODUCERS: ClassVar[tuple[str, ...]] = ("metrics",)
    CONSUMERS: ClassVar[tuple[str, ...]] = ("notifier",)
    server: str = Field(min_length=1, max_length=128)  # the server's name
    server_id: str | None = None  # the server's id when Berth manages several (None: the local server)
    outage_id: Id
    team_ids: list[str] = []  # teams with containers on the server at the last reading
    down_since: datetime  # the first collection the engine did not answer
    last_seen_at: datetime | None = None  # the last collection it answered (None: never since start)
    failed_checks: int = Field(default=0, ge=0)  # collections in a row it did not answer
    reason: str = Field(default="", max_length=2000)  # what happened, in words


@register
class ServerUnreachable(ServerEvent):
    """A server's Docker engine did not answer ``failed_checks`` collections in a row (the configured number):
    its containers can no longer be watched or managed. Sent once per outage."""

    TYPE = "evt.server.unreachable"
    CONSUMERS = ("notifier", "scheduler")  # the scheduler's deployments skip the server at once
    error: str = Field(default="", max_length=500)  # the last error talking to the engine


@register
class ServerBack(ServerEvent):
    """A server whose engine was reported unreachable answers again. Sent once per outage, after its
    ``evt.server.unreachable``."""

    TYPE = "evt.server.back"
    CONSUMERS = ("notifier", "scheduler")
    back_at: datetime
    down_for_s: float = Field(default=0.0, ge=0)  # down_since to back_at


# --- certificates --------------------------------------------------------------------------------------


@register
class CertificateExpiring(Event):
    """A TLS certificate Berth serves expires within ``days_left`` days and was not renewed yet (proxy-sync
    watches the certificate each host is served with; ``berth_common.catalogue.tls`` has the other
    certificate events)."""

    TYPE = "evt.certificate.expiring"
    PRODUCERS = ("proxy-sync",)
    CONSUMERS = ("notifier", "api")
    domain: str = Field(min_length=1, max_length=253)
    domains: list[str] = []  # every name the certificate covers
    expires_at: datetime
    days_left: float
    issuer: str = ""
    team_id: str | None = None
    project_id: str | None = None
    application_id: str | None = None
    server_id: str = "local"  # the server whose Traefik serves it
    reason: str = Field(default="", max_length=2000)  # why it was not renewed, when known
