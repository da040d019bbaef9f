"""HTTPS end to end against a real ACME server: pebble and pebble-challtestsrv on loopback, a real Traefik
with its HTTPS entry point and ACME resolvers, proxy-sync acting on ``ApplyRoutes.tls``.

- A host gets a certificate from pebble (HTTP-01, and TLS-ALPN-01) and serves HTTPS trusted by pebble's
  root; its HTTP requests are redirected to HTTPS once it has it (``redirect: auto``); HSTS is sent;
  ``evt.certificate.issued`` names it.
- A host that does not resolve to the server is refused before the CA is asked: no ACME router names it,
  pebble never sees it, and ``evt.certificate.failed`` (stage dns) says what it resolved to.
- A host the CA cannot validate gets ``evt.certificate.failed`` (stage acme) with the CA's answer read
  from Traefik's log, once its wait is over.
- An uploaded certificate is served for its host, its key file is 0600, and no key reaches a file Traefik
  watches or an event; ``www`` redirects to the apex; a certificate near its end is told once.
- A server's Traefik container (a namespace server) publishes 443, keeps its ACME folder on the host and
  serves an uploaded certificate written there over SFTP; the watch sees it from outside.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
import yaml
from pydantic import SecretStr

from berth_common.bus import Bus, subscriptions_confirmed
from berth_common.catalogue import ApplyRoutes
from berth_common.catalogue.tls import CustomCertificate, TlsOptions
from berth_common.db.provision import provision
from berth_proxy_sync.adapters import tls_probe
from berth_proxy_sync.domain import served
from berth_proxy_sync.domain.tls import certificate_file
from berth_proxy_sync.settings import ProxySyncSettings
from tests.proxy.acme_support import Pebble, TlsTraefik, apply_on_new_server, available, cert_pair
from tests.proxy.support import ProxySync, Upstream

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not available(), reason="Debian's pebble is not installed")]


@pytest.fixture
def stack(tmp_root: Path, unique: str) -> Iterator[tuple[Pebble, TlsTraefik]]:
    root = tmp_root / f"tls-{unique}"
    traefik = TlsTraefik(root)
    pebble = Pebble(root / "pebble", traefik.web_port, traefik.websecure_port).start()
    traefik.directory_url, traefik.ca_bundle = pebble.directory_url, str(pebble.ca_bundle)
    traefik.start()
    yield pebble, traefik
    traefik.stop()
    pebble.stop()


@pytest.fixture
async def proxy(request, nats_server, database, stack) -> AsyncIterator[ProxySync]:
    pebble, traefik = stack
    # a test may name more server addresses and a shorter wait for a certificate (function attributes)
    addresses = getattr(request.function, "server_addresses", "127.0.0.1")
    issue_timeout = getattr(request.function, "issue_timeout_s", 60)
    urls = await provision(database, "test-secret", ("proxy-sync",))
    settings = ProxySyncSettings(
        nats_url=nats_server.url,
        database_url=urls["proxy-sync"],
        http_port=0,
        traefik_dynamic_dir=traefik.dynamic_dir,
        traefik_api_url=traefik.api_url,
        proxy_tls_port=traefik.websecure_port,
        traefik_certs_dir=traefik.root / "traefik" / "certs",
        tls_server_addresses=addresses,
        tls_dns_server=pebble.dns_server,
        cert_watch_interval_s=0.3,
        cert_issue_timeout_s=issue_timeout,
        traefik_log_file=traefik.root / "traefik.log",
    )
    svc = await ProxySync(settings).start()
    yield svc
    await svc.stop()


class Events:
    """Every ``evt.route.*`` and ``evt.certificate.*`` event, in arrival order."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.nc: Any = None

    async def start(self, url: str) -> Events:
        self.nc = await nats.connect(url)

        async def on_msg(msg: Any) -> None:
            self.seen.append(json.loads(msg.data))

        await self.nc.subscribe("evt.route.>", cb=on_msg)
        await self.nc.subscribe("evt.certificate.>", cb=on_msg)
        await subscriptions_confirmed(self.nc)
        return self

    async def wait(self, type_: str, timeout: float = 60.0, **match: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for env in self.seen:
                if env["type"] == type_ and all(env["data"].get(k) == v for k, v in match.items()):
                    return dict(env["data"])
            await asyncio.sleep(0.05)
        raise TimeoutError(f"no {type_} {match}: saw {[(e['type'], e['data'].get('host')) for e in self.seen]}")


@pytest.fixture
async def events(nats_server) -> AsyncIterator[Events]:
    ev = await Events().start(nats_server.url)
    yield ev
    await ev.nc.close()


@pytest.fixture
async def scheduler_bus(nats_server) -> AsyncIterator[Bus]:
    bus = Bus("scheduler", nats_server.url)
    await bus.connect()
    yield bus
    await bus.close()


@pytest.fixture
def app() -> Iterator[Upstream]:
    u = Upstream("tls-app").start()
    yield u
    u.stop()


async def test_a_host_gets_a_certificate_from_pebble_and_one_that_does_not_resolve_is_refused_first(
    stack, proxy, events, scheduler_bus, app, unique
):
    pebble, traefik = stack
    host, alpn, bad = f"web-{unique}.berth.test", f"alpn-{unique}.berth.test", f"typo-{unique}.berth.test"
    pebble.add_a(bad, ["192.0.2.10"])  # TEST-NET-1: resolves, but not to this server
    tls = TlsOptions(acme=True, redirect="auto", hsts_max_age_s=600)
    started = time.monotonic()
    await scheduler_bus.publish(
        ApplyRoutes(
            route_id=f"r-{unique}", hosts=[host, bad], upstreams=[app.url], tls=tls, team_id="t1", application_id="a1"
        )
    )
    await scheduler_bus.publish(
        ApplyRoutes(
            route_id=f"alpn-{unique}",
            hosts=[alpn],
            upstreams=[app.url],
            tls=TlsOptions(acme=True, challenge="tls-alpn-01", redirect="never"),
        )
    )
    assert (await events.wait("evt.route.applied", route_id=f"r-{unique}"))["hosts"] == sorted([bad, host])
    failed = await events.wait("evt.certificate.failed", host=bad)
    assert failed["stage"] == "dns" and failed["route_id"] == f"r-{unique}" and failed["team_id"] == "t1"
    assert failed["expected_addresses"] == ["127.0.0.1"] and failed["resolved_addresses"] == ["192.0.2.10"]
    assert "192.0.2.10" in failed["reason"]

    # the refused host is in no ACME router: Traefik never asks for it
    config = yaml.safe_load((traefik.dynamic_dir / f"r-{unique}.yml").read_text())
    acme_router = config["http"]["routers"][f"route-r-{unique}-acme"]
    assert acme_router["rule"] == f"Host(`{host}`)" and acme_router["tls"] == {"certResolver": "berth-http"}
    assert bad not in json.dumps({k: v for k, v in config["http"]["routers"].items() if k != f"route-r-{unique}"})

    issued = await events.wait("evt.certificate.issued", timeout=90, host=host)
    issue_s = time.monotonic() - started
    assert issued["source"] == "acme" and issued["application_id"] == "a1" and host in issued["domains"]
    root = traefik.root / "pebble-root.pem"
    root.write_text(pebble.root_pem())
    status, headers, body = traefik.https(host, root)  # verified against pebble's root
    assert (status, body) == (200, b"tls-app")
    assert headers["strict-transport-security"] == "max-age=600"
    der = await tls_probe.leaf("127.0.0.1", traefik.websecure_port, host)
    assert der is not None and served.read(der).fingerprint_sha256 == issued["fingerprint_sha256"]

    # redirect: auto, so once the certificate is there HTTP goes to HTTPS (the typo host stays on HTTP)
    deadline = time.monotonic() + 10
    while (resp := traefik.http(host, "/x?y=1"))[0] == 200 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert resp[0] in (301, 308), resp
    assert resp[1]["location"] == f"https://{host}:{traefik.websecure_port}/x?y=1"
    assert traefik.http(bad)[0] == 200
    assert traefik.http(host, "/.well-known/acme-challenge/nothing")[0] == 404  # the CA's path is Traefik's

    # TLS-ALPN-01 on the websecure entry point
    await events.wait("evt.certificate.issued", timeout=90, host=alpn)
    assert traefik.https(alpn, root)[0] == 200
    assert traefik.http(alpn)[0] == 200  # redirect: never

    assert not pebble.orders_for(bad)
    assert pebble.orders_for(host)
    print(f"issue_s={issue_s:.2f}")


async def test_an_uploaded_certificate_is_served_for_its_host_and_its_key_stays_in_a_0600_file(
    stack, proxy, events, scheduler_bus, app, unique, capsys
):
    _, traefik = stack
    host = f"custom-{unique}.berth.test"
    ca_pem, chain, key = cert_pair([host])
    cert = CustomCertificate(certificate_id=f"c-{unique}", hosts=[host], chain_pem=chain, key=SecretStr(key))
    tls = TlsOptions(certificates=[cert], redirect="auto", www="none")
    await scheduler_bus.publish(ApplyRoutes(route_id=f"c-{unique}", hosts=[host], upstreams=[app.url], tls=tls))
    await events.wait("evt.route.applied", route_id=f"c-{unique}")
    ca = traefik.root / "custom-ca.pem"
    ca.write_text(ca_pem)
    assert traefik.https(host, ca)[:3:2] == (200, b"tls-app")
    issued = await events.wait("evt.certificate.issued", host=host)
    assert issued["source"] == "custom" and issued["issuer"] == "CN=berth test CA"

    certs = traefik.root / "traefik" / "certs"
    name = certificate_file(f"c-{unique}")
    assert os.stat(certs).st_mode & 0o777 == 0o700
    assert os.stat(certs / f"{name}.key").st_mode & 0o777 == 0o600
    assert (certs / f"{name}.key").read_text() == key
    route_file = (traefik.dynamic_dir / f"c-{unique}.yml").read_text()
    assert "PRIVATE KEY" not in route_file
    assert yaml.safe_load(route_file)["tls"] == {
        "certificates": [{"certFile": f"{certs}/{name}.crt", "keyFile": f"{certs}/{name}.key"}]
    }
    assert not any("PRIVATE KEY" in json.dumps(e) for e in events.seen)
    logged = capsys.readouterr()
    assert "route live" in logged.out  # proxy-sync's log lines are here, and no key among them
    assert "PRIVATE KEY" not in logged.out + logged.err and key.splitlines()[1] not in logged.out + logged.err
    # a certificate that is there from the start redirects at once (redirect: auto)
    status, headers, _ = traefik.http(host)
    assert status in (301, 308) and headers["location"] == f"https://{host}:{traefik.websecure_port}/"


async def test_www_redirects_to_the_apex_and_a_certificate_near_its_end_is_told_once(
    stack, proxy, events, scheduler_bus, app, unique
):
    _, traefik = stack
    apex = f"shop-{unique}.berth.test"
    www = f"www.{apex}"
    ca_pem, chain, key = cert_pair([apex, www], days=10)  # ends within BERTH_CERT_EXPIRING_DAYS (14)
    cert = CustomCertificate(certificate_id=f"s-{unique}", hosts=[apex, www], chain_pem=chain, key=SecretStr(key))
    tls = TlsOptions(certificates=[cert], www="to_apex", hsts_max_age_s=300, hsts_subdomains=True)
    await scheduler_bus.publish(ApplyRoutes(route_id=f"s-{unique}", hosts=[apex, www], upstreams=[app.url], tls=tls))
    await events.wait("evt.route.applied", route_id=f"s-{unique}")
    ca = traefik.root / "shop-ca.pem"
    ca.write_text(ca_pem)
    port = traefik.websecure_port
    # http://www -> https://www (redirect first, as HSTS preload wants) -> https://apex, path and query kept
    status, headers, _ = traefik.http(www, "/p?q=1")
    assert status in (301, 308) and headers["location"] == f"https://{www}:{port}/p?q=1"
    status, headers, _ = traefik.https(www, ca, "/p?q=1", with_port=True)
    assert status in (301, 308) and headers["location"] == f"https://{apex}:{port}/p?q=1"
    status, headers, _ = traefik.https(www, ca, "/p?q=1")  # on 443 a browser's Host header has no port
    assert status in (301, 308) and headers["location"] == f"https://{apex}/p?q=1"
    assert headers["strict-transport-security"] == "max-age=300; includeSubDomains"
    status, headers, body = traefik.https(apex, ca)
    assert (status, body) == (200, b"tls-app")
    expiring = await events.wait("evt.certificate.expiring", domain=apex)
    assert 9.9 < expiring["days_left"] <= 10 and sorted(expiring["domains"]) == sorted([apex, www])
    assert expiring["server_id"] == "local" and expiring["issuer"] == "CN=berth test CA"
    await events.wait("evt.certificate.expiring", domain=www)
    await asyncio.sleep(1.0)  # several watch rounds: once per certificate and host
    assert len([e for e in events.seen if e["type"] == "evt.certificate.expiring"]) == 2


async def test_a_host_the_ca_cannot_validate_fails_with_the_cas_answer(
    stack, proxy, events, scheduler_bus, app, unique
):
    pebble, traefik = stack
    host = f"unreachable-{unique}.berth.test"
    # the server has two addresses; the host resolves to the one Traefik does not listen on (loopback), so
    # the DNS check passes and pebble's HTTP-01 validation finds nothing there
    pebble.add_a(host, ["127.0.0.2"])
    await scheduler_bus.publish(
        ApplyRoutes(route_id=f"u-{unique}", hosts=[host], upstreams=[app.url], tls=TlsOptions(acme=True))
    )
    await events.wait("evt.route.applied", route_id=f"u-{unique}")
    failed = await events.wait("evt.certificate.failed", timeout=60, host=host)
    assert failed["stage"] == "acme" and failed["source"] == "acme" and failed["route_id"] == f"u-{unique}"
    assert failed["reason"].startswith(f"no certificate from the ACME server for {host} after ")
    assert "urn:ietf:params:acme:error" in failed["reason"], failed["reason"]
    assert not [e for e in events.seen if e["type"] == "evt.certificate.issued"]
    await asyncio.sleep(1.0)  # sent once
    assert len([e for e in events.seen if e["type"] == "evt.certificate.failed"]) == 1
    assert traefik.http(host)[0] == 200  # redirect: auto, and no certificate: still served over HTTP


test_a_host_the_ca_cannot_validate_fails_with_the_cas_answer.server_addresses = "127.0.0.1,127.0.0.2"  # type: ignore[attr-defined]
test_a_host_the_ca_cannot_validate_fails_with_the_cas_answer.issue_timeout_s = 15  # type: ignore[attr-defined]


@pytest.mark.skipif(os.geteuid() != 0, reason="namespace servers need root")
async def test_a_servers_traefik_serves_https_on_443_with_an_uploaded_certificate(
    tmp_root, nats_server, database, events, scheduler_bus, unique
):
    from tests.proxy.support import Traefik
    from tests.support.testservers import running_servers, server_changed

    sid, host = f"tls{unique}", f"edge-{unique}.berth.test"
    local = Traefik(tmp_root / f"local-{unique}")
    local.root.mkdir()
    local.start()
    remote_root = tmp_root / f"servers-{unique}"
    bundle = tmp_root / f"acme-ca-{unique}.pem"  # a private ACME server's CA, copied to the server
    bundle.write_text(cert_pair(["ca.berth.test"])[0])
    urls = await provision(database, "test-secret", ("proxy-sync",))
    settings = ProxySyncSettings(
        nats_url=nats_server.url,
        database_url=urls["proxy-sync"],
        http_port=0,
        traefik_dynamic_dir=local.dynamic_dir,
        traefik_api_url=local.api_url,
        server_traefik_root=str(remote_root),
        server_connect_timeout_s=3.0,
        cert_watch_interval_s=0.3,
        acme_ca_bundle=str(bundle),
    )
    svc = await ProxySync(settings).start()
    api = Bus("api", nats_server.url)
    await api.connect()
    try:
        with running_servers(1) as [server]:
            await api.publish(server_changed(server, sid, team_id="team1", name="edge-1"))
            _, chain, key = cert_pair([host])
            cert = CustomCertificate(certificate_id=f"e-{unique}", hosts=[host], chain_pem=chain, key=SecretStr(key))
            msg = ApplyRoutes(
                route_id=f"e-{unique}",
                server_id=sid,
                hosts=[host],
                upstreams=["http://127.0.0.1:9"],
                tls=TlsOptions(certificates=[cert]),
            )
            answer = await apply_on_new_server(scheduler_bus, events, msg)
            assert answer["data"]["server_id"] == sid
            issued = await events.wait("evt.certificate.issued", host=host)
            assert issued["server_id"] == sid and issued["source"] == "custom"
            der = await tls_probe.leaf(server.address, 443, host)
            assert der is not None and served.read(der).fingerprint_sha256 == issued["fingerprint_sha256"]
            folder = remote_root / sid
            name = certificate_file(f"e-{unique}")
            assert os.stat(folder / "certs").st_mode & 0o777 == 0o700
            assert os.stat(folder / "certs" / f"{name}.key").st_mode & 0o777 == 0o600
            assert os.stat(folder / "acme").st_mode & 0o777 == 0o700  # Traefik's ACME storage, on the host
            static = json.loads((folder / "traefik.yml").read_text())
            assert static["entryPoints"]["websecure"]["address"] == ":443"
            assert static["certificatesResolvers"]["berth-http"]["acme"]["storage"] == "/etc/traefik/acme/acme.json"
            assert "443/tcp -> 0.0.0.0:443" in server.docker("port", "berth-traefik-net")  # the holder of its namespace
            assert (folder / "acme-ca.pem").read_text() == bundle.read_text()
            env = json.loads(server.docker("inspect", "-f", "{{json .Config.Env}}", "berth-traefik"))
            assert "LEGO_CA_CERTIFICATES=/etc/traefik/acme-ca.pem" in env
            server.docker("rm", "-f", "berth-traefik", "berth-traefik-net")
    finally:
        await api.close()
        await svc.stop()
        local.stop()
