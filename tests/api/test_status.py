"""GET /v1/status asks every service's health over the bus: a running scheduler is ready, a missing one is not."""

from __future__ import annotations

import asyncio
import time

from berth_common.catalogue import HealthQuery
from berth_common.runtime import serve
from tests.api.conftest import bearer


async def _status(client, api) -> dict[str, dict]:
    r = await client.get("/v1/status", headers=bearer(api.admin_token()))
    assert r.status_code == 200, r.text
    body = r.json()
    services = {s["service"]: s for s in body["services"]}
    assert set(services) == set(HealthQuery.CONSUMERS)
    assert body["ready"] == all(s["ready"] for s in services.values())
    return services


async def test_status_without_the_scheduler(client, api):
    started = time.monotonic()
    services = await _status(client, api)
    assert time.monotonic() - started < api.settings.status_timeout_s * 2 + 1  # asked concurrently
    assert services["api"]["ready"] is True
    assert services["api"]["components"] == {"bus": True, "db": True}
    scheduler = services["scheduler"]
    assert scheduler["ready"] is False
    assert "scheduler" in scheduler["error"] and "not running" in scheduler["error"]


async def test_status_with_the_scheduler_running(client, api, nats_server, api_urls):
    from berth_scheduler.bootstrap import spec as scheduler_spec
    from berth_scheduler.settings import SchedulerSettings

    settings = SchedulerSettings(nats_url=nats_server.url, database_url=api_urls["scheduler"], http_port=0)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(scheduler_spec(settings), stop))
    try:
        for _ in range(200):
            services = await _status(client, api)
            if services["scheduler"]["ready"] or task.done():
                break
            await asyncio.sleep(0.1)
        assert services["scheduler"] == {
            "service": "scheduler",
            "ready": True,
            "components": {"bus": True, "db": True},
            "error": None,
        }
        assert services["builder"]["ready"] is False and services["builder"]["error"]
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    services = await _status(client, api)
    assert services["scheduler"]["ready"] is False
