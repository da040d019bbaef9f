"""Uploaded certificates reach a running route without a deployment (``evt.certificates.changed``), against
a real Traefik: a route served over HTTP only gets the certificate once the api says it was uploaded (same
upstreams, same generation, the scheduler not involved), and stops serving it once the api says it was
deleted (its files gone too). A refresh older than the newest one taken changes nothing; the same one
delivered again changes nothing twice.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator

import pytest
import yaml
from pydantic import SecretStr

from berth_common.bus import Bus
from berth_common.catalogue import ApplyRoutes, CertificatesChanged
from berth_common.catalogue.tls import CustomCertificate
from berth_proxy_sync.domain.routes import router_name
from berth_proxy_sync.domain.tls import certificate_file
from tests.proxy.acme_support import available, cert_pair, until
from tests.proxy.test_tls_acme import app, events, proxy, scheduler_bus, stack  # noqa: F401 (its fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not available(), reason="Debian's pebble is not installed")]


@pytest.fixture
async def api_bus(nats_server) -> AsyncIterator[Bus]:
    bus = Bus("api", nats_server.url)
    await bus.connect()
    yield bus
    await bus.close()


async def test_an_upload_and_a_delete_reach_a_live_route_without_a_deployment(
    stack,  # noqa: F811
    proxy,  # noqa: F811
    events,  # noqa: F811
    scheduler_bus,  # noqa: F811
    api_bus,
    app,  # noqa: F811
    unique,
):
    _, traefik = stack
    host = f"later-{unique}.berth.test"
    route_id = f"r-{unique}"
    await scheduler_bus.publish(ApplyRoutes(route_id=route_id, hosts=[host], upstreams=[app.url], generation=3))
    await events.wait("evt.route.applied", route_id=route_id, generation=3)
    ca_pem, chain, key = cert_pair([host])
    ca = traefik.root / f"ca-{unique}.pem"
    ca.write_text(ca_pem)
    with pytest.raises(ssl.SSLError):  # HTTP only: Traefik's default certificate, not ours
        traefik.https(host, ca)

    cert = CustomCertificate(certificate_id=f"c-{unique}", hosts=[host], chain_pem=chain, key=SecretStr(key))
    upload = CertificatesChanged(
        team_id="t1", application_id=f"a-{unique}", hosts=[host], certificates=[cert], revision=10
    )
    await api_bus.publish(upload)

    def served() -> None:
        status, _, body = traefik.https(host, ca)
        assert (status, body) == (200, b"tls-app")

    await until(served)
    issued = await events.wait("evt.certificate.issued", host=host)
    assert issued["source"] == "custom" and issued["application_id"] == f"a-{unique}" and issued["team_id"] == "t1"
    route_file = yaml.safe_load((traefik.dynamic_dir / f"{route_id}.yml").read_text())
    name = certificate_file(f"c-{unique}")
    certs = traefik.root / "traefik" / "certs"
    assert route_file["tls"] == {
        "certificates": [{"certFile": f"{certs}/{name}.crt", "keyFile": f"{certs}/{name}.key"}]
    }
    assert route_file["http"]["services"][router_name(route_id)]["loadBalancer"]["servers"] == [{"url": app.url}]
    applied = [e["data"] for e in events.seen if e["type"] == "evt.route.applied" and e["data"]["route_id"] == route_id]
    assert [a["generation"] for a in applied] == [3, 3]  # applied again as it stands: the same generation

    delete = CertificatesChanged(team_id="t1", application_id=f"a-{unique}", hosts=[host], certificates=[], revision=20)
    await api_bus.publish(delete)

    def not_served() -> None:
        try:
            traefik.https(host, ca)
        except ssl.SSLError:  # Traefik's default certificate again
            return
        raise AssertionError(f"{host} is still served with the deleted certificate")

    await until(not_served)
    for _ in range(50):  # the files of the deleted certificate go once the route no longer names them
        if not (certs / f"{name}.key").exists():
            break
        await asyncio.sleep(0.1)
    assert not (certs / f"{name}.key").exists() and not (certs / f"{name}.crt").exists()
    assert "tls" not in yaml.safe_load((traefik.dynamic_dir / f"{route_id}.yml").read_text())
    assert traefik.http(host)[::2] == (200, b"tls-app")  # still served over HTTP

    # the upload's refresh delivered late (an older revision): ignored; the delete's again: nothing twice
    await api_bus.publish(upload, id=f"late-{unique}")
    await api_bus.publish(delete, id=f"again-{unique}")
    await asyncio.sleep(2.0)
    not_served()
    applied = [e["data"] for e in events.seen if e["type"] == "evt.route.applied" and e["data"]["route_id"] == route_id]
    assert len(applied) == 3
