"""A one-off run's log followed as Server-Sent Events through the REAL api and scheduler from a real Docker
container: the stream waits while the run is queued, sends the lines written before it was asked and each
new one (secrets redacted, as in the JSON tail), and ends with one `end` event carrying the run once its container exited and
the run was recorded finished. The runner's part (marking the run started and finished) is played by the
test on the api's table; following the container is the scheduler's real follow machinery."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from berth_api.adapters import runs as repo
from berth_common.db import make_engine, make_sessionmaker
from berth_common.envelope import new_id
from tests.api.conftest import make_app
from tests.api.test_runtime_logs import APP, SECRET, follows, scheduler  # noqa: F401 (the real scheduler)
from tests.metrics.service import containers, eventually, run_busybox
from tests.support.images import DOCKER

pytestmark = [pytest.mark.slow, pytest.mark.docker]


async def sse(response: httpx.Response) -> AsyncIterator[tuple[str, Any]]:
    """(event, data as JSON) of each event of a stream, as it comes."""
    event, data = "message", ""
    async for raw in response.aiter_lines():
        if raw.startswith("event: "):
            event = raw.removeprefix("event: ")
        elif raw.startswith("data: "):
            data = raw.removeprefix("data: ")
        elif raw == "" and data:
            yield event, json.loads(data)
            event, data = "message", ""


async def queued_run(sessions: Any, team: str, application_id: str) -> str:
    """A queued run of the application written into the api's table (as ``POST .../runs`` records one)."""
    run_id = new_id()
    row = {
        "id": run_id,
        "team_id": team,
        "application_id": application_id,
        "deployment_id": new_id(),
        "service": "web",
        "command": ["sh", "-c", "migrate"],
        "timeout_s": 60,
        "status": "queued",
        "last_lines": [],
        "created_by": None,
    }
    async with sessions() as s, s.begin():
        await repo.insert_run(s, row)
    return run_id


async def test_a_runs_log_is_followed_until_the_run_ends(api, client, members, scheduler):  # noqa: F811
    app = await make_app(client, members.developer, APP)
    team = (await client.get("/v1/me", headers=members.developer)).json()["team"]["id"]
    engine = make_engine(api.settings.database_url.get_secret_value(), "api")
    sessions = make_sessionmaker(engine)
    run_id = await queued_run(sessions, team, app["id"])
    url = f"/v1/applications/{app['id']}/runs/{run_id}/logs"
    labels = {"berth.team": team, "berth.app": app["id"], "berth.kind": "run", "berth.run": run_id}
    script = (
        "echo 'run line 1'; sleep 0.1; echo 'run line 2' >&2; sleep 2; "
        f"echo 'run line 3 key={SECRET}'; sleep 1; echo 'run line 4'; exit 3"
    )
    try:
        assert (await client.get(url, headers=members.other, params={"follow": True})).status_code == 404
        async with (
            containers() as made,
            client.stream("GET", url, headers=members.viewer, params={"follow": True}, timeout=60) as response,
        ):
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = sse(response)
            await asyncio.sleep(0.6)  # queued: the stream waits for the run's container
            made.append(run_busybox(labels=labels, command=["sh", "-c", script]))
            name = subprocess.run(
                [DOCKER, "inspect", "-f", "{{.Name}}", made[0]], capture_output=True, text=True, check=True
            ).stdout.strip("/\n")
            started = datetime.now(UTC)
            async with sessions() as s, s.begin():
                values = {"status": "running", "server_id": "local", "container": name, "started_at": started}
                await repo.mark_started(s, run_id, values)
            got = [await asyncio.wait_for(anext(events), 15) for _ in range(3)]
            assert [(e, d["line"], d["stream"], d["replica"]) for e, d in got] == [
                ("line", "run line 1", "stdout", name),
                ("line", "run line 2", "stderr", name),
                ("line", "run line 3 key=[redacted]", "stdout", name),
            ]
            assert len(follows()) == 1
            code = subprocess.run([DOCKER, "wait", made[0]], capture_output=True, text=True, check=True)
            assert code.stdout.strip() == "3"
            finished = {
                "status": "failed",
                "exit_code": 3,
                "reason": "exited with code 3",
                "last_lines": ["run line 1", "run line 2", "run line 3 key=[redacted]", "run line 4"],
                "duration_s": 3.2,
                "server_id": "local",
                "container": name,
                "finished_at": datetime.now(UTC),
            }
            async with sessions() as s, s.begin():
                await repo.mark_finished(s, run_id, finished, None)
            recorded = time.monotonic()
            rest = [e async for e in events]
            ended_s = time.monotonic() - recorded
            assert [(e, d.get("line")) for e, d in rest[:-1]] == [("line", "run line 4")]
            kind, end = rest[-1]
            assert kind == "end"
            assert (end["run_id"], end["status"], end["exit_code"], end["reason"]) == (
                run_id,
                "failed",
                3,
                "exited with code 3",
            )
            assert ended_s < 2.0, ended_s
            # A finished run: its container's lines, then its end at once.
            async with client.stream("GET", url, headers=members.viewer, params={"follow": True}) as again:
                after = [(e, d.get("line") if e == "line" else d["status"]) async for e, d in sse(again)]
            assert after == [
                ("line", "run line 1"),
                ("line", "run line 2"),
                ("line", "run line 3 key=[redacted]"),
                ("line", "run line 4"),
                ("end", "failed"),
            ]
            # The JSON tail is redacted the same way.
            tail = (await client.get(url, headers=members.viewer, params={"tail": 2})).json()
            assert [x["line"] for x in tail["lines"]] == ["run line 3 key=[redacted]", "run line 4"]
        # The stream ended: the scheduler's follow ends at its next ask.
        await eventually(lambda: not follows(), 10)
    finally:
        await engine.dispose()
