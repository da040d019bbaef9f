# ruff: noqa: F811 (the module's fixtures are imported from tests.api.module_api by name)
"""Cron jobs end to end through the REAL api and the REAL scheduler, both in this process (no `berth up`):
an application is deployed through the api (a busybox worker, run by the scheduler on Docker), a job is
created through the api, its schedule fires in the scheduler (on a clock running 15 times faster: every
minute is every 4 s), the api records the firing as a run of kind ``cron`` and sends it, the scheduler
runs it in a fresh container of the live image with the application's variables, and the run is read
back through the api with its exit code, its last lines and its logs; a failing command is recorded
failed with its exit code. One api and one scheduler for the module."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from berth_common.db.provision import provision
from tests.api.conftest import make_app
from tests.api.module_api import api, api_settings, api_urls, base_api_settings, client, members, until  # noqa: F401
from tests.scheduler import apps
from tests.scheduler.test_cron_jobs import FastScheduler, fast_clock
from tests.support.images import busybox_image

pytestmark = [pytest.mark.slow, pytest.mark.docker]
SECRET = "cron-s3cr3t"


@pytest.fixture(scope="module")
async def scheduler(module_nats_server, module_database, api) -> AsyncIterator[Any]:
    """The real scheduler (started after the api, which declared the streams), its clock 15x faster."""
    from berth_scheduler.settings import SchedulerSettings

    urls = await provision(module_database, "test-secret", ("scheduler",))
    settings = SchedulerSettings(
        nats_url=module_nats_server.url, database_url=urls["scheduler"], secret_key="test-secret", http_port=0
    )
    running = await FastScheduler(settings, clock=fast_clock()).start()
    yield running
    await running.stop()


async def test_a_schedule_fires_and_its_run_is_recorded(client, members, scheduler) -> None:
    image = busybox_image()
    body = {
        "name": "cronned",
        "source": {"kind": "image", "image": image},
        "services": [
            {
                "kind": "worker",
                "name": "worker",
                "command": apps.worker(ready_after_s=1),
                "health_command": apps.WORKER_HEALTH,
            }
        ],
        "env": [{"name": "GREETING", "value": "hello"}, {"name": "TOKEN", "value": SECRET, "secret": True}],
        "stop_timeout_s": 2,
    }
    app = await make_app(client, members.developer, body)
    base = f"/v1/applications/{app['id']}"
    try:
        r = await client.post(f"{base}/deployments", headers=members.developer)
        assert r.status_code in (201, 202), r.text
        dep = r.json()["id"]

        async def deployed() -> bool:
            found = (await client.get(f"/v1/deployments/{dep}", headers=members.viewer)).json()
            assert found["state"] not in ("failed", "cancelled"), found
            return found["state"] == "succeeded"

        await until(deployed, timeout=90, what="the deployment through the real scheduler")

        job = {
            "name": "greet",
            "cron": "* * * * *",
            "timezone": "Europe/Berlin",
            "command": ["sh", "-c", "echo $GREETING from cron; echo token=$TOKEN"],
            "timeout_s": 60,
        }
        r = await client.post(f"{base}/jobs", headers=members.developer, json=job)
        assert r.status_code == 201, r.text
        job_id = r.json()["job_id"]

        async def finished() -> list[dict] | None:
            r = await client.get(f"{base}/jobs/{job_id}/runs", headers=members.viewer)
            assert r.status_code == 200, r.text
            done = [x for x in r.json() if x["status"] not in ("queued", "running")]
            return done or None

        (run, *_) = await until(finished, timeout=90, what="a firing of the schedule recorded and finished")
        assert run["kind"] == "cron" and run["job_id"] == job_id and run["status"] == "succeeded", run
        got = (await client.get(f"{base}/runs/{run['run_id']}", headers=members.viewer)).json()
        assert got["exit_code"] == 0 and "hello from cron" in got["last_lines"], got
        logs = (await client.get(f"{base}/runs/{run['run_id']}/logs", headers=members.viewer)).text
        assert "hello from cron" in logs
        assert SECRET not in logs and SECRET not in str(got)  # the secret is redacted where it is shown

        # a failing command: its run is recorded failed with its exit code; then disabled, nothing more fires
        r = await client.patch(
            f"{base}/jobs/{job_id}", headers=members.developer, json={"command": ["sh", "-c", "echo bye; exit 7"]}
        )
        assert r.status_code == 200, r.text

        async def failed() -> dict | None:
            r = await client.get(f"{base}/jobs/{job_id}/runs", headers=members.viewer)
            return next((x for x in r.json() if x["status"] == "failed"), None)

        bad = await until(failed, timeout=90, what="a failing firing recorded")
        assert bad["exit_code"] == 7, bad
        r = await client.patch(f"{base}/jobs/{job_id}", headers=members.developer, json={"enabled": False})
        assert r.status_code == 200, r.text
        await asyncio.sleep(1)
        count = len((await client.get(f"{base}/jobs/{job_id}/runs", headers=members.viewer)).json())
        await asyncio.sleep(9)  # two schedule periods on the fast clock
        assert len((await client.get(f"{base}/jobs/{job_id}/runs", headers=members.viewer)).json()) == count
    finally:  # removed through the api and the scheduler: no container is left behind
        await client.delete(base, headers=members.admin)

        async def gone() -> bool:
            return (await client.get(base, headers=members.viewer)).status_code == 404

        await until(gone, timeout=90, what="the application removed")
