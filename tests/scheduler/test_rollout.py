"""Rollouts end to end in-process: the scheduler, the real bus and Postgres, real proxy-sync and Traefik,
real containers. The api is played by the test (it publishes the commands and reads the events)."""

from __future__ import annotations

import asyncio
import time

import pytest

from berth_scheduler.domain import names
from tests.scheduler import apps
from tests.scheduler.platform import Load, containers_of, wait_served, web_app

pytestmark = [pytest.mark.slow, pytest.mark.docker]


async def test_deploy_image_to_a_live_url_then_redeploy_under_load(platform, busybox, app_id, unique):
    host = f"web-shop-{unique}.localhost"
    d1 = await platform.deploy(app_id, web_app(busybox, "v1", host, replicas=2))
    done = await platform.wait(d1, timeout=60)
    assert done["type"] == "evt.deployment.succeeded", done
    assert done["data"]["image"] == busybox and len(done["data"]["replicas"]) == 2
    status, body = await asyncio.to_thread(platform.traefik.get, host)
    assert (status, body) == (200, b"v1\n")
    assert [s for _, s in platform.steps(d1)] == [
        "queued",
        "starting replicas",
        "replicas started",
        "replica ready",
        "replica ready",
        "replicas ready",
        "new version live",
        "drained",
        "succeeded",
    ]

    load = Load(platform.traefik.web_port, host).start()
    await asyncio.sleep(1.0)
    d2 = await platform.deploy(app_id, web_app(busybox, "v2", host, replicas=2, warmup_s=3))
    done = await platform.wait(d2, timeout=60)
    await asyncio.sleep(1.0)
    results = await asyncio.to_thread(load.stop)
    assert done["type"] == "evt.deployment.succeeded", done
    assert load.errors == [], load.errors[:10]
    versions = load.contents()
    assert "v1" in versions and versions[-1] == "v2"
    first_v2 = versions.index("v2")
    assert set(versions[first_v2:]) <= {"v1", "v2"} and versions.count("v2") > 10
    assert sum(1 for r in results if r[0] == "post") > 20 and sum(1 for r in results if r[0] == "slow") > 3
    # only the new version's containers are left
    assert {dep for _, dep in containers_of(app_id)} == {d2}
    # the secret never left the scheduler
    text = str(platform.events) + str(platform.logs)
    assert "pw-never-shown" not in text
    assert any(line["data"]["line"].startswith("[routing] replicas ready") for line in platform.logs)


async def test_broken_versions_fail_in_time_and_the_old_one_keeps_serving(platform, busybox, app_id, unique):
    host = f"web-shop-{unique}.localhost"
    d1 = await platform.deploy(app_id, web_app(busybox, "v1", host))
    assert (await platform.wait(d1))["type"] == "evt.deployment.succeeded"
    route_id = names.route_id(app_id, "web")
    before = platform.route_file(route_id)
    assert before is not None and b"Host(`" + host.encode() + b"`)" in before

    load = Load(platform.traefik.web_port, host).start()
    # never healthy: 503 on the health path forever
    t0 = time.monotonic()
    d2 = await platform.deploy(app_id, web_app(busybox, "v2", host, never_healthy=True), readiness_timeout_s=4)
    failed = await platform.wait(d2, timeout=30)
    took = time.monotonic() - t0
    assert failed["type"] == "evt.deployment.failed", failed
    assert failed["data"]["failed_in"] == "verifying"
    assert (
        "no 2xx from GET /cgi-bin/health before the deadline (GET /cgi-bin/health answered 503: warming up)"
        in failed["data"]["reason"]
    )
    assert 3.5 < took < 4 + 6, took
    # crash loop: fails fast, with the container's own last words
    d3 = await platform.deploy(
        app_id,
        {
            **web_app(busybox, "v3", host),
            "services": [{**web_app(busybox, "v3", host)["services"][0], "command": apps.crash()}],
        },
    )
    crashed = await platform.wait(d3, timeout=60)
    assert crashed["type"] == "evt.deployment.failed", crashed
    assert (
        "keeps crashing" in crashed["data"]["reason"] and "cannot connect to the database" in crashed["data"]["reason"]
    )
    # a missing image: a reason a person can act on
    d4 = await platform.deploy(
        app_id, {**web_app(busybox, "v4", host), "source": {"kind": "image", "image": "berth-test/absent:1"}}
    )
    missing = await platform.wait(d4, timeout=30)
    assert missing["type"] == "evt.deployment.failed" and "is not on this server" in missing["data"]["reason"], missing
    await asyncio.sleep(0.5)
    await asyncio.to_thread(load.stop)

    assert load.errors == [], load.errors[:10]
    assert set(load.contents()) == {"v1"}
    assert platform.route_file(route_id) == before  # byte-identical
    assert {dep for _, dep in containers_of(app_id)} == {d1}
    for dep in (d2, d3, d4):
        assert platform.steps(dep)[-1][0] == "failed"
        assert "new container(s) removed" in platform.steps(dep)[-1][1] or any(
            "removed" in e["data"]["detail"] for e in platform.of(dep, "evt.deployment.progressed")
        )


