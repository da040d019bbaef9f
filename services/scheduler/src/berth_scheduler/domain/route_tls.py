"""HTTPS of a route: what of an application's TLS options goes into the ``cmd.route.apply`` of one of its
routes (pure).

A route carries the application's options (``ApplicationSpec.tls``) with only the uploaded certificates
that serve one of the route's hosts, each narrowed to those hosts, and the route's owner (team and
application), which proxy-sync names in the certificate events it sends. An application without HTTPS
(the default options) sends its routes as before: HTTP only, no owner.

A web service with ``buffer_requests`` has its route carry that option too (Traefik reads each request's
whole body before forwarding it), whether or not the application has HTTPS; and so does one with a
``path_prefix`` (only the requests under it reach the service, on every one of its hosts): every apply of
the route carries it, at each rollout step, scaling, restore and on every server; so does the route of each
more routed port of the service (``port_routes``), under that port's own path when it has one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from berth_common.catalogue import ApplicationSpec, ApplyRoutes, RequestBuffering, TlsOptions, WebService
from berth_scheduler.domain import port_routes
from berth_scheduler.domain.routing import RouteOp


@dataclass(frozen=True)
class RouteTls:
    """The HTTPS of an application's routes: its options and its owner; and the request buffering of its
    routes, by route id (``buffering``: only the routes of services that ask for it), and their path prefixes
    (``paths``: only the routes of services that have one)."""

    tls: TlsOptions
    team_id: str
    application_id: str
    buffering: Mapping[str, RequestBuffering] = field(default_factory=dict)
    paths: Mapping[str, str] = field(default_factory=dict)


def of_spec(spec: ApplicationSpec, team_id: str, application_id: str) -> RouteTls | None:
    """The application's route HTTPS, request buffering and path prefixes (None: its spec asks for none)."""
    web = [s for s in spec.services if isinstance(s, WebService)]
    buffering = {
        rid: s.buffer_requests
        for s in web
        if s.buffer_requests is not None
        for rid in port_routes.route_ids(application_id, s)
    }
    paths = {rid: path for s in web for rid, path in port_routes.route_paths(application_id, s).items()}
    if spec.tls == TlsOptions() and not buffering and not paths:
        return None
    return RouteTls(spec.tls, team_id, application_id, buffering, paths)


def for_hosts(tls: TlsOptions, hosts: Iterable[str]) -> TlsOptions:
    """``tls`` with only the certificates serving one of ``hosts``, each narrowed to them."""
    return tls.for_hosts(hosts)


def apply_routes(op: RouteOp, generation: int, route_tls: RouteTls | None = None) -> ApplyRoutes:
    """The ``cmd.route.apply`` of an ``apply`` op, with the route's HTTPS when the application has one."""
    route = ApplyRoutes(
        route_id=op.route_id,
        hosts=list(op.hosts),
        upstreams=list(op.upstreams),
        generation=generation,
        server_id=op.server_id,
    )
    if route_tls is None:
        return route
    if (buffering := route_tls.buffering.get(op.route_id)) is not None:
        route = route.model_copy(update={"buffer_requests": buffering})
    if (path := route_tls.paths.get(op.route_id)) is not None:
        route = route.model_copy(update={"path_prefix": path})
    if route_tls.tls == TlsOptions():
        return route
    return route.model_copy(
        update={
            "tls": for_hosts(route_tls.tls, op.hosts),
            "team_id": route_tls.team_id,
            "application_id": route_tls.application_id,
        }
    )
