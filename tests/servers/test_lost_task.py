"""A lost task on a real engine (a test server's dockerd killed -9 with its containerd while it starts a
container): the engine then refuses to start that container again, and Berth ends what still runs of it and
makes it again (the mark of its broken start gone); a deployment undone after such a crash has what still
runs of its container ended as it is removed. The helper ends exactly the processes of the container it is
given."""

from __future__ import annotations

import asyncio
import random
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from structlog.testing import capture_logs

from berth_common import labels
from berth_common.db import make_engine, make_sessionmaker
from berth_common.db.provision import provision, schema_for
from berth_common.docker import DockerUnavailable
from berth_common.images import BUSYBOX_IMAGE
from berth_scheduler.adapters import store
from berth_scheduler.adapters.docker import DockerExecutor, DockerOperationError
from berth_scheduler.adapters.lost_tasks import end_lost_task
from berth_scheduler.usecases.rollout.lost_task import clear_lost_task, lost, start
from berth_scheduler.usecases.rollout.steps import remove_all
from tests.support.images import busybox_image
from tests.support.server_executor import server_executor
from tests.support.testservers import TestServer, running_servers

pytestmark = pytest.mark.slow

SERVER_ID = "5e7c0a11"
TRIES = 12  # a crash lands mid-start (the task lost) in most tries on this engine


@pytest.fixture(scope="module")
def server() -> Iterator[TestServer]:
    busybox_image()
    with running_servers(1, with_sshd=False) as (one,):
        one.load_image(BUSYBOX_IMAGE)
        yield one


@pytest.fixture
async def docker(server: TestServer) -> AsyncIterator[DockerExecutor]:
    async with server_executor(server, SERVER_ID) as executor:
        yield executor


def processes_of(container_id: str) -> list[int]:
    """The machine's processes whose control group names ``container_id``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and container_id in (entry / "cgroup").read_text():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def serve(server: TestServer, name: str, *more: str) -> str:
    return server.docker("create", "--name", name, *more, BUSYBOX_IMAGE, "httpd", "-f", "-p", "8080").strip()


def lose_a_task(server: TestServer) -> tuple[str, str]:
    """(name, id) of a container whose start the engine refuses after a crash that met its start."""
    for n in range(TRIES):
        name = f"lost-{n}"
        container_id = serve(server, name)
        cmd = ["docker", "-H", server.docker_host, "start", name]
        starting = threading.Thread(target=subprocess.run, args=(cmd,), kwargs={"capture_output": True})
        starting.start()
        time.sleep(random.uniform(0.05, 0.6))
        server.restart_dockerd()
        starting.join()
        again = subprocess.run(cmd, capture_output=True, text=True)
        if again.returncode != 0 and lost(DockerOperationError(again.stderr)):
            return name, container_id
        server.docker("rm", "-f", name)
    raise AssertionError(f"no crash met a start in {TRIES} tries")


async def test_a_replica_whose_task_the_engine_lost_is_made_again_and_nothing_of_it_runs_on(
    server: TestServer, docker: DockerExecutor, database: str
):
    """The mark of its broken start goes with the removed container: the one made again under its name is
    not suspected at its later removal."""
    name, old_id = lose_a_task(server)
    with pytest.raises(DockerOperationError) as refused:
        await docker.start(name)
    assert lost(refused.value), refused.value

    async def engine(_server: str) -> DockerExecutor:
        return docker

    urls = await provision(database, "test-secret", ("scheduler",))
    db = make_engine(urls["scheduler"], schema_for("scheduler"))
    sessionmaker = make_sessionmaker(db)
    values = {"deployment_id": "lost", "application_id": "lost", "service": "web", "kind": "web", "replica": 1}
    async with sessionmaker() as s, s.begin():
        await store.record_container(s, {"name": name, **values, "server_id": SERVER_ID})
        await store.note_start_broke(s, name)  # its start broke with the engine
    fleet = SimpleNamespace(socket=None, docker=engine)  # the helper image is there
    rt: Any = SimpleNamespace(fleet=fleet, sessionmaker=sessionmaker)
    try:
        await clear_lost_task(rt, SERVER_ID, docker, name)
        async with sessionmaker() as s:
            assert await store.broken_starts(s, [name]) == set()
    finally:
        await db.dispose()
    assert await docker.inspect(name) is None
    assert processes_of(old_id) == []
    new_id = serve(server, name)
    await docker.start(name)
    info = await docker.inspect(name)
    assert info is not None and info["State"]["Running"] and info["Id"] == new_id
    assert len(processes_of(new_id)) == 1 and processes_of(old_id) == []
    await docker.remove(name)


async def test_the_helper_ends_the_processes_of_the_container_it_is_given_and_no_other(
    server: TestServer, docker: DockerExecutor
):
    ids = [serve(server, f"kept-{n}") for n in range(2)]
    try:
        for n in range(2):
            await docker.start(f"kept-{n}")
        doomed, kept = ids
        before = processes_of(doomed)
        assert len(before) == 1 and len(processes_of(kept)) == 1
        assert await end_lost_task(docker, doomed) == before
        deadline = time.monotonic() + 10
        while (await docker.inspect("kept-0") or {})["State"]["Running"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert processes_of(doomed) == []
        state = (await docker.inspect("kept-0") or {})["State"]
        assert not state["Running"] and state["ExitCode"] == 137  # SIGKILL
        assert (await docker.inspect("kept-1") or {})["State"]["Running"]
        assert await end_lost_task(docker, doomed) == []  # nothing left of it
    finally:
        for n in range(2):
            await docker.remove(f"kept-{n}")


def crash_when_it_runs(server: TestServer, container_id: str) -> threading.Thread:
    """A thread that kills the server's engine (and restarts it) as soon as the container's command runs,
    before the engine records it running: the point where a crash leaves its process running on (a kill
    timed at random in a start of 0.3 s met it in 2 tries of 26; this one in 3 of 8)."""

    def crash() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "httpd" not in commands(cgroup_processes(container_id)):
            time.sleep(0.001)
        server.restart_dockerd()

    thread = threading.Thread(target=crash)
    thread.start()
    return thread


# Where an engine's container has its processes listed (cgroup v1 with the cgroupfs driver, v2, v2 under systemd):
# one small file read per look, where a scan of /proc reads a file per process of the machine (tens of ms on a
# loaded one, longer than the moment a crash has to land in).
CGROUP_PROCS = (
    "/sys/fs/cgroup/pids/docker/{id}/cgroup.procs",
    "/sys/fs/cgroup/docker/{id}/cgroup.procs",
    "/sys/fs/cgroup/system.slice/docker-{id}.scope/cgroup.procs",
)


def cgroup_processes(container_id: str) -> list[int]:
    """The processes of the container's control group, read from its ``cgroup.procs``; else, where none of
    the known places has it, from a scan of the machine's processes (:func:`processes_of`)."""
    for pattern in CGROUP_PROCS:
        try:
            return [int(pid) for pid in Path(pattern.format(id=container_id)).read_text().split()]
        except FileNotFoundError:
            continue
    if any(Path(p.format(id=container_id)).parent.parent.exists() for p in CGROUP_PROCS):
        return []  # the engine's group is there, the container's not yet: it has not started
    return processes_of(container_id)


