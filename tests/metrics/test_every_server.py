"""Metrics on every server: a namespace test server announced in ``evt.server.changed`` is read over SSH like
the local engine. A container there is read with the server's id; the server itself (its /proc, over the
same connection) is read too; a container crashing there is ``evt.container.crashed`` naming the server; its engine crashing is ``evt.server.unreachable`` for that server and its
coming back ``evt.server.back``, both to the teams with containers there and its owner; a team that
neither owns the server nor runs containers on it sees neither the server nor those containers."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from berth_common.catalogue import MetricsQuery, MetricsReply, ServerChanged
from berth_common.db.provision import provision
from berth_metrics.domain.host import READ_PROC_FILES, Disk, df_argv, parse_df, real_mounts, split_files
from berth_scheduler.settings import SchedulerSettings
from tests.api.conftest import Identities, bearer
from tests.metrics.service import eventually, metrics_service
from tests.scheduler.platform import Scheduler
from tests.support.fleet_platform import api_on, other_team_admin
from tests.support.images import busybox_image
from tests.support.testservers import TestServer, _run, _start_sshd, _wait, running_servers, server_changed

pytestmark = [pytest.mark.slow, pytest.mark.docker]
OWNER, USER, OTHER = "team-owner", "team-user", "team-other"
SECRET = "test-secret"


def test_proc_files_are_read_in_one_command_and_split_back() -> None:
    assert READ_PROC_FILES == ("grep", "-H", "", "/proc/stat", "/proc/meminfo", "/proc/loadavg", "/proc/mounts")
    out = "/proc/stat:cpu  1 2 3 4\n/proc/meminfo:MemTotal: 10 kB\n/proc/loadavg:0.1 0.2 0.3 1/2 3\n"
    assert split_files(out) == {
        "/proc/stat": "cpu  1 2 3 4\n",
        "/proc/meminfo": "MemTotal: 10 kB\n",
        "/proc/loadavg": "0.1 0.2 0.3 1/2 3\n",
        "/proc/mounts": "\n",
    }


def test_the_disks_of_a_remote_server_are_read_with_posix_df() -> None:
    mounts = real_mounts(
        "/dev/vda / ext4 rw 0 0\nproc /proc proc rw 0 0\n/dev/vdb /srv/my\\040data xfs rw 0 0\n/dev/vdc /gone ext4 rw 0 0\n",
        ("ext4", "xfs"),
    )
    assert df_argv(mounts) == ("df", "-P", "-k", "--", "/", "/srv/my data", "/gone")
    out = (
        "Filesystem     1024-blocks     Used Available Capacity Mounted on\n"
        "/dev/vdb          2000000  500000   1500000      25% /srv/my data\n"
        "/dev/vda        264212084 34552692  71838220      33% /\n"
    )  # /gone: df could not read it (unmounted meanwhile)
    assert parse_df(out, mounts) == (
        Disk("/", "/dev/vda", "ext4", total=264212084 * 1024, used=34552692 * 1024),
        Disk("/srv/my data", "/dev/vdb", "xfs", total=2000000 * 1024, used=500000 * 1024),
    )
    assert parse_df("df: /gone: No such file or directory\n", mounts) == ()


@pytest.fixture(scope="module")
def server() -> Iterator[TestServer]:
    with running_servers(1) as [s]:
        s.load_image(busybox_image())
        yield s


def restart(server: TestServer) -> None:
    """The machine comes back: whatever is left in its namespace is killed, then its engine and sshd start
    again (sshd after the engine: its mount namespace binds the engine's new socket)."""
    server.crash()
    ns = f"/var/run/netns/{server.name}"
    root = server.root
    # the killed engine may not be reaped yet: a pid file naming it would stop (or stall) the new one
    (root / "docker.pid").unlink(missing_ok=True)
    for stale in (root / "exec").glob("**/*.pid"):
        stale.unlink(missing_ok=True)
    log = (root / "dockerd.log").open("ab")
    argv = ["nsenter", f"--net={ns}", "dockerd", "--data-root", str(root / "data"), "--exec-root", str(root / "exec")]
    argv += ["--pidfile", str(root / "docker.pid"), "-H", server.docker_host]
    server.pids["dockerd"] = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True).pid

    def answers() -> bool:
        try:
            return _run("docker", "-H", server.docker_host, "version", check=False, timeout=10).returncode == 0
        except subprocess.TimeoutExpired:  # still restoring what it had
            return False

    _wait(answers, f"{server.name} dockerd", timeout=90)
    (root / "sshd.pid").unlink(missing_ok=True)
    _start_sshd(server, ns)


