"""``evt.certificates.changed`` at the scheduler, on a real Postgres: the application's waiting deployments
and the last that succeeded carry the new certificates in their spec (the key sealed at rest, as the start
command's), so a later scale or route put back sends them; a failed one is left as it was; an older
refresh than the one a spec has changes nothing; ``TlsOptions.refreshed`` keeps other hosts'
certificates and merges one that also serves them."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from berth_common.bus import Bus
from berth_common.catalogue import CertificatesChanged, CustomCertificate, StartDeployment, TlsOptions
from berth_common.db import Unit, make_engine, make_sessionmaker
from berth_scheduler.adapters import store
from berth_scheduler.adapters.sealing import Sealer
from berth_scheduler.adapters.tables import (
    containers,
    deployment_builds,
    deployments,
    removals,
    route_ops,
    routes,
    scales,
)
from berth_scheduler.domain.route_tls import apply_routes, of_spec
from berth_scheduler.domain.routing import RouteOp
from berth_scheduler.settings import SchedulerSettings
from berth_scheduler.usecases.certificates_refresh import CertificatesRefresh
from berth_scheduler.usecases.deployments import Deployments
from tests.support.bus_helpers import prepare_schema

SCHEMA = "sched_cert_refresh"
HOST = "shop.example.com"
KEY = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIB0wCpVq1RwM\n-----END PRIVATE KEY-----\n"
CHAIN = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def cert(cid: str, *hosts: str) -> CustomCertificate:
    return CustomCertificate(certificate_id=cid, hosts=list(hosts), chain_pem=CHAIN, key=SecretStr(KEY))


@pytest.fixture
async def sessionmaker(database):
    await prepare_schema(
        database, SCHEMA, deployments, deployment_builds, containers, routes, route_ops, removals, scales
    )
    engine = make_engine(database, SCHEMA, pool_size=4)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def run(sessionmaker, fn, msg) -> None:
    async with sessionmaker() as s, s.begin():
        await fn(msg, Unit(session=s, bus=Bus("scheduler", "nats://127.0.0.1:1")))


def start(app: str) -> StartDeployment:
    spec = {
        "name": "shop",
        "source": {"kind": "image", "image": "nginx:1.27"},
        "services": [{"kind": "web", "name": "web", "port": 8080, "hosts": [HOST, "web-shop.localhost"]}],
    }
    return StartDeployment(deployment_id=str(uuid.uuid4()), application_id=app, team_id="team-1", spec=spec)


async def spec_of(sessionmaker, deployment_id: str):
    async with sessionmaker() as s:
        row = await store.load(s, deployment_id)
    return row


async def test_the_live_and_waiting_deployments_carry_the_new_certificates(sessionmaker):
    sealer = Sealer("test-secret")
    handlers, refresh = Deployments(SchedulerSettings(secret_key="test-secret"), sealer), CertificatesRefresh(sealer)
    app = uuid.uuid4().hex
    waiting, failed = start(app), start(app)
    await run(sessionmaker, handlers.start, waiting)
    await run(sessionmaker, handlers.start, failed)
    async with sessionmaker() as s, s.begin():
        await s.execute(sa.update(deployments).where(deployments.c.id == failed.deployment_id).values(state="failed"))
    before_failed = (await spec_of(sessionmaker, failed.deployment_id)).spec

    msg = CertificatesChanged(
        team_id="team-1", application_id=app, hosts=[HOST], certificates=[cert("c1", HOST)], revision=10
    )
    await run(sessionmaker, refresh.refresh, msg)
    row = await spec_of(sessionmaker, waiting.deployment_id)
    assert "PRIVATE KEY" not in str(row.spec)  # sealed at rest
    spec = sealer.open(row.spec)
    assert spec.tls.certificates_revision == 10
    assert [(c.certificate_id, c.hosts, c.reveal()) for c in spec.tls.certificates] == [("c1", [HOST], KEY)]
    assert (await spec_of(sessionmaker, failed.deployment_id)).spec == before_failed
    # what a later route command of the application carries
    op = RouteOp("apply", "shop-web", (HOST, "web-shop.localhost"), ("http://10.0.0.5:8080",), "local")
    sent = apply_routes(op, 4, of_spec(spec, "team-1", app))
    assert sent.tls is not None and [c.certificate_id for c in sent.tls.certificates] == ["c1"]
    assert sent.application_id == app

    # an older refresh (delivered late) changes nothing
    await run(sessionmaker, refresh.refresh, msg.model_copy(update={"certificates": [], "revision": 5}))
    assert sealer.open((await spec_of(sessionmaker, waiting.deployment_id)).spec) == spec

    # once it succeeded it is the live one: a deletion reaches it
    async with sessionmaker() as s, s.begin():
        await s.execute(
            sa.update(deployments)
            .where(deployments.c.id == waiting.deployment_id)
            .values(state="succeeded", finished_at=1.0)
        )
    await run(sessionmaker, refresh.refresh, msg.model_copy(update={"certificates": [], "revision": 20}))
    live = sealer.open((await spec_of(sessionmaker, waiting.deployment_id)).spec)
    assert live.tls.certificates == [] and live.tls.certificates_revision == 20
    assert of_spec(live, "team-1", app) is not None  # the revision is kept with the options
    assert "certificates_revision" not in TlsOptions().model_dump(mode="json")  # a deployment's own: not sent


def test_a_refresh_replaces_only_its_hosts_certificates():
    other = cert("c0", "api.example.com", HOST)
    tls = TlsOptions(acme=True, certificates=[other, cert("c9", "old.example.com")])
    new = tls.refreshed([HOST, "api.example.com"], [cert("c1", HOST)], 3)
    assert [(c.certificate_id, c.hosts) for c in new.certificates] == [("c1", [HOST]), ("c9", ["old.example.com"])]
    assert new.acme and new.certificates_revision == 3
    # a certificate of the refresh that also served a host outside it keeps that host
    kept = tls.refreshed([HOST], [cert("c0", HOST)], 4)
    assert [(c.certificate_id, c.hosts) for c in kept.certificates] == [
        ("c0", [HOST, "api.example.com"]),
        ("c9", ["old.example.com"]),
    ]
    assert tls.refreshed([HOST, "api.example.com", "old.example.com"], [], 5).certificates == []
