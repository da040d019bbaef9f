"""Routes of one HTTPS host by path, against a real Traefik and Pebble: the whole-host route and a path
route share the host's one ACME certificate, each path answered by its own upstream over HTTPS; HTTP
redirects to HTTPS under the path too; once the path route is removed, the host's certificate state stays
with the whole-host route (its file keeps its HTTPS router when written again)."""

from __future__ import annotations

import asyncio
import time

import pytest
import yaml

from berth_common.catalogue import ApplyRoutes, RemoveRoute
from berth_common.catalogue.tls import TlsOptions
from berth_proxy_sync.adapters import tls_probe
from tests.proxy.acme_support import available
from tests.proxy.test_tls_acme import app, events, proxy, scheduler_bus, stack  # noqa: F401 (its fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not available(), reason="Debian's pebble is not installed")]


async def test_a_path_route_shares_the_hosts_certificate(
    stack,  # noqa: F811
    proxy,  # noqa: F811
    events,  # noqa: F811
    scheduler_bus,  # noqa: F811
    app,  # noqa: F811
    upstream,
    unique,
):
    pebble, traefik = stack
    api = upstream("API")
    host = f"shop-{unique}.berth.test"
    tls = TlsOptions(acme=True, redirect="auto")
    owner = {"tls": tls, "team_id": "t1", "application_id": f"a-{unique}"}
    web, path = f"web-{unique}", f"api-{unique}"
    await scheduler_bus.publish(ApplyRoutes(route_id=web, hosts=[host], upstreams=[app.url], generation=1, **owner))
    await events.wait("evt.route.applied", route_id=web)
    await scheduler_bus.publish(
        ApplyRoutes(route_id=path, hosts=[host], upstreams=[api.url], generation=1, path_prefix="/api", **owner)
    )
    await events.wait("evt.route.applied", route_id=path)
    routers = yaml.safe_load((traefik.dynamic_dir / f"{path}.yml").read_text())["http"]["routers"]
    assert routers[f"route-{path}-acme"]["rule"] == f"(Host(`{host}`)) && PathPrefix(`/api`)"

    await events.wait("evt.certificate.issued", timeout=90, host=host)
    root = traefik.root / "pebble-root.pem"
    root.write_text(pebble.root_pem())
    deadline = time.monotonic() + 30
    while (traefik.https(host, root)[0], traefik.https(host, root, "/api/x")[0]) != (200, 200):
        assert time.monotonic() < deadline, "both paths not served over HTTPS in time"
        await asyncio.sleep(0.2)
    assert traefik.https(host, root)[2] == b"tls-app" and traefik.https(host, root, "/api/x")[2] == b"API"
    assert await tls_probe.leaf("127.0.0.1", traefik.websecure_port, host) is not None
    # HTTP goes to HTTPS on the whole host, under the path too (the path kept)
    deadline = time.monotonic() + 10
    while (resp := traefik.http(host, "/api/x?y=1"))[0] == 200 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert resp[0] in (301, 308) and resp[1]["location"] == f"https://{host}:{traefik.websecure_port}/api/x?y=1"

    # the path route goes: the whole host serves /api again, and keeps its HTTPS when its file is written again
    await scheduler_bus.publish(RemoveRoute(route_id=path, generation=2))
    await events.wait("evt.route.removed", route_id=path)
    await scheduler_bus.publish(ApplyRoutes(route_id=web, hosts=[host], upstreams=[app.url], generation=2, **owner))
    await events.wait("evt.route.applied", route_id=web, generation=2)
    routers = yaml.safe_load((traefik.dynamic_dir / f"{web}.yml").read_text())["http"]["routers"]
    assert routers[f"route-{web}-acme"]["rule"] == f"Host(`{host}`)"
    assert f"route-{web}-to-https" in routers
    assert traefik.https(host, root, "/api/x")[:3:2] == (200, b"tls-app")
