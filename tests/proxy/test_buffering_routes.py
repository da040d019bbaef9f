"""proxy-sync with a route that buffers requests: the command's option reaches the route's file and
Traefik serves the route (its middleware valid); it is kept in the proxy schema, so a restart rewrites
the file with it; an apply without it takes it away."""

from __future__ import annotations

from berth_common.catalogue import ApplyRoutes, RequestBuffering
from berth_proxy_sync.domain.routes import Route, render
from tests.proxy.support import ProxySync
from tests.proxy.test_recovery import wait_until


async def test_the_option_is_written_kept_across_a_restart_and_taken_away(
    traefik, upstream, proxy_settings, routes, unique
):
    a = upstream("A")
    rid, host = f"cgi-{unique}", f"cgi-{unique}.localhost"
    option = RequestBuffering(max_body_mb=3)
    svc = await ProxySync(proxy_settings).start()
    msg = ApplyRoutes(route_id=rid, hosts=[host], upstreams=[a.url], generation=1, buffer_requests=option)
    assert routes.bus is not None
    await routes.bus.publish(msg)
    assert (await routes.wait(rid, 1))["type"] == "evt.route.applied"
    path = traefik.dynamic_dir / f"{rid}.yml"
    expected = render(Route.create(rid, [host], [a.url], generation=1, buffering=option))
    assert path.read_text() == expected and "maxRequestBodyBytes: 3145728" in expected
    assert traefik.get(host) == (200, b"A")
    await svc.stop()

    path.unlink()
    svc = await ProxySync(proxy_settings).start()
    await wait_until(lambda: path.exists() and path.read_text() == expected)

    await routes.apply(rid, [host], [a.url], generation=2)
    assert (await routes.wait(rid, 2))["type"] == "evt.route.applied"
    assert path.read_text() == render(Route.create(rid, [host], [a.url], generation=2))
    assert "buffering" not in path.read_text()
    await svc.stop()
