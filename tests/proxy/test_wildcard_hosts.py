"""Wildcard hosts (``*.example.com``: one label) in a route, as exact configuration and against a real
Traefik (3.x, ``HostRegexp`` in Go regexp syntax):

- a route's wildcard hosts get a router of their own after every named host's (priority 1; its HTTP
  redirect 2), so another route's ``api.example.com`` wins over a ``*.example.com`` route;
- with ACME (DNS-01), the wildcard's HTTPS router names its domain for the resolver (a regexp does not);
  an uploaded wildcard certificate is served for every name under it;
- Traefik serves ``a.<base>`` from the wildcard route, ``api.<base>`` from its own route, and neither
  ``<base>`` nor ``x.a.<base>``.
"""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from berth_common.catalogue import ApplyRoutes
from berth_common.catalogue.tls import CustomCertificate, TlsOptions
from berth_proxy_sync.domain.routes import Route, full_config, other_routers
from berth_proxy_sync.domain.tls import HostStates, TlsSite, certificate_file, probe_name
from tests.proxy.acme_support import available, cert_pair, until
from tests.proxy.support import Upstream
from tests.proxy.test_tls_acme import app, events, proxy, scheduler_bus, stack  # noqa: F401 (its fixtures)

UP = "http://10.0.0.5:8080"
SITE = TlsSite(certs_dir="/etc/traefik/certs", dns_resolver=True)
WILD_RULE = "HostRegexp(`(?i)^[a-z0-9-]+\\.shops\\.example\\.com$`)"
LB = {"route-app": {"loadBalancer": {"passHostHeader": True, "servers": [{"url": UP}]}}}


def test_a_wildcard_only_route_is_its_own_router_after_every_named_host():
    route = Route.create("app", ["*.Shops.example.com"], [UP])
    assert route.hosts == ("*.shops.example.com",)
    assert full_config(route) == {
        "http": {
            "routers": {
                "route-app": {"rule": WILD_RULE, "service": "route-app", "entryPoints": ["web"], "priority": 1}
            },
            "services": LB,
        }
    }
    assert other_routers(route, None, None) == ()
    assert probe_name("*.shops.example.com") == "berth-probe.shops.example.com"


def test_named_and_wildcard_hosts_with_acme_dns_01_and_a_redirect():
    tls = TlsOptions(acme=True, challenge="dns-01", redirect="always")
    route = Route.create("app", ["shop.example.com", "*.shops.example.com"], [UP], tls=tls)
    states = HostStates(acme_ok=frozenset({"shop.example.com", "*.shops.example.com"}))
    assert full_config(route, SITE, states) == {
        "http": {
            "routers": {
                "route-app": {"rule": "Host(`shop.example.com`)", "service": "route-app", "entryPoints": ["web"]},
                "route-app-wildcard": {
                    "rule": WILD_RULE,
                    "service": "route-app",
                    "entryPoints": ["web"],
                    "priority": 1,
                },
                "route-app-acme": {
                    "rule": "Host(`shop.example.com`)",
                    "service": "route-app",
                    "entryPoints": ["websecure"],
                    "tls": {"certResolver": "berth-dns"},
                },
                "route-app-acme-wildcard": {
                    "rule": WILD_RULE,
                    "service": "route-app",
                    "entryPoints": ["websecure"],
                    "tls": {"certResolver": "berth-dns", "domains": [{"main": "*.shops.example.com"}]},
                    "priority": 1,
                },
                "route-app-to-https": {
                    "rule": "Host(`shop.example.com`)",
                    "service": "route-app",
                    "entryPoints": ["web"],
                    "middlewares": ["route-app-to-https"],
                    "priority": 1_000_000,
                },
                "route-app-to-https-wildcard": {
                    "rule": WILD_RULE,
                    "service": "route-app",
                    "entryPoints": ["web"],
                    "middlewares": ["route-app-to-https"],
                    "priority": 2,
                },
            },
            "middlewares": {"route-app-to-https": {"redirectScheme": {"scheme": "https", "permanent": True}}},
            "services": LB,
        }
    }
    assert other_routers(route, SITE, states) == (
        "route-app-acme",
        "route-app-acme-wildcard",
        "route-app-to-https",
        "route-app-to-https-wildcard",
        "route-app-wildcard",
    )


