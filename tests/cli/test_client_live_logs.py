"""``berth logs -f`` and ``berth runs logs -f`` as a user runs them, against the REAL api and scheduler
reading real Docker containers (busybox): an application's replicas followed through the runtime logs
endpoint (the last lines, then a new one, secrets redacted, the command ending once ``--until`` passed), and a
run's container followed to the run's end, its streams kept apart and its exit code the command's. The
runner's part (marking the run started and finished) is played by the test on the api's table."""

from __future__ import annotations

import asyncio
import subprocess
from datetime import UTC, datetime, timedelta

import pytest

from berth_api.adapters import runs as repo
from berth_common.db import make_engine, make_sessionmaker
from tests.api.conftest import make_app
from tests.api.test_run_logs_follow import queued_run
from tests.api.test_runtime_logs import APP, SECRET, follows, scheduler  # noqa: F401 (the real scheduler)
from tests.metrics.service import containers, eventually, run_busybox
from tests.support.images import DOCKER

pytestmark = [pytest.mark.slow, pytest.mark.docker]


def name_of(container: str) -> str:
    out = subprocess.run([DOCKER, "inspect", "-f", "{{.Name}}", container], capture_output=True, text=True, check=True)
    return out.stdout.strip("/\n")


async def test_logs_follow_prints_the_replicas_lines_live(logged_in, client, members, scheduler):  # noqa: F811
    app = await make_app(client, members.developer, APP)
    team = (await client.get("/v1/me", headers=members.developer)).json()["team"]["id"]
    url = f"/v1/applications/{app['id']}/logs"

    def labels(replica: int) -> dict[str, str]:
        return {"berth.team": team, "berth.app": app["id"], "berth.service": "web", "berth.replica": str(replica)}

    async def lines(count: int) -> list[str] | None:
        r = await client.get(url, headers=members.viewer, params={"tail": 100})
        got = [x["line"] for x in r.json()["lines"]] if r.status_code == 200 else []
        return got if len(got) == count else None

    async with containers() as made:
        made.append(run_busybox(labels=labels(1), command=["sh", "-c", "echo 'web1 up'; exec sleep 600"]))
        await eventually(lambda: lines(1), 30)
        made.append(run_busybox(labels=labels(2), command=["sh", "-c", "echo 'web2 up' >&2; exec sleep 600"]))
        await eventually(lambda: lines(2), 30)
        web1, web2 = name_of(made[0]), name_of(made[1])

        until = (datetime.now(UTC) + timedelta(seconds=12)).isoformat().replace("+00:00", "Z")
        following = logged_in.start("logs", "talk", "-f", "--service", "web", "--until", until)
        await eventually(follows, 20)
        for text in (f"fresh {SECRET}", "second"):
            subprocess.run([DOCKER, "exec", made[1], "sh", "-c", f"echo '{text}' > /proc/1/fd/1"], check=True)
            await asyncio.sleep(0.5)
        r = await asyncio.wait_for(following, 40)
        assert (r.code, r.err) == (0, "")
        assert r.out == f"{web1} | web1 up\n{web2} | web2 up\n{web2} | fresh [redacted]\n{web2} | second\n"

        r = await logged_in("logs", "talk", "--tail", "1", "-t")
        assert r.code == 0 and r.out.endswith(f"Z {web2} | second\n"), r


async def test_runs_logs_follow_ends_with_the_runs_exit_code(api, logged_in, client, members, scheduler):  # noqa: F811
    app = await make_app(client, members.developer, APP)
    team = (await client.get("/v1/me", headers=members.developer)).json()["team"]["id"]
    engine = make_engine(api.settings.database_url.get_secret_value(), "api")
    sessions = make_sessionmaker(engine)
    run_id = await queued_run(sessions, team, app["id"])
    labels = {"berth.team": team, "berth.app": app["id"], "berth.kind": "run", "berth.run": run_id}
    script = "echo 'migrating'; sleep 0.1; echo 'warning: slow' >&2; sleep 3; echo 'done'; exit 3"
    try:
        async with containers() as made:
            following = logged_in.start("runs", "logs", "talk", run_id, "-f")
            await asyncio.sleep(1.0)  # queued: the command waits with the stream
            made.append(run_busybox(labels=labels, command=["sh", "-c", script]))
            started = {"status": "running", "server_id": "local", "container": name_of(made[0])}
            async with sessions() as s, s.begin():
                await repo.mark_started(s, run_id, {**started, "started_at": datetime.now(UTC)})
            subprocess.run([DOCKER, "wait", made[0]], capture_output=True, check=True)
            finished = {
                "status": "failed",
                "exit_code": 3,
                "reason": "exited with code 3",
                "last_lines": ["migrating", "warning: slow", "done"],
                "duration_s": 3.2,
                "finished_at": datetime.now(UTC),
            }
            async with sessions() as s, s.begin():
                await repo.mark_finished(s, run_id, finished, None)
            r = await asyncio.wait_for(following, 30)
        assert (r.code, r.out) == (3, "migrating\ndone\n"), r
        assert r.err == f"warning: slow\nRun {run_id} of talk failed: exited with code 3\n"
        listed = await logged_in("runs", "list", "talk")
        assert listed.out.splitlines()[1].split()[:4] == [run_id, "failed", "3", "web"]
    finally:
        await engine.dispose()
