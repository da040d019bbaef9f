"""An uploaded certificate is served by the real Traefik within seconds of ``POST /v1/certificates``, with
no deployment, and its ``DELETE`` gives the hosts Traefik's default certificate again: the real api, the
real proxy-sync and an HTTPS Traefik (``tests/proxy/test_tls_acme.py``'s) on one bus. The application's
route stands as a deployment left it (HTTP only); the api's ``evt.certificates.changed`` is all that moves.
The hosts' certificate state follows: ``issued`` with the upload's fingerprint, then ``pending`` again (no
longer showing a deleted certificate as served), and it stays so while the certificate watch runs.
A wildcard host gets the same from an uploaded wildcard certificate: a name one label under it is served
with it, a name two labels under it is not routed at all.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator

import pytest

from berth_common.bus import Bus
from berth_common.catalogue import ApplyRoutes
from tests.api.conftest import WEB_APP, make_app
from tests.api.test_certificates import APP, SHOP, _body
from tests.api.tls_certs import pki
from tests.proxy.acme_support import available, until
from tests.proxy.test_tls_acme import app, events, proxy, scheduler_bus, stack  # noqa: F401 (its fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not available(), reason="Debian's pebble is not installed")]


@pytest.fixture
async def route_bus(nats_server) -> AsyncIterator[Bus]:
    """The scheduler's side of the bus: the route a deployment left."""
    bus = Bus("scheduler", nats_server.url)
    await bus.connect()
    yield bus
    await bus.close()


async def _states(client, headers, app_id: str) -> dict[tuple[str, str | None], tuple[str, str | None]]:
    r = await client.get(f"/v1/applications/{app_id}/certificates", headers=headers)
    assert r.status_code == 200, r.text
    return {(s["host"], s["server_id"]): (s["status"], s["fingerprint_sha256"]) for s in r.json()}


async def until_async(read, want, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while (got := await read()) != want:
        assert time.monotonic() < deadline, f"{got} != {want}"
        await asyncio.sleep(0.1)


def _served_with(traefik, host: str, ca_file) -> None:  # type: ignore[no-untyped-def]
    status, _, body = traefik.https(host, ca_file)  # verified against the upload's root
    assert (status, body) == (200, b"tls-app")


def _not_served_with(traefik, host: str, ca_file) -> None:  # type: ignore[no-untyped-def]
    try:
        traefik.https(host, ca_file)
    except ssl.SSLError:  # Traefik's default certificate
        return
    raise AssertionError(f"{host} is still served with the deleted certificate")


async def test_an_upload_is_served_at_once_and_its_deletion_ends_it(
    client,
    members,
    stack,  # noqa: F811
    proxy,  # noqa: F811
    events,  # noqa: F811
    route_bus,
    app,  # noqa: F811
    unique,
):
    _, traefik = stack
    application = await make_app(client, members.developer, APP)
    await route_bus.publish(
        ApplyRoutes(route_id=f"r-{unique}", hosts=[SHOP, f"www.{SHOP}"], upstreams=[app.url], generation=1)
    )
    await events.wait("evt.route.applied", route_id=f"r-{unique}")
    ca = pki()
    ca_file = traefik.root / f"root-{unique}.pem"
    ca_file.write_text(ca.root.pem)
    with pytest.raises(ssl.SSLError):
        traefik.https(SHOP, ca_file)

    leaf = ca.leaf([SHOP, f"www.{SHOP}"])
    started = time.monotonic()
    r = await client.post(
        "/v1/certificates",
        headers=members.developer,
        json={**_body(leaf, [ca.intermediate]), "application_id": application["id"]},
    )
    assert r.status_code == 201, r.text
    await until(lambda: _served_with(traefik, SHOP, ca_file))
    print(f"upload served after {time.monotonic() - started:.2f}s")
    await until(lambda: _served_with(traefik, f"www.{SHOP}", ca_file))
    issued = await events.wait("evt.certificate.issued", host=SHOP)
    assert (issued["source"], issued["application_id"]) == ("custom", application["id"])
    generated = application["services"][0]["hosts"][0]
    want = {
        (generated, None): ("pending", None),
        (SHOP, "local"): ("issued", r.json()["fingerprint_sha256"]),
        (f"www.{SHOP}", "local"): ("issued", r.json()["fingerprint_sha256"]),
    }
    await until_async(lambda: _states(client, members.viewer, application["id"]), want)

    started = time.monotonic()
    assert (await client.delete(f"/v1/certificates/{r.json()['id']}", headers=members.admin)).status_code == 204
    await until(lambda: _not_served_with(traefik, SHOP, ca_file))
    print(f"deletion live after {time.monotonic() - started:.2f}s")
    _not_served_with(traefik, f"www.{SHOP}", ca_file)
    assert traefik.http(SHOP)[::2] == (200, b"tls-app")  # still served over HTTP
    await asyncio.sleep(1.5)  # the certificate watch looks every 0.3 s: nothing more is reported
    assert await _states(client, members.viewer, application["id"]) == {
        (generated, None): ("pending", None),
        (SHOP, None): ("pending", None),
        (f"www.{SHOP}", None): ("pending", None),
    }


async def test_an_uploaded_wildcard_certificate_serves_a_wildcard_host(
    client,
    members,
    stack,  # noqa: F811
    proxy,  # noqa: F811
    events,  # noqa: F811
    route_bus,
    app,  # noqa: F811
    unique,
):
    _, traefik = stack
    base = f"w{unique}.example.com"
    spec = {**WEB_APP, "services": [{**WEB_APP["services"][0], "domains": [f"*.{base}"]}, WEB_APP["services"][1]]}
    application = await make_app(client, members.developer, spec)
    await route_bus.publish(ApplyRoutes(route_id=f"r-{unique}", hosts=[f"*.{base}"], upstreams=[app.url], generation=1))
    await events.wait("evt.route.applied", route_id=f"r-{unique}")
    assert traefik.http(f"a.{base}")[::2] == (200, b"tls-app")
    assert traefik.http(f"a.b.{base}")[0] == 404  # one label only
    ca = pki()
    ca_file = traefik.root / f"root-{unique}.pem"
    ca_file.write_text(ca.root.pem)

    leaf = ca.leaf([f"*.{base}"])
    r = await client.post(
        "/v1/certificates",
        headers=members.developer,
        json={**_body(leaf, [ca.intermediate]), "application_id": application["id"]},
    )
    assert r.status_code == 201, r.text
    assert r.json()["hosts"] == [f"*.{base}"]
    await until(lambda: _served_with(traefik, f"a.{base}", ca_file))
    _served_with(traefik, f"other.{base}", ca_file)
    with pytest.raises(ssl.SSLError):  # not covered by the certificate (nor routed)
        traefik.https(f"a.b.{base}", ca_file)

    assert (await client.delete(f"/v1/certificates/{r.json()['id']}", headers=members.admin)).status_code == 204
    await until(lambda: _not_served_with(traefik, f"a.{base}", ca_file))
