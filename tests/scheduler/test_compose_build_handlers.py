"""The scheduler's handlers for a compose deployment with several builds, on a real Postgres: the start
command records the builds and sends one ``cmd.build.start`` each; the answers are recorded build by build
(a redelivered one changes nothing, a fresh handler object, as after a restart, carries on from the
table); all succeeded start the replicas with each service's image; the first failure fails the deployment
naming the service and cancels the builds still running; a cancelled deployment cancels every pending one."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from berth_common.bus import Bus
from berth_common.catalogue import (
    BuildFailed,
    BuildSucceeded,
    CancelDeployment,
    StartDeployment,
)
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
from berth_scheduler.domain import builds
from berth_scheduler.settings import SchedulerSettings
from berth_scheduler.usecases.deployments import Deployments
from tests.support.bus_helpers import prepare_schema

SCHEMA = "sched_compose_builds"
REPO = "https://git.example/acme/shop.git"


@pytest.fixture
async def sessionmaker(database):
    tables = (deployments, deployment_builds, containers, routes, route_ops, removals, scales)
    await prepare_schema(database, SCHEMA, *tables)
    engine = make_engine(database, SCHEMA, pool_size=4)
    yield make_sessionmaker(engine)
    await engine.dispose()


def handlers() -> Deployments:
    return Deployments(SchedulerSettings(secret_key="test-secret"), Sealer("test-secret"))


def start(app: str) -> StartDeployment:
    spec = {
        "name": "shop",
        "source": {"kind": "git", "repository": REPO, "ref": "main"},
        "services": [
            {"kind": "web", "name": "web", "port": 8080, "build": {"subdirectory": "front"}},
            {"kind": "worker", "name": "api", "build": {"subdirectory": "api", "dockerfile": "Containerfile"}},
            {"kind": "worker", "name": "jobs"},  # runs the application's own image
        ],
        "private_network": True,
    }
    return StartDeployment(deployment_id=str(uuid.uuid4()), application_id=app, team_id="team-1", spec=spec)


async def run(sessionmaker, fn, msg) -> list[tuple[str, dict]]:
    """One handler call in a transaction of its own; what it staged (type, data), progress lines aside."""
    bus = Bus("scheduler", "nats://127.0.0.1:1")
    async with sessionmaker() as s, s.begin():
        unit = Unit(session=s, bus=bus)
        await fn(msg, unit)
    return [(env.type, env.data) for _, env, _ in unit.staged if env.type not in ("log.line",)]


def of_type(staged: list[tuple[str, dict]], kind: str) -> list[dict]:
    return [data for t, data in staged if t == kind]


async def states(sessionmaker, deployment_id: str) -> tuple[str, dict[str, str]]:
    """The deployment's state (``<state> <outcome>`` while it is being undone) and each build's."""
    async with sessionmaker() as s:
        row = await store.load(s, deployment_id)
        found = await s.execute(
            sa.select(deployment_builds.c.service, deployment_builds.c.state).where(
                deployment_builds.c.deployment_id == deployment_id
            )
        )
        state = f"{row.state} {row.abort_outcome}" if row.abort_outcome else row.state
        return state, {r.service: r.state for r in found}


async def test_every_build_is_asked_for_waited_for_and_runs_its_service(sessionmaker, unique):
    msg = start(f"cb-{unique}")
    dep = msg.deployment_id
    short = dep.replace("-", "")[:8]
    staged = await run(sessionmaker, handlers().start, msg)
    asked = of_type(staged, "cmd.build.start")
    assert [(c["service"] if "service" in c else None, c["image_tag"]) for c in asked] == [
        (None, f"berth/shop:{short}"),
        ("web", f"berth/shop-web:{short}"),
        ("api", f"berth/shop-api:{short}"),
    ]
    assert [(c["source"]["subdirectory"], c["source"]["dockerfile"]) for c in asked] == [
        ("", "Dockerfile"),
        ("front", "Dockerfile"),
        ("api", "Containerfile"),
    ]
    assert await states(sessionmaker, dep) == ("building", {"": "pending", "web": "pending", "api": "pending"})
    ids = {c.get("service", ""): c["build_id"] for c in asked}
    assert ids["web"] == builds.service_build_id(dep, "web")

    web_done = BuildSucceeded(build_id=ids["web"], deployment_id=dep, image=f"berth/shop-web:{short}", service="web")
    staged = await run(sessionmaker, handlers().build_succeeded, web_done)
    (progressed,) = of_type(staged, "evt.deployment.progressed")
    assert progressed["detail"] == (
        f"service web: image berth/shop-web:{short}; waiting for the application's image, service api"
    )
    assert await run(sessionmaker, handlers().build_succeeded, web_done) == []  # redelivered: nothing twice

    app_done = BuildSucceeded(build_id=ids[""], deployment_id=dep, image=f"berth/shop:{short}")
    await run(sessionmaker, handlers().build_succeeded, app_done)
    api_done = BuildSucceeded(build_id=ids["api"], deployment_id=dep, image=f"berth/shop-api:{short}", service="api")
    staged = await run(sessionmaker, handlers().build_succeeded, api_done)
    assert [p["step"] for p in of_type(staged, "evt.deployment.progressed")] == ["build succeeded"]
    assert await states(sessionmaker, dep) == ("starting", {"": "succeeded", "web": "succeeded", "api": "succeeded"})
    async with sessionmaker() as s:
        row = await store.load(s, dep)
        spec = Sealer("test-secret").open(row.spec)
        recorded = sorted((c.service, c.replica) for c in await store.containers_of(s, dep))
    images = {svc.name: (svc.image.image if svc.image else None, svc.build) for svc in spec.services}
    assert images == {
        "web": (f"berth/shop-web:{short}", None),
        "api": (f"berth/shop-api:{short}", None),
        "jobs": (None, None),
    }
    assert (row.image, recorded) == (f"berth/shop:{short}", [("api", 1), ("jobs", 1), ("web", 1)])


async def test_the_first_failure_names_its_service_and_cancels_the_others(sessionmaker, unique):
    msg = start(f"cb-{unique}")
    dep = msg.deployment_id
    asked = of_type(await run(sessionmaker, handlers().start, msg), "cmd.build.start")
    ids = {c.get("service", ""): c["build_id"] for c in asked}
    failed = BuildFailed(
        build_id=ids["api"], deployment_id=dep, reason="RUN exit 3 returned 3", stage="build", service="api"
    )
    staged = await run(sessionmaker, handlers().build_failed, failed)
    (failing,) = of_type(staged, "evt.deployment.progressed")  # then undone by the rollout task
    reason = "build failed: the build of service api failed: build: RUN exit 3 returned 3"
    assert (failing["step"], failing["detail"]) == (
        "failing",
        f"{reason}; removing the new containers, routes stay as before",
    )
    assert sorted(c["build_id"] for c in of_type(staged, "cmd.build.cancel")) == sorted([ids[""], ids["web"]])
    assert await run(sessionmaker, handlers().build_failed, failed) == []  # redelivered
    late = BuildSucceeded(build_id=ids["web"], deployment_id=dep, image="berth/shop-web:x", service="web")
    assert await run(sessionmaker, handlers().build_succeeded, late) == []  # recorded, changes nothing
    assert await states(sessionmaker, dep) == ("building failed", {"": "pending", "web": "succeeded", "api": "failed"})
    async with sessionmaker() as s:
        assert (await store.load(s, dep)).abort_reason == reason


async def test_a_cancelled_deployment_cancels_every_pending_build(sessionmaker, unique):
    msg = start(f"cb-{unique}")
    dep = msg.deployment_id
    asked = of_type(await run(sessionmaker, handlers().start, msg), "cmd.build.start")
    ids = {c.get("service", ""): c["build_id"] for c in asked}
    done = BuildSucceeded(build_id=ids["web"], deployment_id=dep, image="berth/shop-web:x", service="web")
    await run(sessionmaker, handlers().build_succeeded, done)
    staged = await run(sessionmaker, handlers().cancel, CancelDeployment(deployment_id=dep))
    assert sorted(c["build_id"] for c in of_type(staged, "cmd.build.cancel")) == sorted([ids[""], ids["api"]])
    assert await states(sessionmaker, dep) == (
        "building cancelled",
        {"": "pending", "web": "succeeded", "api": "pending"},
    )
