"""An application's own logs through the REAL api and scheduler, from real Docker replicas (busybox) writing
known lines: every replica merged by time and tagged, tail, since/until, one service, secrets redacted, the
follow's Server-Sent Events (a new line within a second) and its end when the client goes away (the
scheduler's follow task ends), another team's 404 and a viewer's 200."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import httpx
import pytest

from berth_common.db.provision import provision
from tests.api.conftest import make_app
from tests.metrics.service import containers, eventually, run_busybox
from tests.support.images import DOCKER

pytestmark = [pytest.mark.slow, pytest.mark.docker]
SECRET = "rt-s3cr3t-Value"
APP = {
    "name": "talk",
    "source": {"kind": "image", "image": "registry.example.com:5000/acme/talk:1.0"},
    "services": [
        {"kind": "web", "name": "web", "port": 8080, "replicas": 2, "health_path": "/"},
        {"kind": "worker", "name": "jobs", "command": ["jobs"]},
    ],
    "env": [{"name": "API_KEY", "value": SECRET, "secret": True}],
}


def replica_script(name: str, count: int, at: int = 0) -> list[str]:
    """From the wall-clock second ``at`` on (so replicas started one after the other write at the same time),
    lines ``<name> line <i>`` every 0.3 s (odd ones on stderr), then the secret once, then quiet."""
    script = (
        f"while [ $(date +%s) -lt {at} ]; do sleep 0.1; done; i=1; while [ $i -le {count} ]; do "
        f'if [ $((i % 2)) -eq 1 ]; then echo "{name} line $i" >&2; else echo "{name} line $i"; fi; '
        f'i=$((i+1)); sleep 0.3; done; echo "{name} key={SECRET}"; exec sleep 600'
    )
    return ["sh", "-c", script]


@asynccontextmanager
async def scheduler_running(nats_url: str, database: str, **overrides: Any) -> AsyncIterator[Any]:
    """The real scheduler in this process (its follows ask whether their client is there every 0.5 s)."""
    from berth_scheduler.settings import SchedulerSettings
    from tests.scheduler.platform import Scheduler

    urls = await provision(database, "test-secret", ("scheduler",))
    settings = SchedulerSettings(
        nats_url=nats_url,
        database_url=urls["scheduler"],
        secret_key="test-secret",
        http_port=0,
        **{"logs_follow_alive_s": 0.5, **overrides},
    )
    running = await Scheduler(settings).start()
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def scheduler(nats_server, database) -> AsyncIterator[Any]:
    async with scheduler_running(nats_server.url, database) as running:
        yield running


def follows() -> list[asyncio.Task[Any]]:
    """The scheduler's follow tasks (it runs in this process and loop)."""
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("follow-logs-") and not t.done()]


