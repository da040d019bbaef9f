"""A web service's request buffering travels on its route's ``cmd.route.apply`` (and only its route's),
with or without the application's HTTPS; compared exactly, as the JSON sent on the bus."""

from __future__ import annotations

from berth_common.catalogue import ApplicationSpec, RequestBuffering, TlsOptions
from berth_scheduler.domain import names
from berth_scheduler.domain.route_tls import RouteTls, of_spec
from berth_scheduler.domain.routing import RouteOp
from berth_scheduler.usecases.rollout.routing import command_for

TEAM = "a" * 32
APP = "b" * 32
CGI, SITE = names.route_id(APP, "cgi"), names.route_id(APP, "site")


def _spec(**extra) -> ApplicationSpec:
    web = {"kind": "web", "port": 8080}
    return ApplicationSpec.model_validate(
        {
            "name": "shop",
            "source": {"kind": "image", "image": "busybox:1.36"},
            "services": [
                {**web, "name": "cgi", "hosts": ["cgi.example.com"], "buffer_requests": {"max_body_mb": 5}},
                {**web, "name": "site", "hosts": ["site.example.com"]},
            ],
            **extra,
        }
    )


def _apply(route_id: str, host: str, route_tls: RouteTls | None) -> dict:
    op = RouteOp("apply", route_id, (host,), ("http://10.0.0.5:8080",))
    return command_for(op, 2, route_tls).model_dump(mode="json")


def test_only_the_buffered_services_route_carries_the_option():
    route_tls = of_spec(_spec(), TEAM, APP)
    assert route_tls == RouteTls(TlsOptions(), TEAM, APP, {CGI: RequestBuffering(max_body_mb=5)})
    common = {"server_id": "local", "upstreams": ["http://10.0.0.5:8080"], "generation": 2, "entry_point": "web"}
    assert _apply(CGI, "cgi.example.com", route_tls) == {
        "route_id": CGI,
        "hosts": ["cgi.example.com"],
        **common,
        "buffer_requests": {"max_body_mb": 5},
    }
    # no HTTPS: the route carries no TLS options and no owner, as before
    assert _apply(SITE, "site.example.com", route_tls) == {"route_id": SITE, "hosts": ["site.example.com"], **common}


def test_the_option_travels_with_https_too():
    tls = TlsOptions(acme=True)
    command = _apply(CGI, "cgi.example.com", of_spec(_spec(tls=tls), TEAM, APP))
    assert command["buffer_requests"] == {"max_body_mb": 5}
    assert command["tls"] == tls.model_dump(mode="json")
    assert (command["team_id"], command["application_id"]) == (TEAM, APP)
    assert "buffer_requests" not in _apply(SITE, "site.example.com", of_spec(_spec(tls=tls), TEAM, APP))


def test_a_spec_without_https_nor_buffering_sends_its_routes_as_before():
    spec = _spec().model_copy(
        update={"services": [s.model_copy(update={"buffer_requests": None}) for s in _spec().services]}
    )
    assert of_spec(spec, TEAM, APP) is None
