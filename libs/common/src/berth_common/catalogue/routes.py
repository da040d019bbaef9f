"""Routes: the scheduler asks proxy-sync to set a route's upstreams; events once Traefik confirms."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from berth_common.catalogue.base import Command, Event, Id, register
from berth_common.values import HostName

# --- routes ----------------------------------------------------------------------------------------


@register
class ApplyRoutes(Command):
    """Set the full upstream list of one route: every host goes to the load-balanced upstreams.

    Answered by ``evt.route.applied`` once Traefik's API shows the change live, or ``evt.route.failed``.
    ``generation`` orders commands for one route: one older than the route's current generation is refused
    as stale, so a late redelivery never overwrites a newer state. Route ids: lowercase letters, digits,
    ``-`` and ``_``; hosts: RFC 1123 names; upstreams: ``http(s)://host:port``.
    """

    TYPE = "cmd.route.apply"
    PRODUCERS = ("scheduler",)
    CONSUMERS = ("proxy-sync",)
    CONSUMER_CHECKS_VALUES = True  # a bad host is answered with evt.route.failed
    route_id: str = Id
    hosts: list[HostName] = Field(min_length=1, max_length=100)
    upstreams: list[str] = Field(min_length=1, max_length=256)
    generation: int = Field(default=0, ge=0)
    entry_point: str = Field(default="web", min_length=1, max_length=32)


@register
class RemoveRoute(Command):
    """Stop routing a route's hosts; answered by ``evt.route.removed`` once Traefik no longer has it."""

    TYPE = "cmd.route.remove"
    PRODUCERS = ("scheduler",)
    CONSUMERS = ("proxy-sync",)
    route_id: str = Id
    generation: int = Field(default=0, ge=0)


@register
class RoutesApplied(Event):
    """Traefik's API shows the route's hosts going to exactly ``upstreams`` (``live_ms`` after the write)."""

    TYPE = "evt.route.applied"
    PRODUCERS = ("proxy-sync",)
    CONSUMERS = ("scheduler",)
    route_id: str
    generation: int = 0
    hosts: list[str] = []
    upstreams: list[str] = []
    live: bool = True
    live_ms: float = 0.0


@register
class RouteRemoved(Event):
    """Traefik's API no longer has the route's router or service."""

    TYPE = "evt.route.removed"
    PRODUCERS = ("proxy-sync",)
    CONSUMERS = ("scheduler",)
    route_id: str
    generation: int = 0
    live_ms: float = 0.0


@register
class RouteFailed(Event):
    """The route is as it was before the command (invalid input, a stale generation, or not confirmed live)."""

    TYPE = "evt.route.failed"
    PRODUCERS = ("proxy-sync",)
    CONSUMERS = ("scheduler",)
    route_id: str
    generation: int = 0
    operation: Literal["apply", "remove"]
    reason: str = Field(max_length=4000)
