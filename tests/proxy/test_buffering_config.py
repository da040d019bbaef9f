"""A route that buffers requests, as pure data by exact comparison: Traefik's ``buffering`` middleware with
the service's body limit, first on every router of the route (its own, wildcard and HTTPS ones)."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from berth_common.catalogue import ApplyRoutes, RequestBuffering, TlsOptions
from berth_proxy_sync.domain.routes import MANAGED_MARKER, Route, full_config, render, render_files, route_config
from berth_proxy_sync.domain.tls import HostStates, TlsSite
from berth_proxy_sync.usecases.cert_refresh import reapplied
from berth_proxy_sync.usecases.route_command import Command

UP = "http://10.0.0.5:8080"
MIB = 1 << 20
SERVICE = {"route-app": {"loadBalancer": {"passHostHeader": True, "servers": [{"url": UP}]}}}


def buffering(max_bytes: int, mem: int) -> dict:
    return {
        "buffering": {
            "maxRequestBodyBytes": max_bytes,
            "memRequestBodyBytes": mem,
            "maxResponseBodyBytes": 0,
            "memResponseBodyBytes": MIB,
        }
    }


def test_a_buffered_route_has_the_middleware_on_its_router_with_the_services_limit():
    r = Route.create("app", ["a.example.com"], [UP], buffering=RequestBuffering(max_body_mb=25))
    assert full_config(r) == {
        "http": {
            "routers": {
                "route-app": {
                    "rule": "Host(`a.example.com`)",
                    "service": "route-app",
                    "entryPoints": ["web"],
                    "middlewares": ["route-app-buffering"],
                }
            },
            "middlewares": {"route-app-buffering": buffering(25 * MIB, MIB)},
            "services": SERVICE,
        }
    }
    assert render(r) == (
        MANAGED_MARKER + "http:\n"
        "  middlewares:\n"
        "    route-app-buffering:\n"
        "      buffering:\n"
        "        maxRequestBodyBytes: 26214400\n"
        "        maxResponseBodyBytes: 0\n"
        "        memRequestBodyBytes: 1048576\n"
        "        memResponseBodyBytes: 1048576\n"
        "  routers:\n"
        "    route-app:\n"
        "      entryPoints:\n"
        "      - web\n"
        "      middlewares:\n"
        "      - route-app-buffering\n"
        "      rule: Host(`a.example.com`)\n"
        "      service: route-app\n"
        "  services:\n"
        "    route-app:\n"
        "      loadBalancer:\n"
        "        passHostHeader: true\n"
        "        servers:\n"
        "        - url: http://10.0.0.5:8080\n"
    )
    assert render_files([r]) == {"app.yml": yaml.safe_load(render(r).split("\n", 1)[1])}


def test_a_route_without_the_option_is_as_before():
    r = Route.create("app", ["a.example.com"], [UP])
    assert r.buffering is None
    assert full_config(r) == route_config(r)
    assert "middlewares" not in full_config(r)["http"]


def test_every_router_of_the_route_buffers_before_its_own_middlewares():
    tls = TlsOptions(acme=True, redirect="always", hsts_max_age_s=60)
    r = Route.create(
        "app", ["a.example.com", "*.apps.example.com"], [UP], tls=tls, buffering=RequestBuffering(max_body_mb=1)
    )
    config = full_config(r, TlsSite(certs_dir="/c"), HostStates(acme_ok=frozenset({"a.example.com"})))
    routers = config["http"]["routers"]
    assert {name: router["middlewares"] for name, router in routers.items()} == {
        "route-app": ["route-app-buffering"],
        "route-app-wildcard": ["route-app-buffering"],
        "route-app-acme": ["route-app-buffering", "route-app-hsts"],
        "route-app-to-https": ["route-app-buffering", "route-app-to-https"],
    }
    assert config["http"]["middlewares"]["route-app-buffering"] == buffering(MIB, MIB)
    assert sorted(config["http"]["middlewares"]) == ["route-app-buffering", "route-app-hsts", "route-app-to-https"]


async def test_the_command_carries_the_option_and_proxy_sync_keeps_it_when_it_reapplies_the_route():
    msg = ApplyRoutes(
        route_id="app",
        hosts=["a.example.com"],
        upstreams=[UP],
        generation=3,
        buffer_requests=RequestBuffering(max_body_mb=2),
    )
    assert msg.model_dump(mode="json") == {
        "route_id": "app",
        "server_id": "local",
        "hosts": ["a.example.com"],
        "upstreams": [UP],
        "generation": 3,
        "entry_point": "web",
        "buffer_requests": {"max_body_mb": 2},
    }
    route = Command.of(msg, delivery=None, seq=0).route  # type: ignore[arg-type]
    assert route == Route.create(
        "app", ["a.example.com"], [UP], generation=3, buffering=RequestBuffering(max_body_mb=2)
    )
    assert route is not None and route != Route.create("app", ["a.example.com"], [UP], generation=3)
    again = reapplied("local", route, TlsOptions(acme=True), None, None)
    assert again.buffer_requests == RequestBuffering(max_body_mb=2)


@pytest.mark.parametrize("mb", [0, -1, 1025])
def test_the_limit_is_1_to_1024_mib(mb):
    with pytest.raises(ValidationError, match="max_body_mb"):
        RequestBuffering(max_body_mb=mb)
