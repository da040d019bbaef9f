"""Each build of a compose deployment has its own deadline (exact data): set when the builds are asked for,
pushed back when another build of the deployment ends (one waiting for a builder slot starts then), and a
build past its own deadline fails the deployment naming its service while the others are held to theirs;
on a real Postgres through the start handler, a build's answer and the building step's watch."""

from __future__ import annotations

import time
from types import SimpleNamespace

from berth_common.bus import Bus
from berth_common.catalogue import BuildSucceeded
from berth_common.db import Unit
from berth_scheduler.adapters import build_records, store
from berth_scheduler.adapters.sealing import Sealer
from berth_scheduler.domain import builds
from berth_scheduler.domain.builds import Build
from berth_scheduler.domain.machine import BUILD_ANSWER_MARGIN_S
from berth_scheduler.usecases.rollout.steps import await_build
from tests.scheduler.test_compose_build_handlers import handlers, of_type, run, sessionmaker, start, states

__all__ = ["sessionmaker"]

PLAN = [Build("", "b0", "berth/shop:1"), Build("web", "b1", "berth/shop-web:1"), Build("api", "b2", "berth/shop-api:1")]


def test_each_build_gets_its_own_deadline_and_a_slot_freed_pushes_the_others_back() -> None:
    asked = builds.asked(PLAN, 1000.0, 630.0)
    assert [b.deadline_at for b in asked] == [1630.0, 1630.0, 1630.0]
    assert builds.asked(asked, 1200.0, 630.0) == asked  # asked again (a restart): unchanged
    web_done = [asked[0], builds.answered(asked[1], builds.Succeeded("berth/shop-web:1")), asked[2]]
    assert web_done[1] is not None
    moved = builds.extended([b for b in web_done if b.service != "web"], 1500.0, 630.0)  # type: ignore[union-attr]
    assert [(b.service, b.deadline_at) for b in moved] == [("", 2130.0), ("api", 2130.0)]
    assert builds.extended(moved, 1400.0, 630.0) == []  # already later than that
    assert builds.next_deadline(asked) == 1630.0
    late = builds.overdue([asked[0], moved[1]], 1700.0)
    assert [b.service for b in late] == [""]
    assert builds.overdue_reason([*late, asked[2]], 600.0) == (
        "the build of the application's image, service api did not finish within 600s"
    )


async def test_the_builds_deadlines_on_the_database(sessionmaker, unique) -> None:
    msg = start(f"dl-{unique}")
    dep = msg.deployment_id
    before = time.time()
    asked = of_type(await run(sessionmaker, handlers().start, msg), "cmd.build.start")
    timeout = handlers().settings.build_timeout_s
    budget = timeout + BUILD_ANSWER_MARGIN_S
    async with sessionmaker() as s:
        first = {b.service: b.deadline_at for b in await build_records.builds_of(s, dep)}
    assert all(before + budget <= d <= time.time() + budget for d in first.values()), first  # type: ignore[operator]

    ids = {c.get("service", ""): c["build_id"] for c in asked}
    done = BuildSucceeded(build_id=ids["web"], deployment_id=dep, image="berth/shop-web:x", service="web")
    answered_at = time.time()
    await run(sessionmaker, handlers().build_succeeded, done)
    async with sessionmaker() as s:
        later = {b.service: b.deadline_at for b in await build_records.builds_of(s, dep)}
    assert later["web"] == first["web"]  # it ended: its deadline no longer counts
    assert later["api"] >= answered_at + budget and later[""] >= answered_at + budget  # type: ignore[operator]

    # the building step's watch: past the api build's deadline only, it fails naming that build alone
    async with sessionmaker() as s, s.begin():
        recorded = await build_records.builds_of(s, dep)
        api = next(b for b in recorded if b.service == "api")
        await build_records.save_build(s, dep, builds.Build(**{**api.__dict__, "deadline_at": time.time() - 1}))

    async def in_unit(body):
        async with sessionmaker() as s, s.begin():
            return await body(Unit(session=s, bus=Bus("scheduler", "nats://127.0.0.1:1")))

    sealer = Sealer("test-secret")
    rt = SimpleNamespace(sessionmaker=sessionmaker, clock=time.time, sealer=sealer, units=SimpleNamespace(run=in_unit))
    async with sessionmaker() as s:
        row = await store.load(s, dep)

    async def no_wait(seconds: float) -> None:
        raise AssertionError(f"waited {seconds}s instead of failing")

    await await_build(rt, store.rollout_of(row), row, no_wait)  # type: ignore[arg-type]
    assert await states(sessionmaker, dep) == ("building failed", {"": "pending", "web": "succeeded", "api": "pending"})
    async with sessionmaker() as s:
        reason = (await store.load(s, dep)).abort_reason
    assert reason == f"the build of service api did not finish within {timeout:g}s"
