"""The marks of start calls that broke with their engine (``usecases/rollout/lost_task.py``), on the real
database and engine: a replica removed and made again for its lost task loses its mark, so its later
removal runs no helper; a start carried out clears a mark, and a start of an unmarked container writes
nothing; a pre-deploy job's container, which has no container record, is marked on its deployment, and its
removal runs the helper first when marked, or when the engine refuses it for the task it still holds."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from structlog.testing import capture_logs

from berth_common import labels
from berth_common.db import make_engine, make_sessionmaker
from berth_common.db.provision import schema_for
from berth_common.docker import DockerEngines, DockerUnavailable, local_engine
from berth_common.images import BUSYBOX_IMAGE
from berth_scheduler.adapters import store, tables
from berth_scheduler.adapters.docker import ContainerInfo, DockerExecutor, DockerOperationError
from berth_scheduler.domain.routing import LOCAL
from berth_scheduler.domain.runs import JOB_LABEL, job_container_name
from berth_scheduler.usecases.rollout.lost_task import (
    clear_lost_task,
    remove_containers,
    start,
    start_job,
    started,
)
from berth_scheduler.usecases.rollout.pre_deploy import remove_job
from berth_scheduler.usecases.rollout.revive import revive
from tests.support.procs import provisioned

BROKE = "its start broke with the engine"
REFUSED = "the engine refused its removal: it still holds its task"


@pytest.fixture
async def sessionmaker(database: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    urls = await provisioned(database, "test-secret", ("scheduler",))
    engine = make_engine(urls["scheduler"], schema_for("scheduler"))
    yield make_sessionmaker(engine)
    await engine.dispose()


class Counted:
    """A sessionmaker that counts the sessions opened through it."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker, self.opened = sessionmaker, 0

    def __call__(self) -> AsyncSession:
        self.opened += 1
        return self.sessionmaker()


class Starts:
    """An engine's answers to start calls: carried out, or ``fails``."""

    def __init__(self, fails: Exception | None = None) -> None:
        self.fails, self.started = fails, list[str]()

    async def start(self, name: str) -> None:
        if self.fails is not None:
            raise self.fails
        self.started.append(name)


class RefusesRemoval(DockerExecutor):
    """The local engine, but its first removal of ``name`` is refused as an engine that holds its task."""

    def __init__(self, name: str) -> None:
        super().__init__(DockerEngines(local_engine(None)))
        self.refuse: str | None = name

    async def remove(self, name: str) -> None:
        if name == self.refuse:
            self.refuse = None
            info = await self.inspect(name) or {}
            raise DockerOperationError(f"docker remove {name}: task {info['Id']}: already exists", 409)
        await super().remove(name)


class Sweeps:
    """The servers a revival asked to sweep for stuck starts (``usecases/rollout/orphans.py``)."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def after_restart(self, server_id: str, _docker: Any) -> None:
        self.asked.append(server_id)


def context(sessionmaker: Any, docker: Any = None) -> Any:
    async def on(_server: str) -> Any:
        return docker

    fleet = SimpleNamespace(socket=None, docker=on)
    return SimpleNamespace(fleet=fleet, sessionmaker=sessionmaker, orphans=Sweeps())


def helped(logs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(container, reason) of each helper run before a removal."""
    return [(e["container"], e["reason"]) for e in logs if e["event"].startswith("a removed container's start")]


def create(name: str, app_id: str, *more_labels: str) -> str:
    """A container made and never started, as one whose start the engine's crash left no trace of."""
    cmd = ["docker", "create", "--name", name, "--label", f"{labels.APP}={app_id}"]
    cmd += [arg for label in more_labels for arg in ("--label", label)]
    return subprocess.run(
        [*cmd, BUSYBOX_IMAGE, "sleep", "600"], capture_output=True, text=True, check=True
    ).stdout.strip()


async def record(sessionmaker: Any, name: str, app_id: str, *, broke: bool = False) -> None:
    values = {"name": name, "deployment_id": "d1", "application_id": app_id, "service": "web", "kind": "web"}
    async with sessionmaker() as s, s.begin():
        await store.record_container(s, {**values, "replica": 1})
        if broke:
            await store.note_start_broke(s, name)


async def deployment(sessionmaker: Any, deployment_id: str, app_id: str, *, broke: bool = False) -> None:
    async with sessionmaker() as s, s.begin():
        values = {"application_id": app_id, "team_id": "t", "state": "starting", "spec": {}, "timeouts": {}}
        await s.execute(
            sa.insert(tables.deployments).values(id=deployment_id, needs_build=False, created_at=0.0, **values)
        )
        if broke:
            await store.note_job_start_broke(s, deployment_id)


