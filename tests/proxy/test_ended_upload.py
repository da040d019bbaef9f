"""An uploaded certificate that ends is not kept: against pebble and a real Traefik, a host served with an
upload that ends gets an ACME certificate once it has ended (the route applied again without it by the
certificate watch, its files deleted), and a later route command that still carries it (the scheduler's,
from a deployment's spec) leaves it out. Without ACME the host is served over HTTP only
(``tests/proxy/test_tls_config.py`` has the pure part)."""

from __future__ import annotations

import asyncio
import time

import pytest
import yaml
from pydantic import SecretStr

from berth_common.catalogue import ApplyRoutes
from berth_common.catalogue.tls import CustomCertificate, TlsOptions
from berth_proxy_sync.adapters import tls_probe
from berth_proxy_sync.domain import served
from berth_proxy_sync.domain.tls import certificate_file
from tests.proxy.acme_support import available, cert_pair
from tests.proxy.test_tls_acme import app, events, proxy, scheduler_bus, stack  # noqa: F401 (its fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not available(), reason="Debian's pebble is not installed")]

LIFETIME_S = 15  # the upload's time left: long enough to be seen served first


async def test_an_upload_that_ends_gives_way_to_acme_and_is_never_served_again(
    stack,  # noqa: F811
    proxy,  # noqa: F811
    events,  # noqa: F811
    scheduler_bus,  # noqa: F811
    app,  # noqa: F811
    unique,
):
    pebble, traefik = stack
    host = f"ends-{unique}.berth.test"
    _, chain, key = cert_pair([host], days=(300 + LIFETIME_S) / 86400)  # made valid from 5 minutes ago
    cert = CustomCertificate(certificate_id=f"e-{unique}", hosts=[host], chain_pem=chain, key=SecretStr(key))
    tls = TlsOptions(acme=True, certificates=[cert], redirect="never")
    msg = ApplyRoutes(route_id=f"e-{unique}", hosts=[host], upstreams=[app.url], tls=tls, team_id="t1")
    started = time.monotonic()
    await scheduler_bus.publish(msg)
    custom = await events.wait("evt.certificate.issued", host=host, source="custom")
    assert time.monotonic() - started < LIFETIME_S, "the upload was not seen served before it ended"

    acme = await events.wait("evt.certificate.issued", timeout=90 + LIFETIME_S, host=host, source="acme")
    assert acme["fingerprint_sha256"] != custom["fingerprint_sha256"] and acme["team_id"] == "t1"
    root = traefik.root / "pebble-root.pem"
    root.write_text(pebble.root_pem())
    assert traefik.https(host, root)[::2] == (200, b"tls-app")
    config = yaml.safe_load((traefik.dynamic_dir / f"e-{unique}.yml").read_text())
    assert "tls" not in config  # no uploaded certificate named any more
    assert config["http"]["routers"][f"route-e-{unique}-acme"]["tls"] == {"certResolver": "berth-http"}
    name = certificate_file(f"e-{unique}")
    assert not (traefik.root / "traefik" / "certs" / f"{name}.key").exists()

    # the scheduler's next command for the route, from the deployment's spec, still carries the upload
    await scheduler_bus.publish(msg.model_copy(update={"generation": msg.generation + 1}))
    await events.wait("evt.route.applied", route_id=f"e-{unique}", generation=msg.generation + 1)
    assert "tls" not in yaml.safe_load((traefik.dynamic_dir / f"e-{unique}.yml").read_text())
    await asyncio.sleep(1.0)  # several watch rounds
    der = await tls_probe.leaf("127.0.0.1", traefik.websecure_port, host)
    assert der is not None and served.read(der).fingerprint_sha256 == acme["fingerprint_sha256"]
    assert not (traefik.root / "traefik" / "certs" / f"{name}.key").exists()
