"""Routes with a path prefix: the Traefik configuration by exact comparison (the host rule narrowed by
``PathPrefix``, a priority over the host's whole-host route, a longer prefix first; HTTPS routers under
the path, redirects whole-host), the checks, and through proxy-sync and a real Traefik: one host, three
routes by path, each request to the route of its longest prefix, unstripped; one host and path claimed once."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from berth_common.catalogue import ApplyRoutes
from berth_common.catalogue.tls import CustomCertificate, TlsOptions
from berth_proxy_sync.domain.routes import Route, RouteError, full_config, render, render_files, route_config
from berth_proxy_sync.domain.tls import PATH_PRIORITY, REDIRECT_PRIORITY, HostStates, TlsSite, certificate_file
from tests.proxy.acme_support import cert_pair
from tests.proxy.support import ProxySync
from tests.proxy.test_recovery import wait_until

UP = "http://10.0.0.5:8080"
SITE = TlsSite(certs_dir="/etc/traefik/certs")


def test_a_path_narrows_the_host_rule_and_outranks_the_whole_host():
    r = Route.create("app-api", ["shop.example.com", "api-x.localhost"], [UP], path="/api")
    assert r.path == "/api" and r.claims == ("api-x.localhost/api", "shop.example.com/api")
    assert route_config(r) == {
        "http": {
            "routers": {
                "route-app-api": {
                    "rule": "(Host(`api-x.localhost`) || Host(`shop.example.com`)) && PathPrefix(`/api`)",
                    "service": "route-app-api",
                    "entryPoints": ["web"],
                    "priority": 500_004,
                }
            },
            "services": {
                "route-app-api": {"loadBalancer": {"passHostHeader": True, "servers": [{"url": UP}]}},
            },
        }
    }
    longer = Route.create("app-rt", ["shop.example.com"], [UP], path="/api/v2")
    assert route_config(longer)["http"]["routers"]["route-app-rt"]["priority"] == PATH_PRIORITY + 7
    # above any whole-host rule (Traefik's default priority is the rule's length), below the redirects
    hundred = Route.create(
        "app-web", [f"{i:02d}{'a' * 61}.{'b' * 63}.{'c' * 63}.{'d' * 57}.com" for i in range(100)], [UP]
    )
    assert len(hundred.hosts[0]) == 253 and len(hundred.rule) < PATH_PRIORITY < PATH_PRIORITY + 200 < REDIRECT_PRIORITY
    # "/" is the whole host, as no path
    whole = Route.create("app-web", ["shop.example.com"], [UP], path="/")
    assert whole.path is None and render(whole) == render(Route.create("app-web", ["shop.example.com"], [UP]))
    assert "priority" not in route_config(whole)["http"]["routers"]["route-app-web"]


@pytest.mark.parametrize("bad", ["api", "/a/../b", "/a//b", "/a b", "/x`) || Host(`evil.com", "/é", "/" + "a" * 200])
def test_a_bad_path_never_reaches_traefik(bad):
    with pytest.raises(RouteError, match="invalid path"):
        Route.create("app-api", ["shop.example.com"], [UP], path=bad)


def test_a_path_is_for_named_hosts_only():
    with pytest.raises(RouteError, match="wildcard"):
        Route.create("app-api", ["*.example.com"], [UP], path="/api")


def test_one_host_is_shared_by_path_but_one_host_and_path_is_claimed_once():
    web = Route.create("app-web", ["shop.example.com"], [UP])
    api = Route.create("app-api", ["shop.example.com"], [UP], path="/api")
    assert sorted(render_files([web, api])) == ["app-api.yml", "app-web.yml"]
    twice = Route.create("app-other", ["shop.example.com"], [UP], path="/api")
    with pytest.raises(RouteError, match="claimed by routes 'app-api' and 'app-other'"):
        render_files([web, api, twice])


def test_https_routers_are_under_the_path_and_the_redirects_whole_host():
    _, chain, key = cert_pair(["shop.example.com"])
    cert = CustomCertificate(certificate_id="cert-1", hosts=["shop.example.com"], chain_pem=chain, key=SecretStr(key))
    tls = TlsOptions(acme=True, certificates=[cert])
    r = Route.create("app-api", ["shop.example.com", "api.example.com"], [UP], tls=tls, path="/api")
    cfg = full_config(r, SITE, HostStates(acme_ok=frozenset({"api.example.com"})))
    name = certificate_file("cert-1")
    assert cfg["tls"] == {
        "certificates": [{"certFile": f"/etc/traefik/certs/{name}.crt", "keyFile": f"/etc/traefik/certs/{name}.key"}]
    }
    assert cfg["http"]["routers"] == {
        "route-app-api": {
            "rule": "(Host(`api.example.com`) || Host(`shop.example.com`)) && PathPrefix(`/api`)",
            "service": "route-app-api",
            "entryPoints": ["web"],
            "priority": 500_004,
        },
        "route-app-api-custom": {  # the host's uploaded certificate, as the host's other routes have it
            "rule": "(Host(`shop.example.com`)) && PathPrefix(`/api`)",
            "service": "route-app-api",
            "entryPoints": ["websecure"],
            "tls": {},
            "priority": 500_004,
        },
        "route-app-api-acme": {
            "rule": "(Host(`api.example.com`)) && PathPrefix(`/api`)",
            "service": "route-app-api",
            "entryPoints": ["websecure"],
            "tls": {"certResolver": "berth-http"},
            "priority": 500_004,
        },
        "route-app-api-to-https": {
            "rule": "Host(`shop.example.com`)",
            "service": "route-app-api",
            "entryPoints": ["web"],
            "middlewares": ["route-app-api-to-https"],
            "priority": REDIRECT_PRIORITY,
        },
    }


async def test_one_host_three_routes_by_path_through_traefik(traefik, upstream, proxy_settings, routes, unique):
    front, api, v2 = upstream("FRONT"), upstream("API"), upstream("V2")
    host = f"shop-{unique}.localhost"
    svc = await ProxySync(proxy_settings).start()
    assert routes.bus is not None
    sent = [(f"web-{unique}", front, None), (f"api-{unique}", api, "/api"), (f"v2-{unique}", v2, "/api/v2")]
    for rid, up, path in sent:
        await routes.bus.publish(
            ApplyRoutes(route_id=rid, hosts=[host], upstreams=[up.url], generation=1, path_prefix=path)
        )
    for rid, _, path in sent:
        evt = await routes.wait(rid, 1)
        assert evt["type"] == "evt.route.applied", evt
    answers = {p: traefik.get(host, p) for p in ("/", "/shop", "/api", "/api/users", "/apix", "/api/v2", "/api/v2/x")}
    assert answers == {
        "/": (200, b"FRONT"),
        "/shop": (200, b"FRONT"),
        "/api": (200, b"API"),
        "/api/users": (200, b"API"),
        "/apix": (200, b"API"),  # a prefix of the path, as Traefik's PathPrefix (and Coolify) have it
        "/api/v2": (200, b"V2"),
        "/api/v2/x": (200, b"V2"),
    }
    # the same host and path for another route: refused, the first keeps serving
    await routes.bus.publish(
        ApplyRoutes(route_id=f"dup-{unique}", hosts=[host], upstreams=[front.url], generation=1, path_prefix="/api")
    )
    evt = await routes.wait(f"dup-{unique}", 1)
    assert evt["type"] == "evt.route.failed" and f"{host}/api (route api-{unique})" in evt["data"]["reason"]
    assert traefik.get(host, "/api/users") == (200, b"API")

    # the path is kept in the proxy schema: a restart writes the file with it again
    await svc.stop()
    file = traefik.dynamic_dir / f"api-{unique}.yml"
    expected = render(Route.create(f"api-{unique}", [host], [api.url], generation=1, path="/api"))
    assert file.read_text() == expected
    file.unlink()
    svc = await ProxySync(proxy_settings).start()
    await wait_until(lambda: file.exists() and file.read_text() == expected)
    await wait_until(lambda: traefik.get(host, "/api/users") == (200, b"API"))

    # removing the path route gives its requests back to the whole host
    await routes.remove(f"api-{unique}", generation=2)
    assert (await routes.wait(f"api-{unique}", 2))["type"] == "evt.route.removed"
    assert (traefik.get(host, "/api/users"), traefik.get(host, "/api/v2/x")) == ((200, b"FRONT"), (200, b"V2"))
    await svc.stop()