async def marked(sessionmaker: Any, names: list[str]) -> set[str]:
    async with sessionmaker() as s:
        return await store.broken_starts(s, names)


async def marked_jobs(sessionmaker: Any, deployment_ids: list[str]) -> set[str]:
    async with sessionmaker() as s:
        return await store.broken_jobs(s, deployment_ids)


async def test_a_replica_made_again_for_its_lost_task_loses_its_mark_and_its_later_removal_runs_no_helper(
    sessionmaker: Any, docker: DockerExecutor, app_id: str
):
    made_again, still_marked = f"berth-{app_id}-web-d1-1", f"berth-{app_id}-web-d1-2"
    rt = context(sessionmaker, docker)
    for name in (made_again, still_marked):
        await record(sessionmaker, name, app_id, broke=True)
        create(name, app_id)
    with capture_logs() as logs:
        await clear_lost_task(rt, LOCAL, docker, made_again)
    assert [e["container"] for e in logs if e["event"].startswith("the engine lost the task")] == [made_again]
    assert await docker.inspect(made_again) is None
    assert await marked(sessionmaker, [made_again, still_marked]) == {still_marked}

    create(made_again, app_id)  # made again: its start is carried out, then it exits
    for name in (made_again, still_marked):
        await start(rt, docker, name, broke=name in await marked(sessionmaker, [name]))
        await docker.stop(name, 0)
    assert await marked(sessionmaker, [made_again, still_marked]) == set()  # the second start cleared its mark
    async with sessionmaker() as s, s.begin():
        await store.note_start_broke(s, still_marked)  # as if that start had broken too
    found = await docker.list_containers({labels.APP: app_id})
    assert sorted((c.name, c.state) for c in found) == [(made_again, "exited"), (still_marked, "exited")]
    with capture_logs() as logs:
        await remove_containers(rt, LOCAL, docker, found)
    assert helped(logs) == [(still_marked, BROKE)]  # the one made again, exited, is the engine's alone
    assert await docker.list_containers({labels.APP: app_id}) == []


async def test_a_start_carried_out_clears_a_mark_and_a_start_of_an_unmarked_container_writes_nothing(
    sessionmaker: Any, app_id: str
):
    name = f"berth-{app_id}-web-d1-1"
    await record(sessionmaker, name, app_id)
    counted = Counted(sessionmaker)
    rt = context(counted)
    await start(rt, Starts(), name)
    await started(rt, name, False)
    assert counted.opened == 0 and await marked(sessionmaker, [name]) == set()
    with pytest.raises(DockerUnavailable):
        await start(rt, Starts(DockerUnavailable("the connection broke")), name)
    assert counted.opened == 1 and await marked(sessionmaker, [name]) == {name}
    with pytest.raises(DockerOperationError):  # refused: the engine may hold its task, the mark stays
        await start(rt, Starts(DockerOperationError(f"docker start {name}: id already in use")), name, broke=True)
    assert await marked(sessionmaker, [name]) == {name}
    await start(rt, Starts(), name, broke=True)
    assert await marked(sessionmaker, [name]) == set()
    async with sessionmaker() as s, s.begin():
        await store.note_start_broke(s, name)
    await started(rt, name, True)  # found running: the engine knows its task
    assert await marked(sessionmaker, [name]) == set()


async def test_a_pre_deploy_jobs_broken_start_is_marked_on_its_deployment(sessionmaker: Any, app_id: str):
    deployment_id, other = f"{app_id}-d1", f"{app_id}-d2"
    for d in (deployment_id, other):
        await deployment(sessionmaker, d, app_id)
    name = job_container_name(deployment_id)
    counted = Counted(sessionmaker)
    rt = context(counted)
    await start_job(rt, Starts(), deployment_id, name)
    assert counted.opened == 0
    with pytest.raises(DockerUnavailable):
        await start_job(rt, Starts(DockerUnavailable("no answer")), deployment_id, name)
    assert await marked_jobs(sessionmaker, [deployment_id, other]) == {deployment_id}
    async with sessionmaker() as s:
        assert (await store.load(s, deployment_id)).job_start_broke  # what ``run_job`` reads with the deployment
    await start_job(rt, Starts(), deployment_id, name, broke=True)
    assert await marked_jobs(sessionmaker, [deployment_id, other]) == set()


