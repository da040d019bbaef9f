"""Taking a deployed application down (``cmd.application.remove``): the pure removal plan and phases, then
end to end with the real bus, Postgres, proxy-sync, Traefik and Docker (the api is played by the test)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from typing import Any

import pytest

from berth_common.bus import subscriptions_confirmed
from berth_common.catalogue import (
    ApplicationRemovalFailed,
    ApplicationRemovalProgressed,
    ApplicationRemoved,
    RemoveApplication,
    ReplicasQuery,
    ReplicasReply,
)
from berth_scheduler.domain import names, removal
from berth_scheduler.domain.removal import Phase, Removal, RemovalRefusedError
from berth_scheduler.domain.retention import BuiltImage
from berth_scheduler.domain.routing import RouteOp, RoutePlan, RouteTarget
from tests.scheduler import apps
from tests.scheduler.platform import Load, containers_of, wait_served, web_app

slow = [pytest.mark.slow, pytest.mark.docker]

WEB = RouteTarget("app-a-web", ("web-a.localhost",), ("http://127.0.0.1:1001", "http://127.0.0.1:1002"))
ADMIN = RouteTarget("app-a-admin", ("admin-a.localhost",), ("http://127.0.0.1:1501",))
UNROUTED = RouteTarget("app-a-old", (), ())


# --- pure: the plan and the phases -------------------------------------------------------------------


def test_route_plan_removes_every_routed_route_in_one_step_and_keeps_them_for_the_restore():
    plan = removal.route_plan([WEB, UNROUTED, ADMIN])
    assert plan == RoutePlan(
        before=(ADMIN, WEB), steps=((RouteOp("remove", "app-a-admin"), RouteOp("remove", "app-a-web")),)
    )
    assert removal.route_plan([UNROUTED]) == RoutePlan(before=(), steps=())


def test_images_to_remove_are_the_applications_builds_in_its_repositories_only():
    labelled = [
        BuiltImage("sha:1", ("berth/shop:aaaa1111", "berth/shop:bbbb2222"), deployment="d1"),  # reused build
        BuiltImage("sha:2", ("berth/shop:cccc3333", "mirror/shop:1", "berth/other:dddd4444")),  # other tags stay
    ]
    built = {"berth/shop:eeee5555", "berth/shop:ffff6666", "berth/old-name:9999aaaa"}
    present = ["berth/shop:eeee5555", "berth/old-name:9999aaaa", "berth/shop:user-tag"]
    repos = removal.repositories(["shop", "old-name", ""])
    assert repos == {"berth/shop", "berth/old-name"}
    assert removal.images_to_remove(labelled, built, present, repos) == [
        "berth/old-name:9999aaaa",
        "berth/shop:aaaa1111",
        "berth/shop:bbbb2222",
        "berth/shop:cccc3333",
        "berth/shop:eeee5555",
    ]
    # a prebuilt image the user named (not labelled, not recorded as built) is never a candidate
    assert removal.images_to_remove([], set(), ["berth/shop:user-tag", "busybox:latest"], repos) == []


def progress(phase: str, version: int, **counts: int) -> ApplicationRemovalProgressed:
    return ApplicationRemovalProgressed(
        application_id="app-a", team_id="team-1", phase=phase, version=version, **counts
    )


def test_a_removal_goes_through_its_phases_and_counts_what_it_removed():
    r = removal.requested("app-a", "team-1", 2.0, now=100.0)
    assert r == Removal("app-a", "team-1", Phase.CANCELLING, 2.0, 100.0)
    r, ev = removal.transition(r, removal.RoutesPlanned((WEB, ADMIN), route_timeout_s=15), 101.0)
    assert (r.phase, r.deadline_at, ev) == (Phase.ROUTES, 116.0, [progress("routes", 1)])
    r, ev = removal.transition(r, removal.RoutesRemoved(), 102.0)
    assert (r.phase, r.routes_removed, r.drain_until, r.deadline_at) == (Phase.DRAINING, 2, 104.0, None)
    assert ev == [progress("draining", 2, routes_removed=2)]
    r, ev = removal.transition(r, removal.Drained(), 104.5)
    assert ev == [progress("stopping", 3, routes_removed=2)]
    r, ev = removal.transition(r, removal.ContainersFound(("c2", "c1")), 104.6)
    assert ev == []  # a step inside the phase is not reported
    r, _ = removal.transition(r, removal.ContainersFound(("c3", "c1")), 104.7)  # resumed: found again
    assert (r.phase, r.containers) == (Phase.STOPPING, ("c1", "c2", "c3"))
    r, ev = removal.transition(r, removal.ContainersRemoved(), 105.0)
    assert ev == [progress("images", 6, routes_removed=2, containers_removed=3)]
    r, _ = removal.transition(r, removal.ImagesFound(("berth/a:1", "berth/a:2")), 105.1)
    r, ev = removal.transition(r, removal.ImagesRemoved(kept=("berth/a:2",)), 106.25)
    assert (r.phase, r.containers_removed, r.images_removed, r.finished_at) == (Phase.REMOVED, 3, 1, 106.25)
    assert ev == [
        ApplicationRemoved(
            application_id="app-a",
            team_id="team-1",
            routes_removed=2,
            containers_removed=3,
            images_removed=1,
            duration_s=6.25,
        )
    ]
    assert r.version == 8 and not r.active  # one per transition
    with pytest.raises(RemovalRefusedError):
        removal.transition(r, removal.Drained(), 107.0)


def test_nothing_routed_skips_to_the_containers_without_draining():
    r = removal.requested("app-a", "team-1", 30.0, now=10.0)
    r, ev = removal.transition(r, removal.RoutesPlanned((UNROUTED,), route_timeout_s=15), 11.0)
    assert (r.phase, r.drain_until, r.routes_removed) == (Phase.DRAINING, 11.0, 0)
    assert [(e.phase, e.application_id) for e in ev] == [("draining", "app-a")]  # type: ignore[attr-defined]


def test_a_refused_route_restores_and_fails_then_a_new_command_is_a_new_attempt():
    r = removal.requested("app-a", "team-1", 1.0, now=0.0)
    r, _ = removal.transition(r, removal.RoutesPlanned((WEB,), route_timeout_s=5), 1.0)
    r, ev = removal.transition(r, removal.RoutesRefused("proxy-sync could not remove route app-a-web: x", 5), 2.0)
    assert (r.phase, r.deadline_at, ev) == (Phase.RESTORING, 7.0, [progress("restoring", 2)])
    r, ev = removal.transition(r, removal.Restored("routes restored"), 3.0)
    reason = "proxy-sync could not remove route app-a-web: x (routes restored)"
    assert (r.phase, r.reason, r.deadline_at) == (Phase.FAILED, reason, None)
    assert ev == [ApplicationRemovalFailed(application_id="app-a", team_id="team-1", reason=reason)]
    assert removal.start_refusal(r) is None  # the application is active again
    again = removal.requested("app-a", "team-1", 1.0, now=9.0, previous=r)
    assert (again.phase, again.attempt, again.routes_removed, again.reason) == (Phase.CANCELLING, 2, 0, None)
    assert again.deployment_id != r.deployment_id  # its route commands are told apart from the first attempt's
    assert again.deployment_id == removal.removal_key("app-a", 2) and len(again.deployment_id) <= 64


def test_start_refusals_and_an_application_never_seen():
    assert removal.start_refusal(None) is None
    assert removal.start_refusal(removal.requested("a", "t", 1.0, 0.0)) == "the application is being removed"
    gone, event = removal.never_seen("a", "t", 5.0)
    assert (gone.phase, gone.finished_at) == (Phase.REMOVED, 5.0)
    assert removal.start_refusal(gone) == "the application was removed"
    assert event == ApplicationRemoved(application_id="a", team_id="t", duration_s=0.0)


# --- end to end ------------------------------------------------------------------------------------


def _docker(*args: str) -> str:
    out = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def _tags(repo: str) -> set[str]:
    return set(_docker("images", "--format", "{{.Repository}}:{{.Tag}}", repo).split())


@pytest.fixture
def built_image(busybox, app_id, unique):
    """An image as the builder makes it for a deployment: labelled with the application and deployment,
    tagged ``berth/<name>:<deployment short>``; also tagged in another repository (that tag must stay)."""
    name, dep = f"rm{unique}", uuid.uuid4().hex
    tag, other = names.image_tag(name, dep), f"berth-test/keep{unique}:1"
    cid = _docker("create", busybox, "true")
    _docker("commit", "--change", f"LABEL berth.application={app_id} berth.deployment={dep}", cid, tag)
    _docker("rm", cid)
    _docker("tag", tag, other)
    yield name, dep, tag, other
    subprocess.run(["docker", "rmi", "-f", tag, other], capture_output=True)


def web_and_worker(image: str, name: str, host: str) -> dict:
    spec = web_app(image, "a1", host, replicas=2)
    worker = {
        "kind": "worker",
        "name": "worker",
        "command": apps.worker(ready_after_s=0),
        "health_command": apps.WORKER_HEALTH,
    }
    return {**spec, "name": name, "services": [*spec["services"], worker]}


def _running(app_id: str) -> int:
    return len(_docker("ps", "-q", "--filter", f"label=berth.app={app_id}").split())


async def _status(platform, host: str) -> int:
    status, _ = await asyncio.to_thread(platform.traefik.get, host)
    return int(status)


@pytest.mark.slow
@pytest.mark.docker
async def test_a_deployed_web_and_worker_application_is_removed_and_its_neighbour_never_errs(
    platform, busybox, app_id, built_image, unique
):
    from tests.scheduler.conftest import remove_labelled

    name, d1, tag, other = built_image
    host, host_b, app_b = f"web-{name}.localhost", f"web-b{unique}.localhost", f"{app_id}-b"
    try:
        await platform.deploy(app_id, web_and_worker(tag, name, host), deployment_id=d1)
        d_b = await platform.deploy(app_b, {**web_app(busybox, "b1", host_b), "name": "other"})
        assert (await platform.wait(d1))["type"] == "evt.deployment.succeeded"
        assert (await platform.wait(d_b))["type"] == "evt.deployment.succeeded"
        assert len(containers_of(app_id)) == 3 and await _status(platform, host) == 200
        load = Load(platform.traefik.web_port, host_b).start()
        await asyncio.sleep(0.3)

        t0 = time.monotonic()
        first = await platform.remove(app_id, drain_grace_s=0.5)
        done = await platform.wait_app(app_id, timeout=30)
        took = time.monotonic() - t0
        await asyncio.sleep(0.3)
        await asyncio.to_thread(load.stop)

        assert done["type"] == "evt.application.removed", done
        assert {k: done["data"][k] for k in ("routes_removed", "containers_removed", "images_removed")} == {
            "routes_removed": 1,
            "containers_removed": 3,
            "images_removed": 1,
        }
        assert 0.5 <= done["data"]["duration_s"] <= took
        steps = sorted((e["data"]["version"], e["data"]["phase"]) for e in platform.of_app(app_id, progress=True))
        assert [phase for _, phase in steps] == ["routes", "draining", "stopping", "images"], steps
        assert await _status(platform, host) == 404
        assert platform.route_file(names.route_id(app_id, "web")) is None
        assert containers_of(app_id) == []
        assert _tags(f"berth/{name}") == set()  # the build's tag is gone ...
        assert _tags(other.split(":")[0]) == {other}  # ... the image it shared with another tag was only untagged
        assert _tags(busybox.split(":")[0]) == {busybox}  # a prebuilt image is not Berth's to remove
        assert load.errors == [] and len(load.results) > 20, load.errors[:10]
        assert set(load.contents()) == {"b1"}
        await wait_served(platform, host_b, "b1")
        assert {dep for _, dep in containers_of(app_b)} == {d_b}
        query = ReplicasQuery(application_id=app_id)
        gone = await platform.api.request("scheduler", "replicas", query, ReplicasReply)
        assert (gone.live_deployment_id, gone.replicas) == (None, [])  # nothing of it is live any more
        query_b = ReplicasQuery(application_id=app_b)
        assert (await platform.api.request("scheduler", "replicas", query_b, ReplicasReply)).live_deployment_id == d_b

        # the same command delivered again (same message id): no second effect, no second answer
        env = platform.api.envelope(RemoveApplication(application_id=app_id, team_id="team-1"), id=first)
        await platform.api.publish_raw(RemoveApplication.TYPE, env.to_bytes(), {"Nats-Msg-Id": uuid.uuid4().hex})
        # a new command for the removed application: answered removed again, with the same counts
        await platform.remove(app_id)
        again = await platform.wait_app(app_id, count=2, timeout=10)
        assert again["type"] == "evt.application.removed" and again["data"] == done["data"]
        await asyncio.sleep(0.5)
        assert len(platform.of_app(app_id)) == 2

        # a deployment asked for after the removal ends failed, with the reason
        d2 = await platform.deploy(app_id, web_and_worker(busybox, name, host))
        failed = await platform.wait(d2, timeout=10)
        assert failed["type"] == "evt.deployment.failed", failed
        assert (failed["data"]["reason"], failed["data"]["failed_in"]) == ("the application was removed", "queued")
        assert containers_of(app_id) == [] and await _status(platform, host) == 404
        print(f"\nMEASURED removal of 3 containers, 1 route, 1 image: {done['data']['duration_s']}s")
    finally:
        remove_labelled(f"berth.app={app_b}")


@pytest.mark.slow
@pytest.mark.docker
async def test_removal_cancels_a_deployment_in_progress_and_resumes_after_a_restart_mid_drain(
    platform, busybox, app_id, unique
):
    host = f"web-shop-{unique}.localhost"
    d1 = await platform.deploy(app_id, web_app(busybox, "v1", host))
    assert (await platform.wait(d1))["type"] == "evt.deployment.succeeded"
    d2 = await platform.deploy(app_id, web_app(busybox, "v2", host, warmup_s=30))
    await platform.wait(d2, ("evt.deployment.progressed",), state="verifying")
    d3 = await platform.deploy(app_id, web_app(busybox, "v3", host))  # queued behind d2
    await platform.wait(d3, ("evt.deployment.progressed",), state="queued")

    await platform.remove(app_id, drain_grace_s=4)
    cancelled = await platform.wait(d2, timeout=20)
    assert cancelled["type"] == "evt.deployment.cancelled", cancelled
    assert (cancelled["data"]["cancelled_in"], cancelled["data"]["reason"]) == (
        "verifying",
        "the application is being removed",
    )
    queued = await platform.wait(d3, timeout=10)
    assert (queued["type"], queued["data"].get("cancelled_in")) == ("evt.deployment.cancelled", "queued"), queued
    # asked for while the removal runs: ends failed at once
    d4 = await platform.deploy(app_id, web_app(busybox, "v4", host))
    failed = await platform.wait(d4, timeout=10)
    assert failed["type"] == "evt.deployment.failed"
    assert failed["data"]["reason"] == "the application is being removed"

    # the routes are gone (Traefik answers 404): the removal drains; the scheduler goes away meanwhile
    deadline = time.monotonic() + 20
    while await _status(platform, host) != 404:
        assert time.monotonic() < deadline, "the route was not removed"
        await asyncio.sleep(0.05)
    routes_gone = time.monotonic()
    await platform.scheduler.stop()
    assert time.monotonic() - routes_gone < 10  # a stopping scheduler does not sit out the removal it drives
    assert {dep for _, dep in containers_of(app_id)} == {d1} and _running(app_id) == 1  # not stopped yet
    assert platform.of_app(app_id) == []
    await platform.scheduler.start()
    done = await platform.wait_app(app_id, timeout=30)
    assert done["type"] == "evt.application.removed", done
    assert [done["data"][k] for k in ("routes_removed", "containers_removed", "images_removed")] == [1, 1, 0]
    assert containers_of(app_id) == [] and await _status(platform, host) == 404
    assert platform.of(d1, "evt.deployment.failed") == []

    # an application the scheduler never saw: removed at once, nothing counted
    unknown = f"{app_id}-never"
    await platform.remove(unknown)
    gone = await platform.wait_app(unknown, timeout=10)
    assert gone["type"] == "evt.application.removed"
    assert [gone["data"][k] for k in ("routes_removed", "containers_removed", "images_removed")] == [0, 0, 0]


@pytest.mark.slow
@pytest.mark.docker
async def test_a_route_removal_not_confirmed_fails_the_removal_and_leaves_the_application_serving(
    platform, busybox, app_id, unique
):
    host = f"web-shop-{unique}.localhost"
    d1 = await platform.deploy(app_id, web_app(busybox, "v1", host))
    assert (await platform.wait(d1))["type"] == "evt.deployment.succeeded"
    route_file = platform.route_file(names.route_id(app_id, "web"))
    platform.scheduler.settings.route_timeout_s = 1.5  # read at each step
    await platform.proxy.stop()  # the route commands wait in the work queue, unanswered

    t0 = time.monotonic()
    await platform.remove(app_id, drain_grace_s=0.5)
    failed = await platform.wait_app(app_id, timeout=20)
    assert failed["type"] == "evt.application.removal_failed", failed
    assert failed["data"]["reason"].startswith(
        f"route(s) {names.route_id(app_id, 'web')} not confirmed removed within 1.5s (is the proxy-sync service running"
    ), failed
    assert "routes NOT confirmed restored" in failed["data"]["reason"]  # proxy-sync is still away
    assert 3.0 <= time.monotonic() - t0 < 10
    # nothing was stopped: the application keeps running and routed as before
    assert {dep for _, dep in containers_of(app_id)} == {d1} and _running(app_id) == 1
    await wait_served(platform, host, "v1")
    assert platform.route_file(names.route_id(app_id, "web")) == route_file
    # deployments are accepted again
    platform.scheduler.settings.route_timeout_s = 15
    d2 = await platform.deploy(app_id, web_app(busybox, "v2", host))
    await platform.wait(d2, ("evt.deployment.progressed",), state="starting")

    await platform.proxy.start()  # the removal and the restore it queued are applied: routed again
    assert (await platform.wait(d2, timeout=30))["type"] == "evt.deployment.succeeded"
    await wait_served(platform, host, "v2")
    # a new command tries again; it comes while a deployment is past its switch: that one finishes first
    d3 = await platform.deploy(app_id, web_app(busybox, "v3", host), drain_grace_s=2)
    await platform.wait(d3, ("evt.deployment.progressed",), state="draining")
    await platform.remove(app_id, drain_grace_s=0)
    done = await platform.wait_app(app_id, count=2, timeout=30)
    assert done["type"] == "evt.application.removed", done
    succeeded = await platform.wait(d3, timeout=1)
    assert succeeded["type"] == "evt.deployment.succeeded" and succeeded["_at"] < done["_at"]
    assert [done["data"][k] for k in ("routes_removed", "containers_removed", "images_removed")] == [1, 1, 0]
    assert containers_of(app_id) == [] and await _status(platform, host) == 404


@pytest.mark.slow
@pytest.mark.docker
async def test_a_route_removal_proxy_sync_refuses_puts_back_the_routes_already_removed(
    platform, busybox, app_id, unique
):
    from berth_common.catalogue import ApplyRoutes

    host, admin_host = f"web-shop-{unique}.localhost", f"admin-shop-{unique}.localhost"
    spec = web_app(busybox, "v1", host)
    admin = {**spec["services"][0], "name": "admin", "hosts": [admin_host]}
    d1 = await platform.deploy(app_id, {**spec, "services": [*spec["services"], admin]})
    done = await platform.wait(d1)
    assert done["type"] == "evt.deployment.succeeded", done
    await wait_served(platform, host, "v1")
    await wait_served(platform, admin_host, "v1")
    # someone else moved the admin route to a later generation: the scheduler's removal of it is stale
    route_events: list[tuple[str, str, int]] = []
    applied = asyncio.Event()

    async def on_route(msg: Any) -> None:
        data = json.loads(msg.data)["data"]
        route_events.append((msg.subject, data["route_id"], data.get("generation", 0)))
        if data.get("generation") == 99:
            applied.set()

    sub = await platform.nc.subscribe("evt.route.>", cb=on_route)
    await subscriptions_confirmed(platform.nc)
    upstream = next(r["upstream"] for r in done["data"]["replicas"] if r["service"] == "admin")
    admin_route, web_route = names.route_id(app_id, "admin"), names.route_id(app_id, "web")
    await platform.api.publish(
        ApplyRoutes(route_id=admin_route, hosts=[admin_host], upstreams=[upstream], generation=99)
    )
    await asyncio.wait_for(applied.wait(), 15)

    await platform.remove(app_id, drain_grace_s=0.5)
    failed = await platform.wait_app(app_id, timeout=30)
    assert failed["type"] == "evt.application.removal_failed", failed
    assert failed["data"]["reason"].startswith(f"proxy-sync could not remove route {admin_route}: stale"), failed
    assert failed["data"]["reason"].endswith("(routes restored)"), failed
    # the web route, removed meanwhile, is back; nothing was stopped
    await wait_served(platform, host, "v1")
    await wait_served(platform, admin_host, "v1")
    assert {dep for _, dep in containers_of(app_id)} == {d1} and _running(app_id) == 2
    await sub.unsubscribe()  # the failure came after every answer to the restore
    admin_events = [(subject, gen) for subject, rid, gen in route_events if rid == admin_route]
    assert [subject for subject, _ in admin_events] == ["evt.route.applied", "evt.route.failed"], route_events
    removal_gen = admin_events[1][1]  # refused, left as it was (generation 99): not put back
    assert admin_events[0] == ("evt.route.applied", 99) and removal_gen < 99
    web = [(subject, gen) for subject, rid, gen in route_events if rid == web_route]
    # put back at the next generation: after its removal, or, when the put-back reached proxy-sync while
    # the removal still waited for a batch, instead of it (the removal is then answered stale)
    assert web in (
        [("evt.route.removed", removal_gen), ("evt.route.applied", removal_gen + 1)],
        [("evt.route.applied", removal_gen + 1)],
    ), route_events