def commands(pids: list[int]) -> set[str]:
    """The command names of those of ``pids`` still there."""
    found = set()
    for pid in pids:
        try:
            found.add(Path(f"/proc/{pid}/comm").read_text().strip())
        except OSError:
            continue
    return found


async def test_a_deployment_undone_after_a_crash_broke_its_start_leaves_no_process_of_its_container(
    server: TestServer, docker: DockerExecutor, database: str
):
    """The engine killed while the rollout starts a replica, the deployment then undone without starting it
    again (the undo's removal, ``remove_all``): the helper ends the process the crash left running with its
    address (the engine's forced removal alone leaves it), and nothing of the container is left."""
    urls = await provision(database, "test-secret", ("scheduler",))
    engine = make_engine(urls["scheduler"], schema_for("scheduler"))

    async def on(_server: str) -> DockerExecutor:
        return docker

    rt: Any = SimpleNamespace(fleet=SimpleNamespace(socket=None, docker=on), sessionmaker=make_sessionmaker(engine))
    seen: list[tuple[str, list[int]]] = []  # (how the start ended, what ran of it once the engine was back)
    try:
        for n in range(TRIES):
            deployment, name = f"undone{n}", f"berth-undone-web-{n}"
            async with rt.sessionmaker() as s, s.begin():
                await store.record_container(
                    s,
                    {
                        "name": name,
                        "deployment_id": deployment,
                        "application_id": "undone",
                        "service": "web",
                        "kind": "web",
                        "replica": 1,
                        "server_id": SERVER_ID,
                    },
                )
            # a start that ended before the crash costs the engine's restart the container's stop timeout (10 s)
            container_id = serve(server, name, "--stop-timeout", "1", "--label", f"{labels.DEPLOYMENT}={deployment}")
            crash = crash_when_it_runs(server, container_id)
            try:
                await start(rt, docker, name)
                ended = "started"
            except DockerUnavailable:
                ended = "broke"
            await asyncio.to_thread(crash.join)
            async with rt.sessionmaker() as s:
                assert await store.broken_starts(s, [name]) == ({name} if ended == "broke" else set())
            state = ((await docker.inspect(name)) or {})["State"]["Status"]
            left = processes_of(container_id)  # what runs of it, the engine back
            seen.append((f"{ended}, {state}", left))
            listed: list[str] = []  # the state the removal itself read (the engine's view may change meanwhile)
            real_list = docker.list_containers

            async def listing(selector: dict[str, str]) -> list[Any]:
                found = await real_list(selector)
                listed.extend(c.state for c in found if c.name == name)
                return found

            docker.list_containers = listing  # type: ignore[method-assign]
            try:
                with capture_logs() as logs:
                    removed = await remove_all(rt, {labels.DEPLOYMENT: deployment}, stop=False, servers=[SERVER_ID])
            finally:
                del docker.list_containers
            seen[-1] = (f"{ended}, {state}, removal read {listed}", left)
            assert removed == 1 and await docker.inspect(name) is None
            assert processes_of(container_id) == [], f"a process of {container_id[:12]} runs on: {seen}"
            async with rt.sessionmaker() as s:
                assert await store.containers_of(s, deployment) == []
            helped = [e for e in logs if e["event"].startswith("a removed container's start was interrupted")]
            if ended == "started" or listed == ["running"]:  # the engine knows its task: its removal kills it
                assert helped == [], helped
                continue
            assert [(e["container_id"], e["reason"], e["processes"]) for e in helped] == [
                (container_id, "its start broke with the engine", sorted(left))  # exactly what the crash left
            ], (helped, seen)
            if left:
                break
        assert seen[-1][1], f"no crash left a process running in {TRIES} tries: {seen}"
    finally:
        await engine.dispose()
        for left_over in server.docker("ps", "-aq", "--filter", "name=berth-undone-").split():
            server.docker("rm", "-f", left_over)
