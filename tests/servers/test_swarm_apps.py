"""An application on a Swarm besides its rollouts, end to end on one Swarm of two namespace servers shared by
the module (formed by the real scheduler through ``cmd.swarm.form``): the runtime logs of its tasks, read
and followed through each node's connection like any replica's; its one-off runs and pre-deploy job carried
out on the Swarm's manager, on its overlay network. The exact bodies are in ``tests/scheduler/test_swarm_app.py``;
the rollouts under load in ``test_swarm_rollout.py``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import nats
import pytest
import sqlalchemy as sa

from berth_common import ssh
from berth_common.bus import Bus, ServiceUnavailableError, subscriptions_confirmed
from berth_common.catalogue import (
    ApplicationSpec,
    EnvVar,
    FollowLogsQuery,
    FollowLogsReply,
    FormSwarm,
    ImageSource,
    RuntimeLogsQuery,
    RuntimeLogsReply,
    StartDeployment,
    WorkerService,
)
from berth_common.db import make_engine
from berth_common.db.provision import provision
from berth_scheduler.adapters.swarm import SwarmEngine
from berth_scheduler.domain import swarm_app
from berth_scheduler.settings import SchedulerSettings
from tests.api.test_runtime_logs import follows
from tests.metrics.service import eventually
from tests.scheduler.platform import Scheduler
from tests.support.bus_helpers import Collector
from tests.support.images import busybox_image
from tests.support.testservers import TestServer, running_servers, server_changed

pytestmark = [pytest.mark.slow, pytest.mark.docker]
SECRET = "test-secret"
TEAM = "team-swarm-apps"
TERMINAL = ("evt.deployment.succeeded", "evt.deployment.failed", "evt.deployment.cancelled")


@pytest.fixture(scope="module")
def two() -> Iterator[list[TestServer]]:
    busybox_image()  # on the control plane's engine only: Berth delivers it to the nodes
    with running_servers(2) as servers:
        yield servers


def _target(server: TestServer) -> ssh.SshTarget:
    key = server.host_key.export_public_key("openssh").decode().strip()
    return ssh.SshTarget(server.address, 22, "root", server.private_key_pem, key)


@dataclass
class Swarm:
    """The scheduler (in this process), the api's bus, and the Swarm it formed of ``servers``."""

    nats_url: str
    api: Bus
    servers: list[TestServer]
    server_ids: list[str]  # as the directory has them, the manager first
    manager: SwarmEngine
    pool: ssh.SshPool

    @property
    def manager_id(self) -> str:
        return self.server_ids[0]

    def server_of(self, server_id: str) -> TestServer:
        return self.servers[self.server_ids.index(server_id)]

    async def node_servers(self) -> dict[str, str]:
        """Swarm node id -> server id."""
        by_address = {s.address: sid for s, sid in zip(self.servers, self.server_ids, strict=True)}
        from berth_scheduler.domain.swarms import node_address

        return {n["ID"]: by_address[node_address(n)] for n in await self.manager.nodes()}


@pytest.fixture(scope="module")
async def swarm(two: list[TestServer], module_nats_server, module_database, tmp_path_factory) -> AsyncIterator[Swarm]:
    urls = await provision(module_database, SECRET, ("scheduler",))
    settings = SchedulerSettings(
        nats_url=module_nats_server.url,
        database_url=urls["scheduler"],
        secret_key=SECRET,
        http_port=0,
        ssh_timeout_s=5,
        logs_follow_alive_s=0.5,
    )
    scheduler = await Scheduler(settings).start()
    api = Bus("api", module_nats_server.url)
    await api.connect()
    engine = make_engine(urls["scheduler"], "scheduler")
    pool = ssh.SshPool(tmp_path_factory.mktemp("swarm-apps"))
    server_ids = ["mgrapps", "wrkapps"]
    try:
        for server, server_id in zip(two, server_ids, strict=True):
            await api.publish(server_changed(server, server_id, team_id=TEAM, name=f"swarm-{server_id}"))

        async def known() -> bool:
            with contextlib.suppress(sa.exc.ProgrammingError):  # its migrations may still be running
                async with engine.begin() as conn:
                    found = await conn.execute(sa.text("SELECT count(*) FROM scheduler.servers"))
                    return found.scalar() == len(server_ids)
            return False

        await eventually(known, 60)
        answers = await Collector().start(module_nats_server.url, "evt.swarm.>")
        try:
            await api.publish(
                FormSwarm(
                    swarm_id="swarmapps", team_id=TEAM, attempt=1, manager_server_id=server_ids[0],
                    worker_server_ids=server_ids[1:],
                )  # fmt: skip
            )
            deadline = time.monotonic() + 90
            while not answers.items:
                assert time.monotonic() < deadline, "no answer to cmd.swarm.form"
                await asyncio.sleep(0.2)
        finally:
            await answers.close()
        assert answers.items[0][0]["type"] == "evt.swarm.formed", answers.items[0][0]
        manager = SwarmEngine(await pool.docker_socket(two[0].name, _target(two[0])))
        yield Swarm(module_nats_server.url, api, two, server_ids, manager, pool)
    finally:
        await pool.close()
        await engine.dispose()
        await api.close()
        await scheduler.stop()


async def _deployed(swarm: Swarm, cmd: StartDeployment, timeout: float = 180) -> dict:
    """Send ``cmd.deployment.start`` as the api does; the deployment's last event."""
    events = await Collector().start(swarm.nats_url, "evt.deployment.>")
    try:
        await swarm.api.publish(cmd)
        deadline = time.monotonic() + timeout
        while True:
            for body, _ in events.items:
                if body["data"].get("deployment_id") == cmd.deployment_id and body["type"] in TERMINAL:
                    return body
            assert time.monotonic() < deadline, [b["data"].get("step") for b in (x for x, _ in events.items)]
            await asyncio.sleep(0.2)
    finally:
        await events.close()