def announce(server: TestServer, server_id: str, revision: int = 1, state: str = "ready") -> ServerChanged:
    return server_changed(server, server_id, team_id=OWNER, name="ns-metrics", revision=revision, state=state)


async def query(running: Any, **fields: Any) -> MetricsReply:
    q = MetricsQuery(start=datetime.now(UTC) - timedelta(minutes=5), step_s=1, **fields)
    reply: MetricsReply = await running.bus.request("metrics", "query", q, MetricsReply)
    return reply


async def test_a_remote_server_is_read_watched_and_shown_only_to_its_teams(
    server: TestServer, nats_server: Any, database: str
) -> None:
    server_id = uuid.uuid4().hex
    app = f"remote-{uuid.uuid4().hex[:8]}"
    name = f"berth-mt-{uuid.uuid4().hex[:8]}"
    labels = ["--label", f"berth.app={app}", "--label", f"berth.team={USER}", "--label", "berth.service=web"]
    server.docker("run", "-d", "--name", name, *labels, busybox_image(), "sleep", "3600")
    async with metrics_service(nats_server.url, database, metrics_server_down_after=2) as running:
        await running.bus.publish(announce(server, server_id))

        async def container_read() -> Any:
            reply = await query(running, target_kind="app", target_id=app, team_id=USER)
            return [s for s in reply.series if s.metric == "mem_used" and any(v is not None for _, v in s.points)]

        (series,) = await eventually(container_read, 60)
        assert series.server_id == server_id and series.server == "ns-metrics" and series.name == name
        assert series.labels["team"] == USER
        on_server = await query(running, target_kind="app", target_id=app, team_id=USER, server_id=server_id)
        assert {s.key for s in on_server.series} == {series.key}
        elsewhere = await query(running, target_kind="app", target_id=app, team_id=USER, server_id="local")
        assert elsewhere.problem is not None and elsewhere.problem.status == 404

        async def server_read(team: str) -> Any:
            reply = await query(running, target_kind="server", target_id=server_id, team_id=team)
            return [s for s in reply.series if s.metric == "mem_used" and any(v for _, v in s.points)]

        # its engine's events are watched: a container that stops on its own there is a crash on that server
        crasher = f"berth-mt-{uuid.uuid4().hex[:8]}"
        server.docker("run", "-d", "--name", crasher, *labels, busybox_image(), "sh", "-c", "sleep 1; exit 3")
        (crash,) = await eventually(lambda: running.of_type("evt.container.crashed", container_name=crasher), 30)
        assert crash["server"] == "ns-metrics" and crash["exit_code"] == 3 and crash["team_id"] == USER

        (own,) = await eventually(lambda: server_read(OWNER), 30)
        assert (await query(running, target_kind="server", target_id=server_id, team_id=OWNER)).server_status
        assert own.kind == "server" and own.key == server_id and own.server_id == server_id
        assert await server_read(USER)  # it runs containers there

        async def disks_read() -> Any:  # its disks, read with df over SSH
            reply = await query(running, target_kind="server", target_id=server_id, team_id=OWNER)
            return [s for s in reply.series if s.metric in ("disk_used", "disk_total") and any(v for _, v in s.points)]

        disks = await eventually(disks_read, 30)
        used = {s.name: max(v for _, v in s.points if v) for s in disks if s.metric == "disk_used"}
        total = {s.name: max(v for _, v in s.points if v) for s in disks if s.metric == "disk_total"}
        assert used and set(used) == set(total) and all(0 < used[m] <= total[m] for m in used), disks
        assert {s.kind for s in disks} == {"mount"} and {s.server_id for s in disks} == {server_id}
        hidden = await query(running, target_kind="server", target_id=server_id, team_id=OTHER)
        assert hidden.problem is not None and hidden.problem.status == 404 and not hidden.series
        theirs = await query(running, target_kind="app", target_id=app, team_id=OTHER)
        assert theirs.problem is not None and theirs.problem.status == 404

        server.stop_dockerd()
        (down,) = await eventually(lambda: running.of_type("evt.server.unreachable", server_id=server_id), 60)
        assert down["server"] == "ns-metrics"
        assert set(down["team_ids"]) == {OWNER, USER}
        assert not running.of_type("evt.server.unreachable", server="test-vm")  # the local engine still answers
        status = (await query(running, target_kind="server", target_id=server_id, team_id=OWNER)).server_status
        assert status is not None and status.status == "down" and status.failures >= 2 and status.error

        await asyncio.to_thread(restart, server)  # the service keeps collecting meanwhile
        (back,) = await eventually(lambda: running.of_type("evt.server.back", server_id=server_id), 90)
        assert back["outage_id"] == down["outage_id"] and set(back["team_ids"]) == {OWNER, USER}
        status = (await query(running, target_kind="server", target_id=server_id, team_id=USER)).server_status
        assert status is not None and status.status == "up"

        # removed: the server is no longer read, and nothing more is said about it
        await running.bus.publish(announce(server, server_id, revision=2, state="removed"))
        fleet = running.ctx.extra["fleet"]
        await eventually(lambda: server_id not in fleet.servers and not fleet._stale, 30)


