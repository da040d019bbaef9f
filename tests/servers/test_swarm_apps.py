"""An application on a Swarm besides its rollouts, end to end on one Swarm of two namespace servers shared by
the module (formed by the real scheduler through ``cmd.swarm.form``): the runtime logs of its tasks, read
and followed through each node's connection like any replica's; its one-off runs and pre-deploy job carried
out on the Swarm's manager, on its overlay network. The exact bodies are in ``tests/scheduler/test_swarm_app.py``;
the rollouts under load in ``test_swarm_rollout.py``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
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
    AppFile,
    ApplicationSpec,
    EnvVar,
    FileMount,
    FollowLogsQuery,
    FollowLogsReply,
    FormSwarm,
    ImageSource,
    PreDeployJob,
    RolloutOptions,
    RuntimeLogsQuery,
    RuntimeLogsReply,
    StartDeployment,
    StartRun,
    VolumeMount,
    WebService,
    WorkerService,
)
from berth_common.db import make_engine
from berth_common.db.provision import provision
from berth_scheduler.adapters.swarm import SwarmEngine
from berth_scheduler.domain import swarm_app
from berth_scheduler.domain import swarm_rollout as rollout_dom
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
NETWORK = "appsnet"  # the Swarm's overlay network (not the servers' own network's name, ``berth``)
TERMINAL = ("evt.deployment.succeeded", "evt.deployment.failed", "evt.deployment.cancelled")


@pytest.fixture(scope="module")
def two() -> Iterator[list[TestServer]]:
    busybox_image()  # on the control plane's engine only: Berth delivers it to the nodes
    with running_servers(2) as servers:
        yield servers


def _target(server: TestServer) -> ssh.SshTarget:
    return server.ssh_target()


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
        drain_grace_s=1,  # a new version's older service goes 1 s after the switch, not 30 s (nothing routed drains)
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
                    swarm_id="swarmapps",
                    team_id=TEAM,
                    attempt=1,
                    manager_server_id=server_ids[0],
                    worker_server_ids=server_ids[1:],
                    network=NETWORK,
                )
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


async def _deployed(
    swarm: Swarm, cmd: StartDeployment, timeout: float = 180, log: list | None = None, steps: list | None = None
) -> dict:
    """Send ``cmd.deployment.start`` as the api does; the deployment's last event (its log lines into ``log``,
    its progress events' data into ``steps``)."""
    events = await Collector().start(swarm.nats_url, "evt.deployment.>")
    lines = await Collector().start(swarm.nats_url, f"log.{cmd.deployment_id}")
    try:
        await swarm.api.publish(cmd)
        deadline = time.monotonic() + timeout
        while True:
            for body, _ in events.items:
                if body["data"].get("deployment_id") == cmd.deployment_id and body["type"] in TERMINAL:
                    await asyncio.sleep(0.3)  # the log lines published before it
                    if log is not None:
                        log += [b["data"]["line"] for b, _ in lines.items]
                    if steps is not None:
                        steps += [
                            b["data"] for b, _ in events.items if b["data"].get("deployment_id") == cmd.deployment_id
                        ]
                    return body
            assert time.monotonic() < deadline, [b["data"].get("step") for b in (x for x, _ in events.items)]
            await asyncio.sleep(0.2)
    finally:
        await events.close()
        await lines.close()


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


def _containers(server: TestServer, label: str) -> list[str]:
    return server.docker("ps", "-a", "--filter", f"label={label}", "--format", "{{.Names}}").split()


