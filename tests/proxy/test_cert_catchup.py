"""A route command built before the newest certificate refresh of its application (the scheduler's, from a
deployment's spec made before an upload) serves the refresh's certificates, against a real Traefik:

- taken after the refresh: caught up when proxy-sync takes it;
- taken while a refresh is being recorded (the race at upload time): its batch waits for the refresh's
  lock and catches up inside its transaction, so the older set is never written.
"""

from __future__ import annotations

import asyncio

import pytest
import yaml
from pydantic import SecretStr

from berth_common.catalogue import ApplyRoutes, CertificatesChanged
from berth_common.catalogue.tls import CustomCertificate, TlsOptions
from berth_common.db import make_engine, make_sessionmaker, run_migrations
from berth_common.db.provision import provision, schema_for
from berth_proxy_sync.adapters import cert_repo, repo
from berth_proxy_sync.bootstrap import VERSIONS
from berth_proxy_sync.domain.tls import Refresh, caught_up, certificate_file
from tests.proxy.acme_support import available, cert_pair, until
from tests.proxy.test_cert_refresh import api_bus  # noqa: F401 (its fixture)
from tests.proxy.test_tls_acme import app, events, proxy, scheduler_bus, stack  # noqa: F401 (its fixtures)


def _cert(cid: str, hosts: list[str]) -> tuple[str, CustomCertificate]:
    ca, chain, key = cert_pair(hosts)
    return ca, CustomCertificate(certificate_id=cid, hosts=hosts, chain_pem=chain, key=SecretStr(key))


def test_a_route_catches_up_with_a_newer_refresh_of_its_application_only():
    _, old = _cert("old", ["a.example.com", "b.example.com"])
    _, new = _cert("new", ["a.example.com"])
    tls = TlsOptions(certificates=[old])
    refresh = Refresh(7, ("a.example.com",), (new,))
    up = caught_up(tls, ["a.example.com", "b.example.com"], refresh)
    assert up is not None and up.certificates_revision == 7
    assert [(c.certificate_id, c.hosts) for c in up.certificates] == [
        ("new", ["a.example.com"]),
        ("old", ["b.example.com"]),  # a host the refresh does not name keeps its certificate
    ]
    assert caught_up(up, ["a.example.com", "b.example.com"], refresh) is None  # it has it
    assert caught_up(tls.model_copy(update={"certificates_revision": 8}), ["a.example.com"], refresh) is None
    assert caught_up(None, ["c.example.com"], refresh) is None  # nothing it serves changes
    deleted = caught_up(tls, ["a.example.com"], Refresh(9, ("a.example.com", "b.example.com"), ()))
    assert deleted is not None and deleted.certificates == []


def _named(traefik, route_id: str) -> list[str]:
    config = yaml.safe_load((traefik.dynamic_dir / f"{route_id}.yml").read_text())
    return [c["certFile"].rsplit("/", 1)[1] for c in config.get("tls", {}).get("certificates", [])]


@pytest.mark.slow
@pytest.mark.skipif(not available(), reason="Debian's pebble is not installed")
@pytest.mark.parametrize("acme", [True, False])  # caught up when taken (ACME), or in its batch
async def test_a_command_from_an_older_spec_serves_the_refreshed_certificate(
    acme,
    stack,  # noqa: F811
    proxy,  # noqa: F811
    events,  # noqa: F811
    scheduler_bus,  # noqa: F811
    api_bus,  # noqa: F811
    app,  # noqa: F811
    unique,
):
    _, traefik = stack
    host, app_id, route_id = f"race-{unique}.berth.test", f"a-{unique}", f"r-{unique}"
    _, first = _cert(f"one-{unique}", [host])
    second_ca, second = _cert(f"two-{unique}", [host])
    spec_tls = TlsOptions(acme=acme, certificates=[first], redirect="never")  # the spec, before the upload
    cmd = ApplyRoutes(route_id=route_id, hosts=[host], upstreams=[app.url], tls=spec_tls, application_id=app_id)
    await scheduler_bus.publish(cmd.model_copy(update={"generation": 1}))
    await events.wait("evt.route.applied", route_id=route_id, generation=1)

    await api_bus.publish(
        CertificatesChanged(team_id="t1", application_id=app_id, hosts=[host], certificates=[second], revision=10)
    )
    ca = traefik.root / f"two-{unique}.pem"
    ca.write_text(second_ca)
    await until(lambda: traefik.https(host, ca))
    # the scheduler, not having handled the refresh yet, scales the application: the older set
    await scheduler_bus.publish(cmd.model_copy(update={"generation": 2}))
    await events.wait("evt.route.applied", route_id=route_id, generation=2)
    assert _named(traefik, route_id) == [f"{certificate_file(f'two-{unique}')}.crt"]
    assert traefik.https(host, ca)[::2] == (200, b"tls-app")