async def test_a_server_added_through_the_api_is_read_and_shown_to_its_team_only(
    server: TestServer, nats_server: Any, database: str, tmp_path: Path
) -> None:
    """The whole path: the api announces the server, the scheduler validates it (its host key pinned), the
    metrics service reads it from the announcement, and ``GET /v1/servers/{id}/metrics`` answers its team."""
    urls = await provision(database, SECRET)
    api = await api_on(nats_server.url, urls["api"], tmp_path / "data", SECRET)
    scheduler = await Scheduler(
        SchedulerSettings(
            nats_url=nats_server.url, database_url=urls["scheduler"], secret_key=SECRET, http_port=0, ssh_timeout_s=5
        )
    ).start()
    ids = Identities(urls["api"])
    try:
        other = await other_team_admin(ids)
        admin = bearer(api.admin_token())
        async with (
            metrics_service(nats_server.url, database, secret_key=SECRET) as running,
            httpx.AsyncClient(base_url=api.url, timeout=10) as client,
        ):
            body = {"name": "ns-api", "host": server.address, "private_key": server.private_key_pem}
            r = await client.post("/v1/servers", headers=admin, json=body)
            assert r.status_code == 201, r.text
            server_id = r.json()["id"]
            missing = await client.get(f"/v1/servers/{server_id}/metrics", headers=admin)
            assert missing.status_code == 404 and "yet" in missing.json()["detail"]  # its own: not read yet

            async def read() -> Any:
                r = await client.get(f"/v1/servers/{server_id}/metrics", headers=admin, params={"metric": "load1"})
                return r.json() if r.status_code == 200 and r.json()["series"] else None

            shown = await eventually(read, 60)
            (series,) = shown["series"]
            assert series["server_id"] == server_id and series["name"] == "ns-api" and series["kind"] == "server"
            assert shown["server_status"]["status"] == "up"
            hidden = await client.get(f"/v1/servers/{server_id}/metrics", headers=other)
            assert hidden.status_code == 404 and "ns-api" not in hidden.text and "load" not in hidden.text
            assert server_id in running.ctx.extra["fleet"].servers
    finally:
        await ids.close()
        await scheduler.stop()
        await api.shutdown()
