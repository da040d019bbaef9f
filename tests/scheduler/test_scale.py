"""Scaling the live version end to end in-process: the scheduler, the real bus and Postgres, real proxy-sync and
Traefik, real containers, traffic through Traefik. The api is played by the test (it publishes
``cmd.application.scale`` and reads ``evt.application.scaled``). The test app answers 404 on ``/`` while it
warms up, so a replica routed before its readiness check passed is an error the load sees."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from typing import Any

import pytest

from berth_common.catalogue import ReplicasQuery, ReplicasReply, ScaleApplication
from berth_scheduler.domain import names
from tests.scheduler.platform import Load, containers_of, web_app

pytestmark = [pytest.mark.slow, pytest.mark.docker]
UPSTREAM = re.compile(rb"http://127\.0\.0\.1:\d+")


async def scale(platform, app_id: str, services: dict[str, int], *, request_id: str | None = None, **kw: Any) -> str:
    rid = request_id or uuid.uuid4().hex
    cmd = ScaleApplication(application_id=app_id, team_id="team-1", request_id=rid, services=services, **kw)
    await platform.api.publish(cmd, id=f"scale-{rid}-{uuid.uuid4().hex[:6]}")
    return rid


def scaled(platform, app_id: str) -> list[dict[str, Any]]:
    return [
        e["data"]
        for e in platform.events
        if e["type"] == "evt.application.scaled" and e["data"]["application_id"] == app_id
    ]


async def wait_scaled(platform, app_id: str, request_id: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = [e for e in scaled(platform, app_id) if e["request_id"] == request_id]
        if found:
            return found[0]
        assert time.monotonic() < deadline, f"no evt.application.scaled for {request_id}: {scaled(platform, app_id)}"
        await asyncio.sleep(0.1)


def upstreams(platform, route_id: str) -> list[bytes]:
    return UPSTREAM.findall(platform.route_file(route_id) or b"")


def replicas(app_id: str) -> list[str]:
    return [name for name, _ in containers_of(app_id)]


async def test_scale_1_to_3_to_1_under_load(platform, busybox, app_id, unique):
    from berth_scheduler.domain import names

    host = f"web-shop-{unique}.localhost"
    d1 = await platform.deploy(app_id, web_app(busybox, "v1", host, warmup_s=2))
    assert (await platform.wait(d1))["type"] == "evt.deployment.succeeded"
    route = names.route_id(app_id, "web")
    assert len(upstreams(platform, route)) == 1
    load = Load(platform.traefik.web_port, host).start()
    await asyncio.sleep(0.5)

    up = await scale(platform, app_id, {"web": 3}, reason="launch day")
    # while the new replicas warm up (2 s) they run but are not routed
    deadline = time.monotonic() + 10
    while len(replicas(app_id)) < 3:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert len(upstreams(platform, route)) == 1
    event = await wait_scaled(platform, app_id, up)
    assert {k: event[k] for k in ("service", "from_replicas", "to_replicas", "trigger", "reason", "outcome")} == {
        "service": "web",
        "from_replicas": 1,
        "to_replicas": 3,
        "trigger": "manual",
        "reason": "launch day",
        "outcome": "scaled",
    }
    assert event["failure"] is None
    assert len(set(upstreams(platform, route))) == 3
    assert [dep for _, dep in containers_of(app_id)] == [d1, d1, d1]  # the live version: nothing redeployed
    # what the api shows: the current replicas, all of the live version and ready
    reply = await platform.api.request("scheduler", "replicas", ReplicasQuery(application_id=app_id), ReplicasReply)
    assert reply.live_deployment_id == d1
    assert sorted((r.deployment_id, r.service, r.replica, r.state, r.health) for r in reply.replicas) == [
        (d1, "web", n, "running", "ready") for n in (1, 2, 3)
    ]
    await asyncio.sleep(1.0)

    down = await scale(platform, app_id, {"web": 1})
    event = await wait_scaled(platform, app_id, down)
    assert (event["from_replicas"], event["to_replicas"], event["outcome"]) == (3, 1, "scaled")
    await asyncio.sleep(0.5)
    await asyncio.to_thread(load.stop)
    assert load.errors == [], load.errors[:10]
    assert set(load.contents()) == {"v1"}
    assert replicas(app_id) == [names.container_name("shop", "web", d1, 1)]
    assert len(upstreams(platform, route)) == 1

    # the same request again (a redelivery, another message id): no second effect
    await scale(platform, app_id, {"web": 3}, request_id=up)
    await asyncio.sleep(2.0)
    assert len([e for e in scaled(platform, app_id) if e["request_id"] == up]) == 1
    assert len(replicas(app_id)) == 1

    # a service the live version does not have, and an application with no live deployment: failed, said why
    bad = await scale(platform, app_id, {"nope": 2})
    event = await wait_scaled(platform, app_id, bad)
    assert (event["outcome"], event["failure"]) == ("failed", "the live version has no service 'nope'")
    none = await scale(platform, f"{app_id}-none", {"web": 2})
    event = await wait_scaled(platform, f"{app_id}-none", none)
    assert (event["outcome"], event["failure"]) == ("failed", "the application has no live deployment to scale")


async def test_zero_errors_under_load_scaling_1_to_10_to_1(platform, busybox, app_id, unique):
    host = f"web-shop-{unique}.localhost"
    d1 = await platform.deploy(app_id, web_app(busybox, "v1", host, warmup_s=1))
    assert (await platform.wait(d1))["type"] == "evt.deployment.succeeded"
    load = Load(platform.traefik.web_port, host).start()
    await asyncio.sleep(0.5)
    up = await scale(platform, app_id, {"web": 10})
    assert (await wait_scaled(platform, app_id, up, timeout=90))["to_replicas"] == 10
    assert len(replicas(app_id)) == 10
    await asyncio.sleep(1.0)
    down = await scale(platform, app_id, {"web": 1})
    assert (await wait_scaled(platform, app_id, down, timeout=60))["to_replicas"] == 1
    await asyncio.to_thread(load.stop)
    assert load.errors == [], load.errors[:10]
    assert len(load.results) > 200
    assert len(replicas(app_id)) == 1


async def test_scheduler_restart_mid_scale_resumes_and_deployments_wait(platform, busybox, app_id, unique):
    host = f"web-shop-{unique}.localhost"
    d1 = await platform.deploy(app_id, web_app(busybox, "v1", host, warmup_s=4))
    assert (await platform.wait(d1))["type"] == "evt.deployment.succeeded"
    load = Load(platform.traefik.web_port, host).start()
    up = await scale(platform, app_id, {"web": 3})
    deadline = time.monotonic() + 10
    while len(replicas(app_id)) < 3:  # started, still warming up
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await platform.scheduler.stop()  # mid-scale
    await asyncio.sleep(0.5)
    await platform.scheduler.start()
    event = await wait_scaled(platform, app_id, up)
    assert (event["to_replicas"], event["outcome"]) == (3, "scaled")
    assert len(replicas(app_id)) == 3  # the replicas made before the restart were kept, none made twice

    # a deployment asked for while a scale runs waits for it; a scale asked for during a deployment waits too
    down = await scale(platform, app_id, {"web": 2})
    d2 = await platform.deploy(app_id, web_app(busybox, "v2", host, warmup_s=1, replicas=2))
    assert (await platform.wait(d2, timeout=60))["type"] == "evt.deployment.succeeded"
    assert (await wait_scaled(platform, app_id, down))["to_replicas"] == 2
    # the two commands travel on different subjects, so either may reach the scheduler first: they must not
    # overlap
    scaled_at = next(e["_at"] for e in platform.events if e["data"].get("request_id") == down)
    started_at = min(e["_at"] for e in platform.of(d2, "evt.deployment.progressed") if e["data"]["state"] != "queued")
    succeeded_at = next(e["_at"] for e in platform.of(d2, "evt.deployment.succeeded"))
    assert scaled_at < started_at or scaled_at > succeeded_at
    again = await scale(platform, app_id, {"web": 4})
    d3 = await platform.deploy(app_id, web_app(busybox, "v3", host, warmup_s=1, replicas=2))
    assert (await platform.wait(d3, timeout=60))["type"] == "evt.deployment.succeeded"
    assert (await wait_scaled(platform, app_id, again))["from_replicas"] == 2
    # whichever came first, the two did not overlap
    scaled_at = next(e["_at"] for e in platform.events if e["data"].get("request_id") == again)
    started_at = min(e["_at"] for e in platform.of(d3, "evt.deployment.progressed") if e["data"]["state"] != "queued")
    succeeded_at = next(e["_at"] for e in platform.of(d3, "evt.deployment.succeeded"))
    assert scaled_at < started_at or scaled_at > succeeded_at
    await asyncio.sleep(0.5)
    await asyncio.to_thread(load.stop)
    assert load.errors == [], load.errors[:10]
    assert load.contents()[-1] == "v3"


async def test_a_scale_whose_route_change_is_not_confirmed_puts_the_routes_back(platform, busybox, app_id, unique):
    """proxy-sync away: the scale fails after the route timeout, sends the routes as they were (recorded with
    the step, newer generations) and removes the added replicas. When proxy-sync comes back it applies the
    late step and the restore, newest last: the route ends with the one replica still running, never the
    removed ones, and it serves without errors."""
    host = f"web-shop-{unique}.localhost"
    d1 = await platform.deploy(app_id, web_app(busybox, "v1", host))
    assert (await platform.wait(d1))["type"] == "evt.deployment.succeeded"
    route_id = names.route_id(app_id, "web")
    before = upstreams(platform, route_id)
    assert len(before) == 1
    platform.scheduler.settings.route_timeout_s = 1.5
    await platform.proxy.stop()
    try:
        up = await scale(platform, app_id, {"web": 3})
        event = await wait_scaled(platform, app_id, up, timeout=60)
        assert (event["outcome"], event["to_replicas"]) == ("failed", 1), event
        assert "not confirmed live within 1.5s" in event["failure"], event
        assert "routes NOT confirmed restored" in event["failure"] and "added replicas removed" in event["failure"]
        assert len(replicas(app_id)) == 1
    finally:
        platform.scheduler.settings.route_timeout_s = 15
        await platform.proxy.start()
    deadline = time.monotonic() + 20
    while upstreams(platform, route_id) != before:  # the restore outranks the late step
        assert time.monotonic() < deadline, upstreams(platform, route_id)
        await asyncio.sleep(0.1)
    load = Load(platform.traefik.web_port, host).start()
    await asyncio.sleep(1.5)
    await asyncio.to_thread(load.stop)
    assert upstreams(platform, route_id) == before
    assert load.errors == [], load.errors[:10]
    assert load.contents()[-1] == "v1"
