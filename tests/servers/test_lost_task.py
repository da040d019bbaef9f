"""A lost task on a real engine (a test server's dockerd killed -9 with its containerd while it starts a
container): the engine then refuses to start that container again, and Berth ends what still runs of it and
makes it again. The helper ends exactly the processes of the container it is given."""

from __future__ import annotations

import random
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from berth_common.docker import DockerEngines, local_engine
from berth_common.docker.engine import Engine, endpoint
from berth_common.images import BUSYBOX_IMAGE
from berth_scheduler.adapters.docker import DockerExecutor, DockerOperationError
from berth_scheduler.adapters.lost_tasks import end_lost_task
from berth_scheduler.usecases.rollout.lost_task import clear_lost_task, lost
from tests.support.images import busybox_image
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
    engines = DockerEngines(local_engine(None))
    await engines.add(Engine(endpoint(server.docker_host), "v1.41", SERVER_ID))
    yield DockerExecutor(engines, SERVER_ID)


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


def serve(server: TestServer, name: str) -> str:
    return server.docker("create", "--name", name, BUSYBOX_IMAGE, "httpd", "-f", "-p", "8080").strip()


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
    server: TestServer, docker: DockerExecutor
):
    name, old_id = lose_a_task(server)
    with pytest.raises(DockerOperationError) as refused:
        await docker.start(name)
    assert lost(refused.value), refused.value

    async def engine(_server: str) -> DockerExecutor:
        return docker

    rt: Any = SimpleNamespace(fleet=SimpleNamespace(socket=None, docker=engine))  # the helper image is there
    await clear_lost_task(rt, SERVER_ID, docker, name)
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