async def test_the_pre_deploy_job_and_one_off_runs_of_an_application_on_a_swarm_run_on_its_manager(
    swarm: Swarm,
) -> None:
    """The pre-deploy job runs on the Swarm's manager with the application's image and variables before any
    task of the new version: its output goes to the deployment's log; a job that exits 3 fails the
    deployment with its code and last lines, and the live version's tasks keep running. A one-off run of the
    deployed service runs on the manager too, on the overlay network where the service's tasks answer by its
    name: its exit code and output come back in ``evt.run.finished``."""
    app = "swarmjobs"
    manager = swarm.servers[0]
    job = PreDeployJob(command=["sh", "-c", "echo migrating $GREETING on $(hostname)"])
    cmd = _worker_app(swarm, app, "dep-job1", ["sleep", "600"], pre_deploy=job)
    log: list[str] = []
    done = await _deployed(swarm, cmd, log=log)
    assert done["type"] == "evt.deployment.succeeded", done
    job_lines = [line for line in log if line.startswith("[pre-deploy] ")]
    assert job_lines[0].startswith("[pre-deploy] running sh -c echo migrating $GREETING on $(hostname) (service jobs")
    assert job_lines[0].endswith(f"{swarm.manager_id})")
    assert [line.split(" on ")[0] for line in job_lines[1:]] == [
        "[pre-deploy] migrating hello",
        "[pre-deploy] exited with code 0",
    ]
    assert _containers(manager, "berth.pre-deploy") == []  # removed once the tasks run
    (live,) = await swarm.manager.services({"berth.app": app})
    assert live["Spec"]["Labels"]["berth.deployment"] == "dep-job1"
    service = live["Spec"]["Name"]

    failing = PreDeployJob(command=["sh", "-c", "echo cannot migrate $GREETING; exit 3"])
    bad = await _deployed(swarm, _worker_app(swarm, app, "dep-job2", ["sleep", "600"], pre_deploy=failing))
    assert bad["type"] == "evt.deployment.failed", bad
    reason = bad["data"]["reason"]
    assert "the pre-deploy job exited with code 3" in reason and "cannot migrate hello" in reason, reason
    assert [s["Spec"]["Name"] for s in await swarm.manager.services({"berth.app": app})] == [service]
    tasks = rollout_dom.running(await swarm.manager.tasks(service), NETWORK)
    assert len(tasks) == 2
    await eventually(lambda: _containers(manager, "berth.pre-deploy") == [], 30)  # the undo removed it

    # a one-off run: on the manager, reaching the service's tasks by its name on the overlay network
    finished = await Collector().start(swarm.nats_url, "evt.run.>")
    try:
        run = StartRun(
            run_id="swarmrun1", team_id=TEAM, application_id=app, deployment_id="dep-job1", service="jobs",
            command=["sh", "-c", "echo run says $GREETING; busybox nslookup jobs"], timeout_s=60,
        )  # fmt: skip
        await swarm.api.publish(run)

        def ended() -> dict | None:
            return next((b for b, _ in finished.items if b["type"] == "evt.run.finished"), None)

        end = await eventually(ended, 60)
    finally:
        await finished.close()
    data = end["data"]
    assert (data["status"], data["exit_code"], data["server_id"]) == ("succeeded", 0, swarm.manager_id), data
    assert data["last_lines"][0] == "run says hello"
    said = "\n".join(data["last_lines"])
    assert all(f"Address: {t.address}" in said or f"Address 1: {t.address}" in said for t in tasks), said
    assert _containers(manager, "berth.run=swarmrun1") == ["berth-run-swarmrun1"]  # kept for its logs


async def test_a_swarm_version_not_ready_says_what_its_checks_saw_and_shows_a_tasks_last_lines(swarm: Swarm) -> None:
    """A web service whose health path answers 404: the deployment fails with the status and first bytes of
    the answer its running tasks gave, and the last lines a task wrote, read through its node; a worker whose
    tasks exit 3: the exit code with Swarm's error words and its last lines. The failed services are gone."""
    app = "swarmwhy"
    script = 'echo "listening on 8080 as $(hostname)"; mkdir -p /www && echo ok > /www/index.html; exec httpd -f -p 8080 -h /www'
    web = WebService(
        name="web",
        port=8080,
        replicas=2,
        command=["sh", "-c", script],
        servers=[swarm.manager_id],
        health_path="/missing",
    )
    cmd = StartDeployment(
        deployment_id="dep-why1",
        application_id=app,
        team_id=TEAM,
        spec=ApplicationSpec(name=app, source=ImageSource(image=busybox_image()), services=[web], stop_timeout_s=2),
        options=RolloutOptions(readiness_timeout_s=120),
    )
    t0 = time.monotonic()
    failed = await _deployed(swarm, cmd)
    took = time.monotonic() - t0
    assert failed["type"] == "evt.deployment.failed", failed
    assert took < 100, took  # the same 404 over and over fails the version at once, not at the deadline
    reason = failed["data"]["reason"]
    assert "0 of 2 tasks of " in reason, reason
    assert "running, but GET /missing answered 404: <HTML><HEAD><TITLE>404 Not Found</TITLE></HEAD>" in reason, reason
    _, _, lines = reason.partition("; last log lines of ")
    container, _, logged = lines.partition(":\n")
    assert container.startswith("berth-swarmwhy-web-") and logged.startswith("listening on 8080 as "), reason
    assert await swarm.manager.services({"berth.app": app}) == []

    crash = ["sh", "-c", "echo cannot start: no config >&2; exit 3"]
    cmd = _worker_app(swarm, app, "dep-why2", crash)
    # a worker's crashes are read at its deadline (no answer to judge earlier): its tasks exit within seconds
    cmd = cmd.model_copy(update={"options": RolloutOptions(readiness_timeout_s=15)})
    failed = await _deployed(swarm, cmd)
    assert failed["type"] == "evt.deployment.failed", failed
    reason = failed["data"]["reason"]
    assert "failed: the container exited with code 3: task: non-zero exit (3)" in reason, reason
    assert reason.endswith(":\ncannot start: no config"), reason
    assert await swarm.manager.services({"berth.app": app}) == []