def test_an_uploaded_wildcard_certificate_serves_the_wildcard_host():
    _, chain, key = cert_pair(["*.shops.example.com"])
    cert = CustomCertificate(certificate_id="w1", hosts=["*.shops.example.com"], chain_pem=chain, key=SecretStr(key))
    route = Route.create("app", ["*.shops.example.com"], [UP], tls=TlsOptions(certificates=[cert], redirect="never"))
    name = certificate_file("w1")
    assert full_config(route, SITE, HostStates()) == {
        "http": {
            "routers": {
                "route-app": {"rule": WILD_RULE, "service": "route-app", "entryPoints": ["web"], "priority": 1},
                "route-app-custom-wildcard": {
                    "rule": WILD_RULE,
                    "service": "route-app",
                    "entryPoints": ["websecure"],
                    "tls": {},
                    "priority": 1,
                },
            },
            "services": LB,
        },
        "tls": {
            "certificates": [
                {"certFile": f"/etc/traefik/certs/{name}.crt", "keyFile": f"/etc/traefik/certs/{name}.key"}
            ]
        },
    }


def test_a_route_host_is_a_name_or_a_one_label_wildcard_on_the_bus():
    ok = ApplyRoutes(route_id="a", hosts=["*.shops.example.com"], upstreams=[UP])
    assert ok.hosts == ["*.shops.example.com"]
    for bad in ("*.com", "a.*.example.com", "**.example.com"):
        with pytest.raises(ValueError):
            ApplyRoutes(route_id="a", hosts=[bad], upstreams=[UP])


@pytest.mark.slow
@pytest.mark.skipif(not available(), reason="Debian's pebble is not installed")
async def test_traefik_serves_one_label_under_a_wildcard_and_a_named_host_wins(
    stack,  # noqa: F811
    proxy,  # noqa: F811
    events,  # noqa: F811
    scheduler_bus,  # noqa: F811
    app,  # noqa: F811
    unique,
):
    _, traefik = stack
    base = f"wild-{unique}.berth.test"
    other = Upstream("named-app").start()
    try:
        ca_pem, chain, key = cert_pair([f"*.{base}"])
        cert = CustomCertificate(certificate_id=f"w-{unique}", hosts=[f"*.{base}"], chain_pem=chain, key=SecretStr(key))
        tls = TlsOptions(certificates=[cert], redirect="never")
        await scheduler_bus.publish(
            ApplyRoutes(route_id=f"w-{unique}", hosts=[f"*.{base}"], upstreams=[app.url], tls=tls)
        )
        await scheduler_bus.publish(ApplyRoutes(route_id=f"n-{unique}", hosts=[f"api.{base}"], upstreams=[other.url]))
        await events.wait("evt.route.applied", route_id=f"w-{unique}")
        await events.wait("evt.route.applied", route_id=f"n-{unique}")
        ca = traefik.root / f"wild-ca-{unique}.pem"
        ca.write_text(ca_pem)

        def served() -> None:
            assert traefik.http(f"a.{base}")[::2] == (200, b"tls-app")
            assert traefik.http(f"A-2.{base}")[::2] == (200, b"tls-app")
            assert traefik.http(f"api.{base}")[::2] == (200, b"named-app")  # the named route wins
            assert traefik.http(base)[0] == 404 and traefik.http(f"x.a.{base}")[0] == 404
            status, _, body = traefik.https(f"shop.{base}", ca)  # the uploaded wildcard certificate
            assert (status, body) == (200, b"tls-app")

        await until(served)
        issued = await events.wait("evt.certificate.issued", host=f"*.{base}")
        assert issued["source"] == "custom"  # watched through berth-probe.<base>
    finally:
        other.stop()
