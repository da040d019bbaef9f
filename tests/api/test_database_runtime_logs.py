"""A database's logs as an application's: since/until and follow through the REAL api and scheduler, from
a busybox container playing the database's (``service`` empty, ``replica`` the container's name); another
team's database is a 404 for a follow too, a restarted container is followed again without a line sent
twice, and the follow ends when its client goes away."""

from __future__ import annotations

import asyncio
import subprocess
import time
from typing import Any

import pytest

from berth_common import dbengines
from berth_common.bus import Bus
from tests.api.test_backups_api import _database
from tests.api.test_databases_api import DatabaseDouble
from tests.api.test_runtime_logs import follows, scheduler_running, sse_lines
from tests.metrics.service import containers, eventually, run_busybox
from tests.support.images import DOCKER

pytestmark = [pytest.mark.slow, pytest.mark.docker]


async def test_database_logs_in_a_window_and_followed(client, members, nats_server, database, api):
    from berth_common.bus.streams import CMD_STREAM
    from tests.api.test_databases_api import DURABLE

    databases = await DatabaseDouble(nats_server.url).start()  # plays the scheduler until the real one runs
    db = await _database(client, members.developer, databases)
    await databases.stop()
    bus = Bus("test", nats_server.url)
    await bus.connect()
    await bus.js.delete_consumer(CMD_STREAM, DURABLE)  # the real scheduler takes cmd.database.* from now on
    await bus.close()
    team = (await client.get("/v1/me", headers=members.developer)).json()["team"]["id"]
    script = 'for i in 1 2 3 4; do echo "LOG:  line $i"; sleep 0.2; done; exec sleep 600'
    name = dbengines.container_name(db["id"])  # what the scheduler made for the database, played by busybox
    url = f"/v1/databases/{db['id']}/logs"
    async with scheduler_running(nats_server.url, database), containers() as made:
        labels = {"berth.team": team, "berth.app": db["id"]}
        made.append(run_busybox("--name", name, labels=labels, command=["sh", "-c", script]))

        async def every() -> list[dict[str, Any]] | None:
            r = await client.get(url, headers=members.viewer)
            if r.status_code == 503:  # the scheduler still starting
                return None
            assert r.status_code == 200, r.text
            got = r.json()["lines"]
            return got if len(got) == 4 else None

        lines = await eventually(every, 60)
        assert [x["line"] for x in lines] == [f"LOG:  line {i}" for i in range(1, 5)]
        assert {(x["service"], x["replica"], x["server_id"]) for x in lines} == {("", name, "local")}
        r = await client.get(url, headers=members.viewer, params={"since": lines[1]["time"]})
        assert r.json()["lines"] == lines[1:]
        r = await client.get(url, headers=members.viewer, params={"until": lines[2]["time"], "tail": 2})
        assert r.json()["lines"] == lines[1:3]
        assert (await client.get(url, headers=members.other, params={"follow": True})).status_code == 404

        asked = time.monotonic()
        async with client.stream("GET", url, headers=members.viewer, params={"follow": True, "tail": 1}) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            stream = sse_lines(r)
            assert await asyncio.wait_for(anext(stream), 10) == lines[-1]
            assert time.monotonic() - asked < 1.0
            subprocess.run([DOCKER, "exec", name, "sh", "-c", "echo 'LOG:  fresh' > /proc/1/fd/1"], check=True)
            written = time.monotonic()
            fresh = await asyncio.wait_for(anext(stream), 10)
            assert (fresh["line"], fresh["replica"]) == ("LOG:  fresh", name)
            assert time.monotonic() - written < 1.0
            assert len(follows()) == 1
            # A restarted container is followed again from its first new line: nothing sent twice.
            subprocess.run([DOCKER, "restart", "-t", "0", name], check=True, capture_output=True)
            again = [await asyncio.wait_for(anext(stream), 15) for _ in range(4)]
            assert [x["line"] for x in again] == [f"LOG:  line {i}" for i in range(1, 5)]
            assert all(x["time"] > fresh["time"] for x in again)
        await eventually(lambda: not follows(), 10)
