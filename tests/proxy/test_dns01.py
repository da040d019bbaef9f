"""DNS-01 end to end, with no outside network: Traefik's ``berth-dns`` resolver against pebble, the TXT
records set through a lego DNS provider in pebble-challtestsrv, the DNS server pebble asks.

The platform is configured as an operator configures it, through the ``BERTH_ACME_*`` environment read by
the cli's Traefik launch and by proxy-sync's settings: the provider's name (``httpreq``), its credentials
(``BERTH_ACME_DNS_ENV``), the DNS server lego checks the record with and where it checks
(``BERTH_ACME_DNS_PROPAGATION=resolvers``: challtestsrv answers no SOA query, so the zone's authoritative
nameservers cannot be found). The provider's endpoint is ``tests/proxy/dns_provider.py`` (a stand-in for a
real DNS provider's API, in front of challtestsrv).

- A named host with ``challenge: dns-01`` gets its certificate by DNS-01 (its TXT record presented, then
  cleaned up) and is served over HTTPS verified against pebble's root.
- A wildcard host ``*.<base>`` gets a wildcard certificate the same way; Traefik serves every name one label
  under it with that certificate.
- The provider's credentials reach Traefik's process only: no proxy-sync log line, event, repr or
  Traefik log holds them; a provider that refuses them gives ``evt.certificate.failed`` (stage acme) with
  the provider's answer, without them.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from cryptography import x509

from berth_common.catalogue import ApplyRoutes
from berth_common.catalogue.tls import TlsOptions
from berth_common.db.provision import provision
from berth_proxy_sync.adapters import tls_probe
from berth_proxy_sync.domain import served
from berth_proxy_sync.settings import ProxySyncSettings
from tests.proxy.acme_support import Pebble, TlsTraefik, available, until
from tests.proxy.dns_provider import HttpreqDns
from tests.proxy.support import ProxySync
from tests.proxy.test_tls_acme import app, events, scheduler_bus  # noqa: F401 (its fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not available(), reason="Debian's pebble is not installed")]


@pytest.fixture
def dns_stack(request, tmp_root: Path, unique: str, monkeypatch) -> Iterator[tuple[Pebble, TlsTraefik, HttpreqDns]]:
    root = tmp_root / f"dns01-{unique}"
    traefik = TlsTraefik(root)
    pebble = Pebble(root / "pebble", traefik.web_port, traefik.websecure_port).start()
    provider = HttpreqDns(pebble.chall_mgmt_port).start()
    env = {
        **provider.env(),
        "BERTH_ACME_DNS_RESOLVERS": pebble.dns_server,
        "BERTH_ACME_DNS_PROPAGATION": "resolvers",
        "BERTH_ACME_DIRECTORY_URL": pebble.directory_url,
        "BERTH_ACME_CA_BUNDLE": str(pebble.ca_bundle),
    }
    if getattr(request.function, "wrong_password", False):  # the platform holds other credentials
        env["BERTH_ACME_DNS_ENV"] = env["BERTH_ACME_DNS_ENV"].replace(provider.password, "not-the-password")
    for name, value in env.items():  # the one environment both read, as the cli gives it to them
        monkeypatch.setenv(name, value)
    traefik.directory_url, traefik.ca_bundle, traefik.acme_env = pebble.directory_url, str(pebble.ca_bundle), env
    traefik.start()
    yield pebble, traefik, provider
    traefik.stop()
    provider.stop()
    pebble.stop()


@pytest.fixture
async def dns_proxy(request, nats_server, database, dns_stack) -> AsyncIterator[ProxySync]:
    pebble, traefik, _ = dns_stack
    urls = await provision(database, "test-secret", ("proxy-sync",))
    settings = ProxySyncSettings(  # BERTH_ACME_* from the environment
        nats_url=nats_server.url,
        database_url=urls["proxy-sync"],
        http_port=0,
        traefik_dynamic_dir=traefik.dynamic_dir,
        traefik_api_url=traefik.api_url,
        proxy_tls_port=traefik.websecure_port,
        traefik_certs_dir=traefik.root / "traefik" / "certs",
        tls_server_addresses="127.0.0.1",
        tls_dns_server=pebble.dns_server,
        cert_watch_interval_s=0.3,
        cert_issue_timeout_s=getattr(request.function, "issue_timeout_s", 60),
        traefik_log_file=traefik.root / "traefik.log",
    )
    assert settings.acme_dns_provider == "httpreq" and settings.acme_dns_propagation == "resolvers"
    svc = await ProxySync(settings).start()
    yield svc
    await svc.stop()


def _names(der: bytes) -> list[str]:
    cert = x509.load_der_x509_certificate(der)
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)


def _no_secret_anywhere(password: str, traefik: TlsTraefik, events, out: str) -> None:  # noqa: F811
    assert password not in out
    assert password not in json.dumps(events.seen)
    assert password not in (traefik.root / "traefik.log").read_text(errors="replace")
    assert password not in (traefik.root / "traefik" / "static.yml").read_text()  # only in its environment
    assert password not in repr(ProxySyncSettings().acme()) and password not in repr(ProxySyncSettings())


async def test_a_named_host_gets_its_certificate_by_dns_01_through_the_provider(
    dns_stack,
    dns_proxy,
    events,  # noqa: F811
    scheduler_bus,  # noqa: F811
    app,  # noqa: F811
    unique,
    capsys,
):
    pebble, traefik, provider = dns_stack
    host = f"dns-{unique}.berth.test"
    tls = TlsOptions(acme=True, challenge="dns-01", redirect="auto")
    await scheduler_bus.publish(
        ApplyRoutes(route_id=f"d-{unique}", hosts=[host], upstreams=[app.url], tls=tls, team_id="t1")
    )
    await events.wait("evt.route.applied", route_id=f"d-{unique}")
    issued = await events.wait("evt.certificate.issued", timeout=90, host=host)
    assert issued["source"] == "acme" and issued["domains"] == [host]

    # DNS-01 it was: lego presented the TXT record through the provider, then cleaned it up
    fqdn = f"_acme-challenge.{host}."
    assert len(provider.presented(fqdn)) == 1 and ("cleanup", fqdn, provider.presented(fqdn)[0]) in provider.calls
    assert provider.refused == []
    root = traefik.root / "pebble-root.pem"
    root.write_text(pebble.root_pem())
    assert traefik.https(host, root)[::2] == (200, b"tls-app")  # verified against pebble's root
    _no_secret_anywhere(provider.password, traefik, events, "".join(capsys.readouterr()))


async def test_a_wildcard_host_gets_a_wildcard_certificate_by_dns_01(
    dns_stack,
    dns_proxy,
    events,  # noqa: F811
    scheduler_bus,  # noqa: F811
    app,  # noqa: F811
    unique,
    capsys,
):
    pebble, traefik, provider = dns_stack
    base = f"wild-{unique}.berth.test"
    tls = TlsOptions(acme=True, challenge="dns-01", redirect="never")
    await scheduler_bus.publish(
        ApplyRoutes(route_id=f"w-{unique}", hosts=[f"*.{base}"], upstreams=[app.url], tls=tls, application_id="a1")
    )
    await events.wait("evt.route.applied", route_id=f"w-{unique}")
    issued = await events.wait("evt.certificate.issued", timeout=90, host=f"*.{base}")  # watched on berth-probe
    assert issued["source"] == "acme" and issued["domains"] == [f"*.{base}"] and issued["application_id"] == "a1"
    assert len(provider.presented(f"_acme-challenge.{base}.")) == 1  # a wildcard's record is its base's

    root = traefik.root / "pebble-root.pem"
    root.write_text(pebble.root_pem())

    def served_under_the_wildcard() -> None:
        for name in (f"a.{base}", f"shop-2.{base}"):
            assert traefik.https(name, root)[::2] == (200, b"tls-app")  # the wildcard certificate, verified

    await until(served_under_the_wildcard)
    der = await tls_probe.leaf("127.0.0.1", traefik.websecure_port, f"a.{base}")
    assert der is not None and _names(der) == [f"*.{base}"]
    assert served.read(der).fingerprint_sha256 == issued["fingerprint_sha256"]
    assert "Pebble" in served.read(der).issuer  # pebble's, not the default certificate
    with pytest.raises(ssl.SSLCertVerificationError):  # two labels under it: not covered
        traefik.https(f"x.a.{base}", root)
    _no_secret_anywhere(provider.password, traefik, events, "".join(capsys.readouterr()))


async def test_a_provider_that_refuses_the_credentials_fails_with_its_answer_and_without_them(
    dns_stack,
    dns_proxy,
    events,  # noqa: F811
    scheduler_bus,  # noqa: F811
    app,  # noqa: F811
    unique,
    capsys,
):
    _, traefik, provider = dns_stack
    host = f"refused-{unique}.berth.test"
    tls = TlsOptions(acme=True, challenge="dns-01", redirect="auto")
    await scheduler_bus.publish(ApplyRoutes(route_id=f"r-{unique}", hosts=[host], upstreams=[app.url], tls=tls))
    failed = await events.wait("evt.certificate.failed", timeout=60, host=host)
    assert failed["stage"] == "acme" and "httpreq" in failed["reason"] and "401" in failed["reason"], failed
    assert provider.refused and provider.calls == []
    assert "not-the-password" not in failed["reason"]
    assert traefik.http(host)[0] == 200  # no certificate: still served over HTTP
    _no_secret_anywhere("not-the-password", traefik, events, "".join(capsys.readouterr()))


test_a_provider_that_refuses_the_credentials_fails_with_its_answer_and_without_them.wrong_password = True  # type: ignore[attr-defined]
test_a_provider_that_refuses_the_credentials_fails_with_its_answer_and_without_them.issue_timeout_s = 5  # type: ignore[attr-defined]