def _worker_app(swarm: Swarm, app: str, deployment_id: str, command: list[str], **spec: Any) -> StartDeployment:
    jobs = WorkerService(name="jobs", replicas=2, command=command, servers=[swarm.manager_id])
    return StartDeployment(
        deployment_id=deployment_id,
        application_id=app,
        team_id=TEAM,
        spec=ApplicationSpec(
            name=app,
            source=ImageSource(image=busybox_image()),
            env=[EnvVar(name="GREETING", value="hello")],
            services=[jobs],
            stop_timeout_s=2,
            **spec,
        ),
    )


async def _task_containers(swarm: Swarm, app: str) -> list[swarm_app.TaskContainer]:
    """The running task containers of the application's services, as the manager reports them."""
    nodes = await swarm.node_servers()
    out = []
    for svc in await swarm.manager.services({"berth.app": app}):
        tasks = await swarm.manager.tasks(svc["Spec"]["Name"])
        out += [t for t in swarm_app.task_containers(svc, tasks, nodes) if t.running]
    return out


async def test_the_runtime_logs_of_swarm_tasks_are_read_and_followed_through_their_nodes(swarm: Swarm) -> None:
    """Two tasks of a worker service spread over the two nodes: ``rpc.scheduler.runtime_logs`` gives each
    task's lines tagged with its container (``<service>.<slot>.<task id>``) and its node's server, merged by
    time; another team gets nothing; a follow publishes a line a task writes later."""
    app = "swarmlogs"
    script = 'for i in 1 2 3; do echo "$GREETING from $(hostname) line $i"; sleep 0.2; done; exec sleep 600'
    done = await _deployed(swarm, _worker_app(swarm, app, "dep-logs", ["sh", "-c", script]))
    assert done["type"] == "evt.deployment.succeeded", done
    tasks = await eventually(lambda: _two_running(swarm, app), 60)
    assert {t.server_id for t in tasks} == set(swarm.server_ids)  # one task on each node

    def hostname(task: swarm_app.TaskContainer) -> str:
        server = swarm.server_of(str(task.server_id))
        return server.docker("inspect", "--format", "{{.Config.Hostname}}", task.name).strip()

    expected = {(t.name, t.server_id): [f"hello from {hostname(t)} line {i}" for i in (1, 2, 3)] for t in tasks}
    query = RuntimeLogsQuery(team_id=TEAM, application_id=app, tail=100)

    async def six() -> RuntimeLogsReply | None:
        try:
            reply = await swarm.api.request("scheduler", "runtime_logs", query, RuntimeLogsReply, timeout=30)
        except ServiceUnavailableError:
            return None
        return reply if len(reply.lines) == 6 else None

    reply = await eventually(six, 30)
    assert reply.unreachable == {} and not reply.truncated
    got: dict[tuple[str, str], list[str]] = {}
    for line in reply.lines:
        assert (line.service, line.stream) == ("jobs", "stdout")
        got.setdefault((line.replica, line.server_id), []).append(line.line)
    assert got == expected
    times = [x.time or datetime.min for x in reply.lines]
    assert times == sorted(times)
    one = RuntimeLogsQuery(team_id=TEAM, application_id=app, tail=2)
    assert len((await swarm.api.request("scheduler", "runtime_logs", one, RuntimeLogsReply, timeout=30)).lines) == 2
    other = RuntimeLogsQuery(team_id="another-team", application_id=app)
    assert (await swarm.api.request("scheduler", "runtime_logs", other, RuntimeLogsReply, timeout=30)).lines == []

    # a follow: a line a task writes later comes to the inbox, tagged with its task and node
    nc = await nats.connect(swarm.nats_url)
    inbox = nc.new_inbox()
    batches: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def on_lines(msg: Any) -> None:
        batches.put_nowait(json.loads(msg.data))

    async def on_alive(msg: Any) -> None:
        await msg.respond(b"ok")

    subs = [await nc.subscribe(inbox, cb=on_lines), await nc.subscribe(inbox + ".alive", cb=on_alive)]
    await subscriptions_confirmed(nc)
    try:
        follow = FollowLogsQuery(team_id=TEAM, inbox=inbox, application_id=app, since=datetime.now().astimezone())
        answer = await swarm.api.request("scheduler", "follow_logs", follow, FollowLogsReply, timeout=30)
        assert (answer.found, answer.containers, answer.unreachable) == (True, 2, {})
        await asyncio.sleep(0.5)  # both nodes' engines are followed by now
        worker_task = next(t for t in tasks if t.server_id != swarm.manager_id)
        swarm.server_of(str(worker_task.server_id)).docker(
            "exec", worker_task.name, "sh", "-c", "echo fresh from the worker > /proc/1/fd/1"
        )
        batch = await asyncio.wait_for(batches.get(), 10)
        assert [(x["line"], x["server_id"], x["replica"], x["service"]) for x in batch["lines"]] == [
            ("fresh from the worker", worker_task.server_id, worker_task.name, "jobs")
        ]
    finally:
        for sub in subs:
            await sub.unsubscribe()
        await eventually(lambda: not follows(), 10)
        await nc.close()


async def _two_running(swarm: Swarm, app: str) -> list[swarm_app.TaskContainer] | None:
    tasks = await _task_containers(swarm, app)
    return tasks if len(tasks) == 2 else None
