"""Renewal before expiry, end to end against pebble: certificates that live minutes, not months.

pebble issues certificates valid ``VALIDITY_S`` (its ``certificateValidityPeriod``); Traefik is told they
last under a day (``BERTH_ACME_CERTIFICATE_HOURS=1``), so it looks for certificates to renew every minute
(from its start) and renews one that ends within 20 minutes (Traefik's ``getCertificateRenewDurations``;
pebble 2.4 offers no renewal information, so the time-based rule applies). A host gets its certificate, and
within a minute or two
Traefik serves a new one for it (another serial and fingerprint, a later end), which proxy-sync's
certificate watch reports as ``evt.certificate.issued``; being renewed on time, it is never reported as
expiring.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from berth_common.catalogue import ApplyRoutes
from berth_common.catalogue.tls import TlsOptions
from berth_common.db.provision import provision
from berth_proxy_sync.adapters import tls_probe
from berth_proxy_sync.domain import served
from berth_proxy_sync.settings import ProxySyncSettings
from tests.proxy.acme_support import Pebble, TlsTraefik, available
from tests.proxy.support import ProxySync
from tests.proxy.test_tls_acme import app, events, scheduler_bus  # noqa: F401 (its fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not available(), reason="Debian's pebble is not installed")]

# In Traefik's 20-minute window from its issue: renewed at Traefik's next check (at most a minute later), not at
# the second one (a certificate entering the window 80 s after its issue cost the test a minute of waiting).
VALIDITY_S = 19 * 60 + 40
RENEW_WITHIN_S = 240  # the next check (up to a minute), the order itself, and a loaded machine


@pytest.fixture
def stack(tmp_root: Path, unique: str) -> Iterator[tuple[Pebble, TlsTraefik]]:
    root = tmp_root / f"renew-{unique}"
    traefik = TlsTraefik(root, acme_env={"BERTH_ACME_CERTIFICATE_HOURS": "1"})
    pebble = Pebble(root / "pebble", traefik.web_port, traefik.websecure_port, validity_s=VALIDITY_S).start()
    traefik.directory_url, traefik.ca_bundle = pebble.directory_url, str(pebble.ca_bundle)
    traefik.start()
    yield pebble, traefik
    traefik.stop()
    pebble.stop()


@pytest.fixture
async def proxy(nats_server, database, stack) -> AsyncIterator[ProxySync]:
    pebble, traefik = stack
    urls = await provision(database, "test-secret", ("proxy-sync",))
    settings = ProxySyncSettings(
        nats_url=nats_server.url,
        database_url=urls["proxy-sync"],
        http_port=0,
        traefik_dynamic_dir=traefik.dynamic_dir,
        traefik_api_url=traefik.api_url,
        proxy_tls_port=traefik.websecure_port,
        traefik_certs_dir=traefik.root / "traefik" / "certs",
        tls_server_addresses="127.0.0.1",
        tls_dns_server=pebble.dns_server,
        cert_watch_interval_s=0.5,
        cert_issue_timeout_s=90,
        traefik_log_file=traefik.root / "traefik.log",
    )
    svc = await ProxySync(settings).start()
    yield svc
    await svc.stop()


async def _served(traefik: TlsTraefik, host: str) -> x509.Certificate:
    der = await tls_probe.leaf("127.0.0.1", traefik.websecure_port, host)
    assert der is not None
    return x509.load_der_x509_certificate(der)


async def test_traefik_renews_a_short_lived_certificate_before_its_end_and_the_watch_reports_the_new_one(
    stack,
    proxy,
    events,  # noqa: F811
    scheduler_bus,  # noqa: F811
    app,  # noqa: F811
    unique,
):
    pebble, traefik = stack
    host = f"renew-{unique}.berth.test"
    await scheduler_bus.publish(
        ApplyRoutes(
            route_id=f"r-{unique}",
            hosts=[host],
            upstreams=[app.url],
            tls=TlsOptions(acme=True, redirect="never"),
            team_id="t1",
            application_id="a1",
        )
    )
    first = await events.wait("evt.certificate.issued", timeout=90, host=host)
    issued_at = time.monotonic()
    old = await _served(traefik, host)
    assert served.read(old.public_bytes(Encoding.DER)).fingerprint_sha256 == first["fingerprint_sha256"]
    lifetime = old.not_valid_after_utc - old.not_valid_before_utc
    assert abs(lifetime.total_seconds() - VALIDITY_S) < 5, lifetime  # pebble's short-lived certificate

    # Traefik renews it on its own: a new certificate, served and reported, long before the old one ends
    deadline = issued_at + RENEW_WITHIN_S
    renewed = None
    while renewed is None and time.monotonic() < deadline:
        renewed = next(
            (
                e["data"]
                for e in events.seen
                if e["type"] == "evt.certificate.issued"
                and e["data"].get("host") == host
                and e["data"]["fingerprint_sha256"] != first["fingerprint_sha256"]
            ),
            None,
        )
        await asyncio.sleep(0.5)
    assert renewed is not None, f"no renewal within {RENEW_WITHIN_S}s: {[e['type'] for e in events.seen]}"
    renew_s = time.monotonic() - issued_at
    assert renewed["source"] == "acme" and renewed["route_id"] == f"r-{unique}" and renewed["team_id"] == "t1"
    assert renewed["application_id"] == "a1" and host in renewed["domains"]
    assert renewed["not_after"] > first["not_after"]  # ISO 8601 in UTC: ordered as text

    new = await _served(traefik, host)
    assert new.serial_number != old.serial_number
    assert new.not_valid_after_utc > old.not_valid_after_utc
    root = traefik.root / "pebble-root.pem"
    root.write_text(pebble.root_pem())
    assert traefik.https(host, root)[:3:2] == (200, b"tls-app")  # verified against pebble's root
    assert old.not_valid_after_utc.timestamp() - time.time() > 60  # renewed before the end, not after
    # renewed on time, so never told as expiring (though it always ends within BERTH_CERT_EXPIRING_DAYS)
    assert not [e for e in events.seen if e["type"] == "evt.certificate.expiring"]
    print(f"renew_s={renew_s:.1f}")