async def sse_lines(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """Each ``event: line``'s data of an event stream, as it comes."""
    event = ""
    async for raw in response.aiter_lines():
        if raw.startswith("event: "):
            event = raw.removeprefix("event: ")
        elif raw.startswith("data: ") and event == "line":
            yield json.loads(raw.removeprefix("data: "))
        elif raw == "":
            event = ""


async def test_runtime_logs_merged_filtered_followed(client, members, scheduler):
    app = await make_app(client, members.developer, APP)
    team = (await client.get("/v1/me", headers=members.developer)).json()["team"]["id"]
    url = f"/v1/applications/{app['id']}/logs"

    def labels(service: str, replica: int) -> dict[str, str]:
        return {"berth.team": team, "berth.app": app["id"], "berth.service": service, "berth.replica": str(replica)}

    async with containers() as made:
        at = int(time.time()) + 4
        for replica in (1, 2):
            made.append(run_busybox(labels=labels("web", replica), command=replica_script(f"web{replica}", 6, at)))
        made.append(run_busybox(labels=labels("jobs", 1), command=replica_script("jobs", 2, at)))
        names = {
            cid: subprocess.run(
                [DOCKER, "inspect", "-f", "{{.Name}}", cid], capture_output=True, text=True, check=True
            ).stdout.strip("/\n")
            for cid in made
        }

        async def every() -> list[dict[str, Any]] | None:
            r = await client.get(url, headers=members.viewer, params={"tail": 100})
            if r.status_code == 503:  # the scheduler still starting
                return None
            assert r.status_code == 200, r.text
            got = r.json()["lines"]
            return got if len(got) == 6 + 1 + 6 + 1 + 2 + 1 else None

        lines = await eventually(every, 60)
        # Tagged with service, replica (the container's name) and server; both streams; merged by time.
        assert {(x["service"], x["replica"], x["server_id"]) for x in lines} == {
            ("web", names[made[0]], "local"),
            ("web", names[made[1]], "local"),
            ("jobs", names[made[2]], "local"),
        }
        assert {x["stream"] for x in lines} == {"stdout", "stderr"}
        times = [datetime.fromisoformat(x["time"]) for x in lines]
        assert times == sorted(times)
        web1 = [x["line"] for x in lines if x["replica"] == names[made[0]]]
        assert web1 == [f"web1 line {i}" for i in range(1, 7)] + ["web1 key=[redacted]"]
        assert not any(SECRET in x["line"] for x in lines)
        # the replicas wrote at the same time: merged, their lines interleave
        order = [x["replica"] for x in lines if x["service"] == "web"]
        assert order != sorted(order, key=order.index)

        r = await client.get(url, headers=members.viewer, params={"tail": 3})
        assert r.json()["lines"] == lines[-3:]
        r = await client.get(url, headers=members.viewer, params={"tail": 100, "service": "jobs"})
        assert [x["line"] for x in r.json()["lines"]] == ["jobs line 1", "jobs line 2", "jobs key=[redacted]"]
        middle = lines[7]["time"]
        r = await client.get(url, headers=members.viewer, params={"since": middle})
        assert r.json()["lines"] == [x for x in lines if x["time"] >= middle]
        r = await client.get(url, headers=members.viewer, params={"until": middle, "tail": 2})
        assert r.json()["lines"] == [x for x in lines if x["time"] <= middle][-2:]
        r = await client.get(url, headers=members.viewer, params={"since": lines[-1]["time"], "until": middle})
        assert r.status_code == 422 and r.json()["errors"][0]["loc"] == "/query/until"

        # Another team: 404, as a missing application; no role below viewer exists, a viewer reads.
        assert (await client.get(url, headers=members.other)).status_code == 404
        assert (await client.get(url, headers=members.other, params={"follow": True})).status_code == 404

        # Follow: the last lines first, then a new line within a second of being written.
        params = {"tail": 2, "follow": True, "service": "web"}
        asked = time.monotonic()
        async with client.stream("GET", url, headers=members.viewer, params=params, timeout=30) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            stream = sse_lines(response)
            first = [await anext(stream), await anext(stream)]
            first_s = time.monotonic() - asked
            assert first_s < 1.0, first_s
            assert [x["line"] for x in first] == [x["line"] for x in lines if x["service"] == "web"][-2:]
            assert len(follows()) == 1
            for n in (1, 2):
                subprocess.run(
                    [DOCKER, "exec", made[1], "sh", "-c", f"echo fresh {n} {SECRET} > /proc/1/fd/1"], check=True
                )
                written = time.monotonic()
                fresh = await asyncio.wait_for(anext(stream), 10)
                latency = time.monotonic() - written
                assert fresh["line"] == f"fresh {n} [redacted]" and fresh["replica"] == names[made[1]]
                assert latency < 1.0, latency
            # A replica started during the follow (a rollout's, a scale's) is followed too.
            late = run_busybox(labels=labels("web", 3), command=["sh", "-c", "echo late line; exec sleep 600"])
            made.append(late)
            joined = await asyncio.wait_for(anext(stream), 15)
            assert (joined["line"], joined["service"]) == ("late line", "web")
        print(f"first line after {first_s:.3f} s; a new line after {latency:.3f} s")
        # The client went away: the scheduler's follow ends at its next ask (0.5 s here).
        await eventually(lambda: not follows(), 10)


async def test_an_application_without_replicas_has_no_lines(client, members, scheduler):
    app = await make_app(client, members.developer, APP)

    async def answered() -> dict[str, Any] | None:
        r = await client.get(f"/v1/applications/{app['id']}/logs", headers=members.viewer)
        return None if r.status_code == 503 else r.json()

    body = await eventually(answered, 60)
    assert body == {"application_id": app["id"], "lines": [], "unreachable": {}, "truncated": False}


async def test_a_follow_sends_no_more_lines_a_second_than_its_limit_and_says_how_many_it_left_out(
    client, members, nats_server, database
):
    app = await make_app(client, members.developer, APP)
    team = (await client.get("/v1/me", headers=members.developer)).json()["team"]["id"]
    labels = {"berth.team": team, "berth.app": app["id"], "berth.service": "web", "berth.replica": "1"}
    url = f"/v1/applications/{app['id']}/logs"
    async with scheduler_running(nats_server.url, database, logs_follow_lines_per_s=20) as _, containers() as made:
        made.append(run_busybox(labels=labels, command=["sleep", "600"]))

        async def ready() -> bool:
            return (await client.get(url, headers=members.viewer)).status_code == 200

        await eventually(ready, 60)
        async with client.stream("GET", url, headers=members.viewer, params={"follow": True}, timeout=30) as r:
            assert r.status_code == 200
            burst = "i=0; while [ $i -lt 500 ]; do echo burst $i; i=$((i+1)); done > /proc/1/fd/1"
            subprocess.run([DOCKER, "exec", made[0], "sh", "-c", burst], check=True)
            sent, left_out = 0, 0
            async with asyncio.timeout(15):
                async for raw in r.aiter_lines():
                    if raw.startswith("event: line"):
                        sent += 1
                    elif raw.endswith("lines left out (over the rate limit)"):
                        left_out += int(raw.removeprefix(": ").split()[0])
                    if sent + left_out == 500:
                        break
    assert sent + left_out == 500
    assert 15 <= sent <= 25, sent  # the burst of one second's worth, not the 500


async def test_a_follow_over_the_schedulers_limit_is_a_503_until_one_ends(client, members, nats_server, database):
    app = await make_app(client, members.developer, APP)
    url = f"/v1/applications/{app['id']}/logs"
    async with scheduler_running(nats_server.url, database, logs_follow_max=1):

        async def ready() -> bool:
            return (await client.get(url, headers=members.viewer)).status_code == 200

        await eventually(ready, 60)
        params = {"follow": True}
        async with client.stream("GET", url, headers=members.viewer, params=params, timeout=30) as first:
            assert first.status_code == 200
            second = await client.get(url, headers=members.viewer, params=params)
            assert second.status_code == 503 and second.headers["retry-after"]
            assert "as many logs as it may" in second.json()["detail"]
        await eventually(lambda: not follows(), 10)
        async with client.stream("GET", url, headers=members.viewer, params=params, timeout=30) as third:
            assert third.status_code == 200
