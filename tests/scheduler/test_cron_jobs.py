"""Cron jobs on the real scheduler, bus, Postgres and Docker: a job's schedule fires runs of its command
(time moved fast: a minute of the schedule's clock is a few seconds), a failure is announced by
``evt.job.failed``, the concurrency policies forbid / replace / allow, and a scheduler restart between
firings makes no firing twice. The test plays the api: it turns each ``cmd.job.fire`` into ``cmd.job.run``
as the api's ``usecases/jobs.on_fire`` does."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from berth_common.catalogue import FireJob, RunJob, SetSchedule, job_run_id, job_schedule_id
from berth_common.runtime import serve
from berth_scheduler.bootstrap import spec as scheduler_spec
from tests.scheduler.platform import Scheduler, worker_app
from tests.support.bus_helpers import EventLog

pytestmark = [pytest.mark.slow, pytest.mark.docker]
FAST = 15  # the schedule's clock runs this much faster: "* * * * *" fires every 4 s


@dataclass
class FastScheduler(Scheduler):
    clock: Callable[[], datetime] | None = None

    async def start(self) -> FastScheduler:
        self.stop_event = asyncio.Event()
        spec = scheduler_spec(self.settings, clock=self.clock) if self.clock else scheduler_spec(self.settings)
        self.task = asyncio.create_task(serve(spec, self.stop_event))
        return self


def fast_clock() -> Callable[[], datetime]:
    start, real = datetime.now(UTC), time.monotonic()
    return lambda: start + timedelta(seconds=(time.monotonic() - real) * FAST)


class Seen(EventLog):
    """Every ``evt.run.*`` and ``evt.job.*`` on the bus once per message id, in arrival order."""

    async def subscribe(self, nc: Any) -> Seen:
        await self.follow(nc, "evt.run.>", "evt.job.>")
        return self

    def of(self, type_: str, run_id: str | None = None) -> list[dict[str, Any]]:
        return [e["data"] for e in self.events if e["type"] == type_ and run_id in (None, e["data"]["run_id"])]

    async def wait(self, type_: str, run_id: str | None = None, count: int = 1, timeout: float = 60) -> list[Any]:
        await self.until(lambda: len(self.of(type_, run_id)) >= count, timeout)
        return self.of(type_, run_id)


@pytest.fixture
async def live(platform, busybox, app_id):
    spec = worker_app(busybox, "v1")
    spec["env"] = [{"name": "GREETING", "value": "hello"}]
    dep = await platform.deploy(app_id, spec)
    assert (await platform.wait(dep))["type"] == "evt.deployment.succeeded"
    return dep, await Seen().subscribe(platform.nc)


def job_run(app_id: str, dep: str, job_id: str, command: list[str], run_id: str | None = None, **kw: Any) -> RunJob:
    return RunJob(
        run_id=run_id or uuid.uuid4().hex,
        team_id="team-1",
        application_id=app_id,
        deployment_id=dep,
        service="worker",
        command=command,
        job_id=job_id,
        job_name="nightly",
        **kw,
    )


async def send(platform, msg: RunJob) -> str:
    await platform.api.publish(msg, id=f"job-run-{msg.run_id}")
    return msg.run_id


async def test_a_failing_run_of_a_job_is_announced(platform, app_id, live):
    dep, seen = live
    run_id = await send(
        platform, job_run(app_id, dep, "j1", ["sh", "-c", "echo $GREETING; sleep 0.2; echo bad >&2; exit 4"])
    )
    [done] = await seen.wait("evt.run.finished", run_id)
    assert (done["status"], done["exit_code"]) == ("failed", 4)
    [failed] = await seen.wait("evt.job.failed", run_id)
    assert (failed["job_id"], failed["job_name"], failed["status"], failed["exit_code"]) == (
        "j1",
        "nightly",
        "failed",
        4,
    )
    assert failed["last_lines"] == ["hello", "bad"] and failed["reason"] == "exited with code 4"
    ok = await send(platform, job_run(app_id, dep, "j1", ["true"]))
    await seen.wait("evt.run.finished", ok)
    await asyncio.sleep(1)
    assert seen.of("evt.job.failed") == [failed]  # a success is not announced


async def test_forbid_skips_a_firing_while_the_previous_run_runs(platform, app_id, live):
    dep, seen = live
    first = await send(platform, job_run(app_id, dep, "j2", ["sleep", "30"], concurrency="forbid"))
    await seen.wait("evt.run.started", first)
    second = await send(platform, job_run(app_id, dep, "j2", ["true"], concurrency="forbid"))
    [skipped] = await seen.wait("evt.run.finished", second)
    assert skipped["status"] == "skipped" and first in skipped["reason"] and "forbid" in skipped["reason"]
    assert not seen.of("evt.run.started", second) and not seen.of("evt.job.failed")
    assert not seen.of("evt.run.finished", first)  # the first goes on


async def test_replace_stops_the_previous_run_and_allow_runs_both(platform, app_id, live):
    dep, seen = live
    first = await send(platform, job_run(app_id, dep, "j3", ["sleep", "60"], concurrency="replace"))
    await seen.wait("evt.run.started", first)
    second = await send(platform, job_run(app_id, dep, "j3", ["sh", "-c", "sleep 1; echo next"], concurrency="replace"))
    [stopped] = await seen.wait("evt.run.finished", first, timeout=30)
    assert stopped["status"] == "failed" and stopped["reason"].startswith("stopped: replaced by the job's next run")
    assert second in stopped["reason"]
    [done] = await seen.wait("evt.run.finished", second)
    assert (done["status"], done["last_lines"]) == ("succeeded", ["next"])
    assert not seen.of("evt.job.failed")  # a replaced run is no failure of the job

    a = await send(platform, job_run(app_id, dep, "j4", ["sh", "-c", "sleep 2; echo a"], concurrency="allow"))
    await seen.wait("evt.run.started", a)
    b = await send(platform, job_run(app_id, dep, "j4", ["sh", "-c", "echo b"], concurrency="allow"))
    assert (await seen.wait("evt.run.finished", b))[0]["status"] == "succeeded"
    assert not seen.of("evt.run.finished", a)  # still running beside it
    assert (await seen.wait("evt.run.finished", a))[0]["last_lines"] == ["a"]


async def test_a_schedule_fires_the_job_and_a_restart_makes_no_firing_twice(platform, app_id, live):
    dep, seen = live
    fired: list[dict[str, Any]] = []

    async def as_the_api(msg: Any) -> None:  # the api's on_fire: one run per firing, its id from the firing
        data = json.loads(msg.data)["data"]
        fired.append(data)
        run = job_run(app_id, dep, "j5", ["sh", "-c", "echo tick"], run_id=job_run_id(data["firing_id"]))
        await send(platform, run)

    await platform.nc.subscribe("cmd.job.fire", cb=as_the_api)
    await platform.scheduler.stop()
    platform.scheduler = FastScheduler(platform.scheduler.settings, clock=fast_clock())
    await platform.scheduler.start()
    template = FireJob(job_id="j5", team_id="team-1", application_id=app_id)
    schedule = SetSchedule(
        schedule_id=job_schedule_id("j5"),
        team_id="team-1",
        revision=1,
        cron="* * * * *",
        timezone="Europe/Berlin",
        grace_s=30,
        command_type=FireJob.TYPE,
        command=template.model_dump(mode="json"),
    )
    await platform.api.publish(schedule, id="schedule-set-j5-1")
    await seen.wait("evt.run.finished", count=2, timeout=40)
    await platform.scheduler.stop()  # between firings (or in the middle of one)
    platform.scheduler = FastScheduler(platform.scheduler.settings, clock=platform.scheduler.clock)
    await platform.scheduler.start()
    await seen.wait("evt.run.finished", count=4, timeout=60)
    await platform.scheduler.stop()
    await asyncio.sleep(1)
    firings = list(dict.fromkeys(f["firing_id"] for f in fired))
    runs = {job_run_id(f) for f in firings}
    finished = [e["run_id"] for e in seen.of("evt.run.finished")]
    assert len(finished) == len(set(finished)) >= 4  # each run finished once
    assert set(finished) <= runs and len(firings) == len(runs)  # one run per firing
    assert len({f.rsplit("-", 1)[-1] for f in firings}) == len(firings)  # no due time fired twice
    assert all(e["status"] == "succeeded" and e["last_lines"] == ["tick"] for e in seen.of("evt.run.finished"))