@pytest.mark.slow
@pytest.mark.skipif(not available(), reason="Debian's pebble is not installed")
async def test_a_command_taken_while_a_refresh_is_recorded_catches_up_in_its_batch(
    stack,  # noqa: F811
    proxy,  # noqa: F811
    events,  # noqa: F811
    scheduler_bus,  # noqa: F811
    app,  # noqa: F811
    unique,
):
    _, traefik = stack
    host, app_id, route_id = f"batch-{unique}.berth.test", f"b-{unique}", f"q-{unique}"
    _, first = _cert(f"one-{unique}", [host])
    second_ca, second = _cert(f"two-{unique}", [host])
    cmd = ApplyRoutes(
        route_id=route_id,
        hosts=[host],
        upstreams=[app.url],
        tls=TlsOptions(certificates=[first], redirect="never"),
        application_id=app_id,
    )
    await scheduler_bus.publish(cmd.model_copy(update={"generation": 1}))
    await events.wait("evt.route.applied", route_id=route_id, generation=1)

    engine = make_engine(proxy.settings.database_url.get_secret_value(), schema_for("proxy-sync"))
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            # a refresh being recorded: its lock held, its row written but not committed
            await cert_repo.lock_refreshes(session, app_id)
            assert await cert_repo.take_refresh(session, app_id, Refresh(10, (host,), (second,)))
            await scheduler_bus.publish(cmd.model_copy(update={"generation": 2}))  # taken now: sees no refresh
            await asyncio.sleep(1.5)
            assert not [e for e in events.seen if e["data"].get("generation") == 2]  # its batch waits
        applied = await events.wait("evt.route.applied", route_id=route_id, generation=2)
        assert applied["hosts"] == [host]
        assert _named(traefik, route_id) == [f"{certificate_file(f'two-{unique}')}.crt"]  # never the older set
        ca = traefik.root / f"two-{unique}.pem"
        ca.write_text(second_ca)
        assert (await until(lambda: traefik.https(host, ca)))[::2] == (200, b"tls-app")  # type: ignore[index]
    finally:
        await engine.dispose()


async def test_a_refresh_waits_for_the_route_batches_of_its_application(database):
    urls = await provision(database, "test-secret", ("proxy-sync",))
    engine = make_engine(urls["proxy-sync"], schema_for("proxy-sync"))
    await run_migrations(engine, schema_for("proxy-sync"), VERSIONS)
    sessions = make_sessionmaker(engine)
    key = cert_repo.REFRESH_LOCK.format("app-1")
    try:
        async with sessions() as batch, batch.begin():
            assert await repo.try_locks(batch, [key], [True]) == [True]  # a batch's shared lock
            async with sessions() as other, other.begin():  # another batch shares it
                assert await repo.try_locks(other, [key], [True]) == [True]

            async def refresh() -> None:
                async with sessions() as session, session.begin():
                    await cert_repo.lock_refreshes(session, "app-1")

            waiting = asyncio.create_task(refresh())
            await asyncio.sleep(0.5)
            assert not waiting.done()  # until the batch commits
        await asyncio.wait_for(waiting, 5)
        async with sessions() as session, session.begin():
            await cert_repo.lock_refreshes(session, "app-1")
            async with sessions() as batch, batch.begin():  # a batch meanwhile: waits for a later one
                assert await repo.try_locks(batch, [key], [True]) == [False]
    finally:
        await engine.dispose()
