"""Admission by the start command's own handler: a free application's deployment is recorded and started in
one transaction (containers recorded with their host ports), a busy one's waits, and two start commands
handled at once (two scheduler processes) never start two deployments of one application."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import sqlalchemy as sa

from berth_common.bus import Bus
from berth_common.catalogue import StartDeployment
from berth_common.db import Unit, make_engine, make_sessionmaker
from berth_scheduler.adapters import store
from berth_scheduler.adapters.sealing import Sealer
from berth_scheduler.adapters.tables import containers, deployments, removals, route_ops, routes, scales
from berth_scheduler.settings import SchedulerSettings
from berth_scheduler.usecases.deployments import Deployments
from tests.support.bus_helpers import prepare_schema

SCHEMA = "sched_admission"


@pytest.fixture
async def sessionmaker(database):
    await prepare_schema(database, SCHEMA, deployments, containers, routes, route_ops, removals, scales)
    engine = make_engine(database, SCHEMA, pool_size=4)
    yield make_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
def handlers() -> Deployments:
    return Deployments(SchedulerSettings(secret_key="test-secret"), Sealer("test-secret"))


def start(app: str, replicas: int = 2) -> StartDeployment:
    spec = {
        "name": "shop",
        "source": {"kind": "image", "image": "berth/busybox:1"},
        "services": [
            {"kind": "web", "name": "web", "port": 8080, "replicas": replicas, "hosts": ["web-shop.localhost"]},
            {"kind": "worker", "name": "jobs"},
        ],
    }
    return StartDeployment(deployment_id=uuid.uuid4().hex, application_id=app, team_id="team-1", spec=spec)


async def handle(h: Deployments, sessionmaker, msg: StartDeployment) -> list[str]:
    """``Deployments.start`` in a transaction of its own (the bus is only used to build envelopes: nothing is sent)."""
    bus = Bus("scheduler", "nats://127.0.0.1:1")
    async with sessionmaker() as s, s.begin():
        unit = Unit(session=s, bus=bus)
        await h.start(msg, unit)
    return [env.data.get("step", env.type) for _, env, _ in unit.staged if env.type == "evt.deployment.progressed"]


async def states(sessionmaker, app: str) -> dict[str, str]:
    async with sessionmaker() as s:
        rows = await s.execute(
            sa.select(deployments.c.id, deployments.c.state).where(deployments.c.application_id == app)
        )
        return {r.id: r.state for r in rows}


async def test_a_free_application_starts_in_the_start_commands_transaction(handlers, sessionmaker, unique):
    app = f"adm-{unique}"
    d1, d2 = start(app), start(app)
    assert await handle(handlers, sessionmaker, d1) == ["queued", "starting replicas"]
    assert await states(sessionmaker, app) == {d1.deployment_id: "starting"}
    async with sessionmaker() as s:
        rows = await store.containers_of(s, d1.deployment_id)
    assert [(r.service, r.replica, r.kind) for r in rows] == [
        ("jobs", 1, "worker"),
        ("web", 1, "web"),
        ("web", 2, "web"),
    ]
    web_ports = [r.host_port for r in rows if r.kind == "web"]
    assert all(web_ports) and len(set(web_ports)) == 2  # pinned before any container exists
    assert [r.host_port for r in rows if r.kind == "worker"] == [None]

    # busy: the next one waits for the rollout task to admit it
    assert await handle(handlers, sessionmaker, d2) == ["queued"]
    assert await states(sessionmaker, app) == {d1.deployment_id: "starting", d2.deployment_id: "queued"}
    async with sessionmaker() as s:
        assert await store.containers_of(s, d2.deployment_id) == []

    # with admission left to the rollout task, a free application's deployment stays queued here
    other = f"adm2-{unique}"
    later = Deployments(handlers.settings, handlers.sealer, admit_at_start=False)
    d3 = start(other)
    assert await handle(later, sessionmaker, d3) == ["queued"]
    assert await states(sessionmaker, other) == {d3.deployment_id: "queued"}


async def test_two_start_commands_at_once_start_one_deployment(handlers, sessionmaker, unique):
    for n in range(6):
        app = f"race{n}-{unique}"
        first, second = start(app, replicas=1), start(app, replicas=1)
        await asyncio.gather(handle(handlers, sessionmaker, first), handle(handlers, sessionmaker, second))
        assert sorted((await states(sessionmaker, app)).values()) == ["queued", "starting"], n
