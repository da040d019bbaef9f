"""``evt.certificates.changed`` with the real scheduler and proxy-sync on one bus (both consume it): after
an application is live, the change reaches proxy-sync's route (the certificate with the application as its
owner, same generation) and the scheduler's live deployment (its spec), without a deployment."""

from __future__ import annotations

import asyncio
import time

import sqlalchemy as sa
from pydantic import SecretStr

from berth_common.catalogue import CertificatesChanged, CustomCertificate
from berth_common.db import make_engine, make_sessionmaker
from berth_scheduler.adapters import store
from berth_scheduler.adapters.sealing import Sealer
from tests.proxy.acme_support import cert_pair
from tests.scheduler.platform import wait_served, web_app


async def _until(fn, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        found = await fn()
        if found:
            return found
        assert time.monotonic() < deadline, "never happened"
        await asyncio.sleep(0.2)


async def test_a_change_reaches_the_live_route_and_the_live_spec(platform, app_id, busybox, unique):
    host = f"cc-{unique}.localhost"
    dep = await platform.deploy(app_id, web_app(busybox, "v1", host), drain_grace_s=0)
    assert (await platform.wait(dep, timeout=90))["type"] == "evt.deployment.succeeded"
    await wait_served(platform, host, "v1")

    _, chain, key = cert_pair([host])
    cert = CustomCertificate(certificate_id=f"c-{unique}", hosts=[host], chain_pem=chain, key=SecretStr(key))
    changed = CertificatesChanged(
        team_id="team-1", application_id=app_id, hosts=[host], certificates=[cert], revision=7
    )
    await platform.api.publish(changed)

    proxy_db = make_engine(platform.proxy.settings.database_url.get_secret_value(), "proxy")
    sched_db = make_engine(platform.scheduler.settings.database_url.get_secret_value(), "scheduler")
    try:

        async def route_tls():
            async with proxy_db.connect() as c:
                rows = (await c.execute(sa.text("SELECT tls, generation FROM routes WHERE removed = false"))).all()
            return [r for r in rows if r.tls and r.tls.get("certificates")]

        (route,) = await _until(route_tls)
        assert [c["certificate_id"] for c in route.tls["certificates"]] == [f"c-{unique}"]
        assert route.tls["certificates_revision"] == 7 and "PRIVATE KEY" not in str(route.tls)
        sessionmaker = make_sessionmaker(sched_db)

        async def live_spec():
            async with sessionmaker() as s:
                row = await store.load(s, dep)
            spec = Sealer("test-secret").open(row.spec)
            return spec if spec.tls.certificates else None

        spec = await _until(live_spec)
        assert [(c.certificate_id, c.hosts, c.reveal()) for c in spec.tls.certificates] == [
            (f"c-{unique}", [host], key)
        ]
        await wait_served(platform, host, "v1")  # still served (this Traefik has no HTTPS entry point)
    finally:
        await proxy_db.dispose()
        await sched_db.dispose()
