"""Runtime logs on a remote server: the real scheduler reaches a namespace test server's engine over SSH (the
Docker connection factory's forwarded socket) and merges its replica's lines with a local replica's, each
tagged with its server; a follow publishes a line written on the remote server, and ends once nobody
answers on its inbox any more."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import nats
import pytest
import sqlalchemy as sa

from berth_common.bus import Bus, ServiceUnavailableError, subscriptions_confirmed
from berth_common.catalogue import (
    FollowLogsQuery,
    FollowLogsReply,
    RuntimeLogsQuery,
    RuntimeLogsReply,
)
from berth_common.db import make_engine
from berth_common.db.provision import provision
from tests.api.test_runtime_logs import follows, scheduler_running
from tests.metrics.service import containers, eventually, run_busybox
from tests.support.images import busybox_image
from tests.support.testservers import TestServer, running_servers, server_changed

pytestmark = [pytest.mark.slow, pytest.mark.docker]
TEAM = "team-logs"


@pytest.fixture(scope="module")
def server() -> Iterator[TestServer]:
    image = busybox_image()
    with running_servers(1) as (one,):
        one.load_image(image)
        yield one


def script(name: str) -> list[str]:
    return ["sh", "-c", f'for i in 1 2 3 4; do echo "{name} line $i"; sleep 0.3; done; exec sleep 600']


async def test_a_remote_replica_is_read_and_followed_through_its_server(server, nats_server, database, unique):
    urls = await provision(database, "test-secret", ("scheduler",))
    async with scheduler_running(nats_server.url, database, ssh_timeout_s=5):
        api = Bus("api", nats_server.url)
        await api.connect()
        engine = make_engine(urls["scheduler"], "scheduler")
        server_id, app_id = f"s{unique}", uuid.uuid4().hex
        remote = f"berth-logs-remote-{unique}"
        labels = {"berth.team": TEAM, "berth.app": app_id, "berth.service": "web"}
        try:
            await api.publish(server_changed(server, server_id, team_id=TEAM, name="edge-logs"))

            async def known() -> bool:
                with contextlib.suppress(sa.exc.ProgrammingError):  # its migrations may still be running
                    async with engine.begin() as conn:
                        found = await conn.execute(
                            sa.text("SELECT count(*) FROM scheduler.servers WHERE id = :id"), {"id": server_id}
                        )
                        return bool(found.scalar())
                return False

            await eventually(known, 30)
            async with engine.begin() as conn:  # the replica as a rollout records it: where it runs
                await conn.execute(
                    sa.text(
                        "INSERT INTO scheduler.containers (name, deployment_id, application_id, service, kind, replica,"
                        " server_id) VALUES (:name, 'd1', :app, 'web', 'web', 2, :server)"
                    ),
                    {"name": remote, "app": app_id, "server": server_id},
                )
            argv = ["run", "-d", "--name", remote]
            for key, value in {**labels, "berth.replica": "2"}.items():
                argv += ["--label", f"{key}={value}"]
            server.docker(*argv, busybox_image(), *script("remote"))
            async with containers() as made:
                made.append(run_busybox(labels={**labels, "berth.replica": "1"}, command=script("local")))
                query = RuntimeLogsQuery(team_id=TEAM, application_id=app_id, tail=100)

                async def both() -> RuntimeLogsReply | None:
                    try:
                        reply = await api.request("scheduler", "runtime_logs", query, RuntimeLogsReply, timeout=30)
                    except ServiceUnavailableError:  # still starting
                        return None
                    return reply if len(reply.lines) == 8 else None

                reply = await eventually(both, 60)
                assert reply.unreachable == {}
                assert [x.line for x in reply.lines if x.server_id == server_id] == [
                    f"remote line {i}" for i in range(1, 5)
                ]
                assert {x.replica for x in reply.lines if x.server_id == server_id} == {remote}
                assert [x.line for x in reply.lines if x.server_id == "local"] == [
                    f"local line {i}" for i in range(1, 5)
                ]
                times = [x.time or datetime.min for x in reply.lines]
                assert times == sorted(times)
                other = RuntimeLogsQuery(team_id="another-team", application_id=app_id)
                assert (await api.request("scheduler", "runtime_logs", other, RuntimeLogsReply, timeout=30)).lines == []

                # Follow: a line written on the remote server comes to the inbox.
                nc = await nats.connect(nats_server.url)
                inbox = nc.new_inbox()
                batches: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

                async def on_lines(msg: Any) -> None:
                    batches.put_nowait(json.loads(msg.data))

                async def on_alive(msg: Any) -> None:
                    await msg.respond(b"ok")

                subs = [await nc.subscribe(inbox, cb=on_lines), await nc.subscribe(inbox + ".alive", cb=on_alive)]
                await subscriptions_confirmed(nc)
                follow = FollowLogsQuery(
                    team_id=TEAM, inbox=inbox, application_id=app_id, since=datetime.now().astimezone()
                )
                answer = await api.request("scheduler", "follow_logs", follow, FollowLogsReply, timeout=30)
                assert (answer.found, answer.containers, answer.unreachable) == (True, 2, {})
                await asyncio.sleep(0.5)  # both engines are followed by now
                server.docker("exec", remote, "sh", "-c", "echo remote fresh > /proc/1/fd/1")
                written = time.monotonic()
                batch = await asyncio.wait_for(batches.get(), 10)
                latency = time.monotonic() - written
                assert [(x["line"], x["server_id"], x["replica"]) for x in batch["lines"]] == [
                    ("remote fresh", server_id, remote)
                ]
                assert latency < 1.0, latency
                assert len(follows()) == 1
                for sub in subs:
                    await sub.unsubscribe()
                await eventually(lambda: not follows(), 10)
                await nc.close()
        finally:
            with contextlib.suppress(Exception):
                server.docker("rm", "-f", remote)
            await engine.dispose()
            await api.close()
