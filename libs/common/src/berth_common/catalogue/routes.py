"""Routes: the scheduler asks proxy-sync to set a route's upstreams; events once Traefik confirms."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from berth_common.catalogue.base import Command, Event, Id, register
from berth_common.catalogue.buffering import RequestBuffering
from berth_common.catalogue.tls import TlsOptions
from berth_common.values import RouteHost, RoutePath

# --- routes ----------------------------------------------------------------------------------------


class RouteCommand(Command):
    """Fields every ``cmd.route.*`` command has (not a message by itself): the route it changes."""

    PRODUCERS = ("scheduler",)
    CONSUMERS = ("proxy-sync",)
    route_id: Id
    # the server whose Traefik serves the route (``local``: the control plane's own); a route id names one
    # route on one server
    server_id: Id = "local"


class RouteEvent(Event):
    """Fields every ``evt.route.*`` event has (not a message by itself): the route and the command's
    ``generation``."""

    PRODUCERS = ("proxy-sync",)
    CONSUMERS = ("scheduler",)
    route_id: str
    generation: int = 0
    server_id: str = "local"


@register
class ApplyRoutes(RouteCommand):
    """Set the full upstream list of one route: every host goes to the load-balanced upstreams.

    Answered by ``evt.route.applied`` once Traefik's API shows the change live, or ``evt.route.failed``.
    ``generation`` orders commands for one route: one older than the route's current generation is refused
    as stale, so a late redelivery never overwrites a newer state. Route ids: lowercase letters, digits,
    ``-`` and ``_``; hosts: RFC 1123 names; upstreams: ``http(s)://host:port``. Routes of one
    application's services may share a host when their ``path_prefix`` differ (a host is claimed per
    path); the api gives a host to one application.
    """

    TYPE = "cmd.route.apply"
    CONSUMER_CHECKS_VALUES = True  # a bad host is answered with evt.route.failed
    hosts: list[RouteHost] = Field(min_length=1, max_length=100)
    upstreams: list[str] = Field(min_length=1, max_length=256)
    generation: int = Field(default=0, ge=0)
    entry_point: str = Field(default="web", min_length=1, max_length=32)
    # HTTPS for the hosts (None: HTTP only); the route's owner names the certificate events it causes
    tls: TlsOptions | None = Field(default=None, exclude_if=lambda v: v is None)
    team_id: str | None = Field(default=None, exclude_if=lambda v: v is None)
    application_id: str | None = Field(default=None, exclude_if=lambda v: v is None)
    # Traefik reads each request's whole body before forwarding it (``catalogue/buffering.py``); None: not
    buffer_requests: RequestBuffering | None = Field(default=None, exclude_if=lambda v: v is None)
    # only requests whose path starts with it (``/api``: ``/api``, ``/api/x``, also ``/apix``), passed on
    # unchanged (the prefix is not stripped); it wins over a shorter prefix of the same host, and over the
    # host's whole-host route. None: the whole hosts
    path_prefix: RoutePath | None = Field(default=None, exclude_if=lambda v: v is None)


@register
class RemoveRoute(RouteCommand):
    """Stop routing a route's hosts; answered by ``evt.route.removed`` once Traefik no longer has it."""

    TYPE = "cmd.route.remove"
    generation: int = Field(default=0, ge=0)


@register
class RoutesApplied(RouteEvent):
    """Traefik's API shows the route's hosts going to exactly ``upstreams`` (``live_ms`` after the write)."""

    TYPE = "evt.route.applied"
    hosts: list[str] = []
    upstreams: list[str] = []
    live: bool = True
    live_ms: float = 0.0


@register
class RouteRemoved(RouteEvent):
    """Traefik's API no longer has the route's router or service."""

    TYPE = "evt.route.removed"
    live_ms: float = 0.0


@register
class RouteFailed(RouteEvent):
    """The route is as it was before the command (invalid input, a stale generation, or not confirmed live)."""

    TYPE = "evt.route.failed"
    operation: Literal["apply", "remove"]
    reason: str = Field(max_length=4000)