async def test_one_at_a_time_per_application_queue_and_cancel(platform, busybox, app_id, unique):
    host = f"web-shop-{unique}.localhost"
    d1 = await platform.deploy(app_id, web_app(busybox, "v1", host, warmup_s=2))
    await platform.wait(d1, ("evt.deployment.progressed",), state="verifying")
    d2 = await platform.deploy(app_id, web_app(busybox, "v2", host))
    d3 = await platform.deploy(app_id, web_app(busybox, "v3", host))
    queued = await platform.wait(d3, ("evt.deployment.progressed",), state="queued")
    assert queued["data"]["detail"] == "2 deployment(s) of this application ahead"
    d4 = await platform.deploy(app_id, web_app(busybox, "v4", host), when_busy="replace_queued")
    assert (await platform.wait(d2))["type"] == "evt.deployment.cancelled"
    assert (await platform.wait(d3))["data"]["reason"] == f"replaced by {d4}"
    assert (await platform.wait(d1))["type"] == "evt.deployment.succeeded"
    assert (await platform.wait(d4))["type"] == "evt.deployment.succeeded"
    # d4 was admitted only after d1 ended
    d1_done = platform.of(d1, "evt.deployment.succeeded")[0]["_at"]
    d4_started = next(
        e["_at"] for e in platform.of(d4, "evt.deployment.progressed") if e["data"]["state"] == "starting"
    )
    assert d4_started >= d1_done
    await wait_served(platform, host, "v4")
    assert {dep for _, dep in containers_of(app_id)} == {d4}

    # cancel one that is verifying: its containers go, the live version stays
    d5 = await platform.deploy(app_id, web_app(busybox, "v5", host, warmup_s=30))
    await platform.wait(d5, ("evt.deployment.progressed",), state="verifying")
    await platform.cancel(d5)
    cancelled = await platform.wait(d5, timeout=20)
    assert cancelled["type"] == "evt.deployment.cancelled" and cancelled["data"]["cancelled_in"] == "verifying"
    assert {dep for _, dep in containers_of(app_id)} == {d4}
    await wait_served(platform, host, "v4")
    # too late to cancel a finished one; a start command sent again (new message id) is not a second run
    seen = len(platform.of(d4))
    await platform.cancel(d4)
    await platform.deploy(app_id, web_app(busybox, "v4", host), deployment_id=d4)
    await asyncio.sleep(1.5)
    assert len(platform.of(d4)) == seen
    assert {dep for _, dep in containers_of(app_id)} == {d4}


async def test_scheduler_restart_mid_deploy_resumes(platform, busybox, app_id, unique):
    host = f"web-shop-{unique}.localhost"
    d1 = await platform.deploy(app_id, web_app(busybox, "v1", host))
    assert (await platform.wait(d1))["type"] == "evt.deployment.succeeded"
    load = Load(platform.traefik.web_port, host).start()
    d2 = await platform.deploy(app_id, web_app(busybox, "v2", host, warmup_s=4, replicas=2))
    await platform.wait(d2, ("evt.deployment.progressed",), state="verifying")
    await platform.scheduler.stop()  # mid-verifying
    await asyncio.sleep(1)
    assert {dep for _, dep in containers_of(app_id)} == {d1, d2}
    await platform.scheduler.start()
    done = await platform.wait(d2, timeout=60)
    await asyncio.sleep(0.5)
    await asyncio.to_thread(load.stop)
    assert done["type"] == "evt.deployment.succeeded", done
    assert load.errors == [], load.errors[:10]
    assert load.contents()[-1] == "v2"
    assert len(containers_of(app_id)) == 2 and {dep for _, dep in containers_of(app_id)} == {d2}

    # down longer than the deadline: on resume it ends failed, the live version untouched
    d3 = await platform.deploy(app_id, web_app(busybox, "v3", host, warmup_s=30), readiness_timeout_s=3)
    await platform.wait(d3, ("evt.deployment.progressed",), state="verifying")
    await platform.scheduler.stop()
    await asyncio.sleep(3.5)
    await platform.scheduler.start()
    failed = await platform.wait(d3, timeout=30)
    assert failed["type"] == "evt.deployment.failed", failed
    assert {dep for _, dep in containers_of(app_id)} == {d2}
    await wait_served(platform, host, "v2")