async def test_a_pre_deploy_jobs_container_has_the_helper_before_its_removal_when_its_start_broke(
    sessionmaker: Any, docker: DockerExecutor, app_id: str
):
    broke, plain = f"{app_id}-d1", f"{app_id}-d2"
    rt = context(sessionmaker, docker)
    for d in (broke, plain):
        await deployment(sessionmaker, d, app_id, broke=d == broke)
        create(job_container_name(d), app_id, f"{JOB_LABEL}={d}")
    with capture_logs() as logs:
        assert await remove_job(rt, broke, [LOCAL])
    assert helped(logs) == [(job_container_name(broke), BROKE)]
    with capture_logs() as logs:
        assert await remove_job(rt, plain, [])
    assert helped(logs) == []  # never started, its start never broke: the engine's removal alone
    assert await docker.list_containers({labels.APP: app_id}) == []
    assert not await remove_job(rt, plain, [])


async def test_a_pre_deploy_jobs_container_whose_removal_the_engine_refuses_for_its_task_has_the_helper(
    sessionmaker: Any, app_id: str
):
    deployment_id = f"{app_id}-d1"
    name = job_container_name(deployment_id)
    await deployment(sessionmaker, deployment_id, app_id)
    create(name, app_id, f"{JOB_LABEL}={deployment_id}")
    docker = RefusesRemoval(name)
    try:
        with capture_logs() as logs:
            assert await remove_job(context(sessionmaker, docker), deployment_id, [])
        assert helped(logs) == [(name, REFUSED)]
        assert await docker.inspect(name) is None
    finally:
        await docker.engines.close()


async def test_an_applications_removal_reads_a_left_job_containers_mark_from_its_deployment(
    sessionmaker: Any, docker: DockerExecutor, app_id: str
):
    deployment_id = f"{app_id}-d1"
    job, replica = job_container_name(deployment_id), f"berth-{app_id}-web-d1-1"
    await deployment(sessionmaker, deployment_id, app_id, broke=True)
    await record(sessionmaker, replica, app_id)
    create(job, app_id, f"{JOB_LABEL}={deployment_id}")
    create(replica, app_id)
    found = await docker.list_containers({labels.APP: app_id})
    with capture_logs() as logs:
        await remove_containers(context(sessionmaker, docker), LOCAL, docker, found)
    assert helped(logs) == [(job, BROKE)]
    assert await docker.list_containers({labels.APP: app_id}) == []


class StoppedReplica:
    """An engine holding one replica its crash stopped (exited long ago, restart policy unless-stopped), whose
    start call breaks with the engine or is carried out."""

    def __init__(self, name: str, app_id: str, fails: Exception | None = None) -> None:
        self.name, self.app_id, self.starts = name, app_id, Starts(fails)

    async def list_containers(self, _labels: dict[str, str]) -> list[ContainerInfo]:
        return [ContainerInfo("c" * 64, self.name, "exited", {labels.APP: self.app_id})]

    async def inspect(self, _name: str) -> dict[str, Any]:
        state = {"Status": "exited", "Running": False, "ExitCode": 137, "FinishedAt": "2026-01-01T00:00:00Z"}
        return {"State": state, "HostConfig": {"RestartPolicy": {"Name": "unless-stopped"}}}

    async def start(self, name: str) -> None:
        await self.starts.start(name)


async def test_the_revival_pass_marks_a_replica_whose_start_broke_and_clears_the_mark_when_it_starts(
    sessionmaker: Any, app_id: str
):
    live, name = f"{app_id}-d1", f"berth-{app_id}-web-d1-1"
    await deployment(sessionmaker, live, app_id)
    async with sessionmaker() as s, s.begin():
        await s.execute(
            sa.update(tables.deployments)
            .where(tables.deployments.c.id == live)
            .values(state="succeeded", finished_at=1.0)
        )
        values = {"name": name, "deployment_id": live, "application_id": app_id, "service": "web", "kind": "web"}
        await store.record_container(s, {**values, "replica": 1})
    assert (
        await revive(context(sessionmaker, StoppedReplica(name, app_id, DockerUnavailable("no answer"))), app_id) == []
    )
    assert await marked(sessionmaker, [name]) == {name}  # its removal, if it comes first, has the helper
    engine = StoppedReplica(name, app_id)
    rt = context(sessionmaker, engine)
    assert await revive(rt, app_id) == [name]
    assert engine.starts.started == [name] and await marked(sessionmaker, [name]) == set()
    assert rt.orphans.asked == [LOCAL]  # the engine stopped it: what its restart left is looked for
