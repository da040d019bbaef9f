"""A web service's path prefix travels on its route's ``cmd.route.apply`` (and only its route's), with or
without the application's HTTPS; compared exactly, as the JSON sent on the bus."""

from __future__ import annotations

from berth_common.catalogue import ApplicationSpec, TlsOptions
from berth_scheduler.domain import names
from berth_scheduler.domain.route_tls import RouteTls, of_spec
from berth_scheduler.domain.routing import RouteOp
from berth_scheduler.usecases.rollout.routing import command_for

TEAM = "a" * 32
APP = "b" * 32
API, SITE = names.route_id(APP, "api"), names.route_id(APP, "site")
HOST = "shop.example.com"


def _spec(**extra) -> ApplicationSpec:
    web = {"kind": "web", "port": 8080, "hosts": [HOST]}
    return ApplicationSpec.model_validate(
        {
            "name": "shop",
            "source": {"kind": "image", "image": "busybox:1.36"},
            "services": [{**web, "name": "api", "path_prefix": "/api"}, {**web, "name": "site"}],
            **extra,
        }
    )


def _apply(route_id: str, route_tls: RouteTls | None, server_id: str = "local") -> dict:
    op = RouteOp("apply", route_id, (HOST,), ("http://10.0.0.5:8080",), server_id)
    return command_for(op, 2, route_tls).model_dump(mode="json")


def test_only_the_path_services_route_carries_its_path():
    route_tls = of_spec(_spec(), TEAM, APP)
    assert route_tls == RouteTls(TlsOptions(), TEAM, APP, {}, {API: "/api"})
    common = {"hosts": [HOST], "upstreams": ["http://10.0.0.5:8080"], "generation": 2, "entry_point": "web"}
    assert _apply(API, route_tls) == {"route_id": API, "server_id": "local", **common, "path_prefix": "/api"}
    assert _apply(SITE, route_tls) == {"route_id": SITE, "server_id": "local", **common}
    # on another server alike
    assert _apply(API, route_tls, "srv-1")["path_prefix"] == "/api"


def test_the_path_travels_with_https_too():
    tls = TlsOptions(acme=True)
    command = _apply(API, of_spec(_spec(tls=tls), TEAM, APP))
    assert command["path_prefix"] == "/api" and command["tls"] == tls.model_dump(mode="json")
    assert (command["team_id"], command["application_id"]) == (TEAM, APP)
    assert "path_prefix" not in _apply(SITE, of_spec(_spec(tls=tls), TEAM, APP))


def test_a_spec_without_paths_sends_its_routes_as_before():
    spec = _spec()
    plain = ApplicationSpec.model_validate(
        {**spec.model_dump(), "services": [{**s.model_dump(), "path_prefix": None} for s in spec.services]}
    )
    assert of_spec(plain, TEAM, APP) is None
