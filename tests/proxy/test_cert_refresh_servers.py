"""``evt.certificates.changed`` reaches every server that serves the application's hosts, without a
deployment: one host routed on the control plane's Traefik (HTTPS, as in ``test_tls_acme``), one on a
namespace server's Traefik container.

- the upload: both Traefiks serve the uploaded certificate within seconds (the control plane's verified
  against the certificate's CA, the server's on 443: the leaf it sends is the uploaded one), both route
  files name it (the server's written over SFTP, its key 0600);
- the deletion: both send their default certificate again, the certificate's files are gone from both
  servers, and neither route file has a ``tls`` section any more.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from collections.abc import AsyncIterator

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from pydantic import SecretStr

from berth_common.bus import Bus
from berth_common.catalogue import ApplyRoutes, CertificatesChanged
from berth_common.catalogue.tls import CustomCertificate
from berth_common.db.provision import provision
from berth_proxy_sync.adapters import tls_probe
from berth_proxy_sync.domain.tls import certificate_file
from berth_proxy_sync.settings import ProxySyncSettings
from tests.proxy.acme_support import apply_on_new_server, available, cert_pair, until
from tests.proxy.support import ProxySync
from tests.proxy.test_tls_acme import app, events, scheduler_bus, stack  # noqa: F401 (its fixtures)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="namespace servers need root"),
    pytest.mark.skipif(not available(), reason="Debian's pebble is not installed"),
]


@pytest.fixture
async def api_bus(nats_server) -> AsyncIterator[Bus]:
    bus = Bus("api", nats_server.url)
    await bus.connect()
    yield bus
    await bus.close()


def _fingerprint(chain_pem: str) -> str:
    return x509.load_pem_x509_certificate(chain_pem.encode()).fingerprint(hashes.SHA256()).hex()


async def _served_leaf(address: str, port: int, host: str) -> str | None:
    der = await tls_probe.leaf(address, port, host)
    return None if der is None else x509.load_der_x509_certificate(der).fingerprint(hashes.SHA256()).hex()


async def test_an_upload_and_a_delete_reach_the_routes_of_every_server(
    tmp_root,
    nats_server,
    database,
    stack,  # noqa: F811
    events,  # noqa: F811
    scheduler_bus,  # noqa: F811
    api_bus,
    app,  # noqa: F811
    unique,
):
    from tests.support.testservers import running_servers, server_changed

    pebble, traefik = stack
    sid, app_id = f"cr{unique}", f"a-{unique}"
    here, there = f"here-{unique}.berth.test", f"there-{unique}.berth.test"
    remote_root = tmp_root / f"servers-{unique}"
    local_certs = traefik.root / "traefik" / "certs"
    urls = await provision(database, "test-secret", ("proxy-sync",))
    settings = ProxySyncSettings(
        nats_url=nats_server.url,
        database_url=urls["proxy-sync"],
        http_port=0,
        traefik_dynamic_dir=traefik.dynamic_dir,
        traefik_api_url=traefik.api_url,
        proxy_tls_port=traefik.websecure_port,
        traefik_certs_dir=local_certs,
        tls_server_addresses="127.0.0.1",
        tls_dns_server=pebble.dns_server,
        server_traefik_root=str(remote_root),
        server_connect_timeout_s=3.0,
        cert_watch_interval_s=0.3,
    )
    svc = await ProxySync(settings).start()
    try:
        with running_servers(1) as [server]:
            await api_bus.publish(server_changed(server, sid, team_id="t1", name="edge-1"))
            # the application's routes as a deployment left them: HTTP only, generation 4
            await scheduler_bus.publish(
                ApplyRoutes(route_id=f"h-{unique}", hosts=[here], upstreams=[app.url], generation=4)
            )
            remote = ApplyRoutes(
                route_id=f"t-{unique}", server_id=sid, hosts=[there], upstreams=["http://127.0.0.1:9"], generation=4
            )
            await apply_on_new_server(scheduler_bus, events, remote)
            await events.wait("evt.route.applied", route_id=f"h-{unique}")
            default = await _served_leaf(server.address, 443, there)
            assert default is not None  # Traefik's own certificate
            ca_pem, chain, key = cert_pair([here, there])
            ca = traefik.root / f"ca-{unique}.pem"
            ca.write_text(ca_pem)
            with pytest.raises(ssl.SSLError):  # the control plane's default certificate
                traefik.https(here, ca)

            cert = CustomCertificate(
                certificate_id=f"c-{unique}", hosts=[here, there], chain_pem=chain, key=SecretStr(key)
            )
            uploaded = _fingerprint(chain)
            assert default != uploaded
            started = time.monotonic()
            await api_bus.publish(
                CertificatesChanged(
                    team_id="t1", application_id=app_id, hosts=[here, there], certificates=[cert], revision=5
                )
            )
            while (served := await _served_leaf(server.address, 443, there)) != uploaded:
                assert time.monotonic() - started < 60, f"the server still sends {served}"
                await asyncio.sleep(0.2)
            print(f"upload served on the server after {time.monotonic() - started:.2f}s")

            def served_here() -> None:
                assert traefik.https(here, ca)[::2] == (200, b"tls-app")

            await until(served_here)
            print(f"upload served on both after {time.monotonic() - started:.2f}s")
            for host, server_id in ((there, sid), (here, "local")):
                issued = await events.wait("evt.certificate.issued", host=host)
                assert (issued["server_id"], issued["source"], issued["application_id"]) == (
                    server_id,
                    "custom",
                    app_id,
                )

            name = certificate_file(f"c-{unique}")
            remote_certs = remote_root / sid / "certs"
            assert os.stat(remote_certs / f"{name}.key").st_mode & 0o777 == 0o600
            local_file = yaml.safe_load((traefik.dynamic_dir / f"h-{unique}.yml").read_text())
            assert local_file["tls"] == {
                "certificates": [{"certFile": f"{local_certs}/{name}.crt", "keyFile": f"{local_certs}/{name}.key"}]
            }
            remote_file = yaml.safe_load((remote_root / sid / "dynamic" / f"t-{unique}.yml").read_text())
            assert remote_file["tls"] == {
                "certificates": [
                    {"certFile": f"/etc/traefik/certs/{name}.crt", "keyFile": f"/etc/traefik/certs/{name}.key"}
                ]
            }
            applied = [e["data"] for e in events.seen if e["type"] == "evt.route.applied"]
            assert sorted((a["route_id"], a["generation"]) for a in applied) == sorted(
                [(f"h-{unique}", 4), (f"h-{unique}", 4), (f"t-{unique}", 4), (f"t-{unique}", 4)]
            )  # each applied again as it stood

            started = time.monotonic()
            await api_bus.publish(
                CertificatesChanged(
                    team_id="t1", application_id=app_id, hosts=[here, there], certificates=[], revision=6
                )
            )
            while (served := await _served_leaf(server.address, 443, there)) == uploaded:
                assert time.monotonic() - started < 60, "the server still sends the deleted certificate"
                await asyncio.sleep(0.2)
            assert served == default
            print(f"deletion live on the server after {time.monotonic() - started:.2f}s")

            def not_served_here() -> None:
                try:
                    traefik.https(here, ca)
                except ssl.SSLError:  # the default certificate again
                    return
                raise AssertionError(f"{here} is still served with the deleted certificate")

            await until(not_served_here)
            for _ in range(100):  # the files go once no route of the server names them
                if not [p for d in (remote_certs, local_certs) for p in d.glob(f"{name}.*")]:
                    break
                await asyncio.sleep(0.1)
            assert not [p for d in (remote_certs, local_certs) for p in d.glob(f"{name}.*")]
            assert "tls" not in yaml.safe_load((traefik.dynamic_dir / f"h-{unique}.yml").read_text())
            assert "tls" not in yaml.safe_load((remote_root / sid / "dynamic" / f"t-{unique}.yml").read_text())
            assert traefik.http(here)[::2] == (200, b"tls-app")  # still served over HTTP
            server.docker("rm", "-f", "berth-traefik", "berth-traefik-net")
    finally:
        await svc.stop()