async def test_deploying_app_b_causes_no_error_for_app_a_and_replicas_are_reported(platform, busybox, app_id, unique):
    from berth_common.catalogue import ReplicasQuery, ReplicasReply
    from tests.scheduler.conftest import remove_labelled

    host_a = f"web-a-{unique}.localhost"
    host_b = f"web-b-{unique}.localhost"
    app_b = f"{app_id}-b"
    try:
        d_a = await platform.deploy(app_id, web_app(busybox, "a1", host_a, replicas=2))
        assert (await platform.wait(d_a))["type"] == "evt.deployment.succeeded"
        load = Load(platform.traefik.web_port, host_a).start()
        d_b1 = await platform.deploy(app_b, {**web_app(busybox, "b1", host_b), "name": "other"})
        assert (await platform.wait(d_b1))["type"] == "evt.deployment.succeeded"
        d_b2 = await platform.deploy(app_b, {**web_app(busybox, "b2", host_b, warmup_s=2), "name": "other"})
        assert (await platform.wait(d_b2))["type"] == "evt.deployment.succeeded"
        await asyncio.to_thread(load.stop)
        assert load.errors == [], load.errors[:10]
        assert set(load.contents()) == {"a1"}
        await wait_served(platform, host_b, "b2")

        reply = await platform.api.request("scheduler", "replicas", ReplicasQuery(application_id=app_id), ReplicasReply)
        assert reply.live_deployment_id == d_a
        assert [(r.deployment_id, r.service, r.replica, r.state, r.health) for r in reply.replicas] == [
            (d_a, "web", 1, "running", "ready"),
            (d_a, "web", 2, "running", "ready"),
        ]
        assert all(r.upstream and r.upstream.startswith("http://127.0.0.1:") for r in reply.replicas)
        assert {r.server for r in reply.replicas} == {"local"}  # the server each runs on
    finally:
        remove_labelled(f"berth.app={app_b}")


async def test_proxy_sync_and_scheduler_restart_while_routing(platform, busybox, app_id, unique):
    host = f"web-shop-{unique}.localhost"
    d1 = await platform.deploy(app_id, web_app(busybox, "v1", host))
    assert (await platform.wait(d1))["type"] == "evt.deployment.succeeded"
    load = Load(platform.traefik.web_port, host).start()
    await platform.proxy.stop()  # route commands wait in the work queue
    d2 = await platform.deploy(app_id, web_app(busybox, "v2", host))
    await platform.wait(d2, ("evt.deployment.progressed",), state="routing")
    await platform.scheduler.stop()
    await platform.scheduler.start()  # resumes routing: the unanswered command is sent again
    await asyncio.sleep(1)
    await platform.proxy.start()
    done = await platform.wait(d2, timeout=60)
    await asyncio.sleep(0.5)
    await asyncio.to_thread(load.stop)
    assert done["type"] == "evt.deployment.succeeded", done
    assert load.errors == [], load.errors[:10]
    assert load.contents()[0] == "v1" and load.contents()[-1] == "v2"
    assert {dep for _, dep in containers_of(app_id)} == {d2}


async def test_a_route_proxy_sync_refuses_fails_the_deployment_and_changes_nothing(platform, busybox, app_id, unique):
    from tests.scheduler.conftest import remove_labelled

    host = f"web-shop-{unique}.localhost"
    d1 = await platform.deploy(app_id, web_app(busybox, "v1", host))
    assert (await platform.wait(d1))["type"] == "evt.deployment.succeeded"
    before = platform.route_file(names.route_id(app_id, "web"))
    thief = f"{app_id}-thief"
    try:
        d2 = await platform.deploy(thief, {**web_app(busybox, "stolen", host), "name": "thief"})
        failed = await platform.wait(d2, timeout=60)
        assert failed["type"] == "evt.deployment.failed", failed
        assert failed["data"]["failed_in"] == "routing"
        assert f"proxy-sync could not apply route {names.route_id(thief, 'web')}" in failed["data"]["reason"]
        assert containers_of(thief) == []
        assert platform.route_file(names.route_id(thief, "web")) is None
        assert platform.route_file(names.route_id(app_id, "web")) == before
        await wait_served(platform, host, "v1")
    finally:
        remove_labelled(f"berth.app={thief}")


async def test_a_second_scheduler_stands_by_and_takes_over(platform, busybox, app_id, unique):
    from tests.scheduler.platform import Scheduler

    host = f"web-shop-{unique}.localhost"
    standby = await Scheduler(platform.scheduler.settings.model_copy(update={"http_port": 0})).start()
    try:
        d1 = await platform.deploy(app_id, web_app(busybox, "v1", host, replicas=2))
        assert (await platform.wait(d1))["type"] == "evt.deployment.succeeded"
        assert len(containers_of(app_id)) == 2
        # driven once, whichever instance handled the command (a second driver would repeat steps)
        assert [s for _, s in platform.steps(d1)].count("replica ready") == 2
        assert [s for _, s in platform.steps(d1)].count("replicas started") == 1
        d2 = await platform.deploy(app_id, web_app(busybox, "v2", host, warmup_s=3))
        await platform.wait(d2, ("evt.deployment.progressed",), state="verifying")
        await platform.scheduler.stop()  # the leader goes away mid-deploy: the standby finishes it
        done = await platform.wait(d2, timeout=60)
        assert done["type"] == "evt.deployment.succeeded", done
        assert {dep for _, dep in containers_of(app_id)} == {d2}
        await wait_served(platform, host, "v2")
    finally:
        await standby.stop()