async def test_a_recreated_service_with_a_volume_stays_on_the_managers_node_and_stops_first(swarm: Swarm) -> None:
    """``strategy: recreate`` with a single-writer volume on a Swarm: the service is pinned to the manager's
    node (its local volume follows every version), the old task stops before the new one starts (the new
    task finds the old one's last word in the volume), and the deployment reports the expected downtime."""
    app = "swarmdb"
    script = (
        'echo "started $V" >> /data/log; trap \'echo "stopped $V" >> /data/log; exit 0\' TERM; '
        "cat /data/log; sleep 600 & wait"
    )

    def start(deployment: str, version: str) -> StartDeployment:
        db = WorkerService(
            name="db", replicas=1, command=["sh", "-c", script], servers=[swarm.manager_id], strategy="recreate",
            volumes=[VolumeMount(name="data", path="/data", single_writer=True)], env=[EnvVar(name="V", value=version)],
        )  # fmt: skip
        spec = ApplicationSpec(name=app, source=ImageSource(image=busybox_image()), services=[db], stop_timeout_s=5)
        return StartDeployment(deployment_id=deployment, application_id=app, team_id=TEAM, spec=spec)

    nodes = {server: node for node, server in (await swarm.node_servers()).items()}
    for deployment, version in (("dep-db1", "one"), ("dep-db2", "two")):
        steps: list[dict] = []
        done = await _deployed(swarm, start(deployment, version), steps=steps)
        assert done["type"] == "evt.deployment.succeeded", done
        (service,) = await swarm.manager.services({"berth.app": app})
        assert service["Spec"]["TaskTemplate"]["Placement"] == {"Constraints": [f"node.id=={nodes[swarm.manager_id]}"]}
        assert service["Spec"]["UpdateConfig"]["Order"] == "stop-first"
        (task,) = await _task_containers(swarm, app)
        assert task.server_id == swarm.manager_id
        downtime = [s["detail"] for s in steps if s.get("step") == "expected downtime"]
    assert downtime == [
        "strategy recreate: the old replica(s) of db left 0 route(s) and 1 stopped before the new ones start; "
        "expected downtime until the new version is routed"
    ]
    # the new task read the volume the old one wrote, after the old one had stopped
    logged = swarm.servers[0].docker("logs", task.name).strip().split("\n")
    assert logged == ["started one", "stopped one", "started two"], logged


async def test_the_files_a_swarm_service_mounts_are_given_to_its_tasks_as_secrets(swarm: Swarm) -> None:
    """A service that mounts the application's files (a template's configuration) on a Swarm: every task
    finds each file at its path with its mode, read-only; a changed file makes a new version that finds the
    new content, and the old file's secret is removed; the content is in no service definition. A worker's
    new version replaces the old one without a drain grace (it has no route to drain)."""
    app = "swarmfiles"
    script = "cat /etc/app/app.ini /etc/app/conf.d/extra.conf; stat -c %a /etc/app/app.ini; sleep 600"

    def start(deployment: str, password: str) -> StartDeployment:
        jobs = WorkerService(
            name="jobs", replicas=2, command=["sh", "-c", script], servers=[swarm.manager_id],
            files=[FileMount(source="app.ini", target="/etc/app/app.ini"), FileMount(source="conf.d", target="/etc/app/conf.d")],
        )  # fmt: skip
        files = [
            AppFile(path="app.ini", content=f"password={password}\n", mode=0o640),
            AppFile(path="conf.d/extra.conf", content="extra=1\n"),
        ]
        spec = ApplicationSpec(
            name=app, source=ImageSource(image=busybox_image()), services=[jobs], files=files, stop_timeout_s=2
        )
        options = RolloutOptions(drain_grace_s=120)  # were it waited out, the deployment would not end in time
        return StartDeployment(deployment_id=deployment, application_id=app, team_id=TEAM, spec=spec, options=options)

    for deployment, password in (("dep-fa", "first-s3cret"), ("dep-fb", "second-s3cret")):
        done = await _deployed(swarm, start(deployment, password), timeout=100)
        assert done["type"] == "evt.deployment.succeeded", done
        tasks = await _task_containers(swarm, app)
        assert len(tasks) == 2 and {t.server_id for t in tasks} <= set(swarm.server_ids), tasks
        for task in tasks:
            server = swarm.server_of(task.server_id)

            async def written(task: swarm_app.TaskContainer = task, server: TestServer = server) -> bool:
                return "640" in server.docker("logs", task.name)

            await eventually(written, 30)
            assert server.docker("logs", task.name).split() == [f"password={password}", "extra=1", "640"]
            write = ["docker", "-H", server.docker_host, "exec", task.name, "sh", "-c", "echo x >> /etc/app/app.ini"]
            denied = subprocess.run(write, capture_output=True, text=True, timeout=30)
            assert denied.returncode != 0 and "Read-only file system" in denied.stderr, denied
        (service,) = await swarm.manager.services({"berth.app": app})
        assert password not in json.dumps(service)
        # the image Berth put on the nodes is named by id: no node asks a registry for ``berth/...``
        image_id = swarm.servers[0].docker("image", "inspect", "--format", "{{.Id}}", busybox_image()).strip()
        assert service["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] == image_id
        secrets = await swarm.manager.secrets({"berth.app": app})
        mounted = {ref["SecretName"] for ref in service["Spec"]["TaskTemplate"]["ContainerSpec"]["Secrets"]}
        assert {x["Spec"]["Name"] for x in secrets} == mounted and len(mounted) == 2, secrets
