"""How a deployment's image reaches each server (pure, exact), and a pushed build in the state machine: the
replicas run the pushed digest and the deployment records it (what a rollback runs)."""

from __future__ import annotations

from berth_common.catalogue import DeploymentProgressed, DeploymentSucceeded
from berth_scheduler.domain import machine as m
from berth_scheduler.domain.images import ImageDelivery, image_delivery
from berth_scheduler.domain.machine import Rollout, State, Timeouts, transition
from berth_scheduler.domain.routing import RouteOp, RoutePlan

PUSHED = "reg.example:5000/acme/shop@sha256:" + "a" * 64
T = Timeouts(build_s=600, readiness_s=60, route_s=30, drain_grace_s=5)
PLAN = RoutePlan(before=(), steps=((RouteOp("apply", "r1", ("a.localhost",), ("http://shop-1:8080",), "s1"),),))


def test_a_pushed_build_is_pulled_by_its_reference_on_every_server_the_build_server_too():
    for server in ("local", "s1", "s2"):
        got = image_delivery("berth/shop:d1", PUSHED, built=True, build_server="s1", server=server)
        assert got == ImageDelivery("pull", PUSHED)


def test_a_build_without_push_registry_streams_from_its_build_server_to_every_other_server():
    plan = {
        server: image_delivery("berth/shop:d1", None, built=True, build_server="b1", server=server)
        for server in ("local", "b1", "s2")
    }
    assert plan == {
        "local": ImageDelivery("stream", "berth/shop:d1", "b1"),
        "b1": ImageDelivery("present", "berth/shop:d1", "b1"),
        "s2": ImageDelivery("stream", "berth/shop:d1", "b1"),
    }
    assert image_delivery("berth/shop:d1", None, built=True, build_server="local", server="s2") == ImageDelivery(
        "stream", "berth/shop:d1", "local"
    )
    assert image_delivery("berth/shop:d1", None, built=True, build_server="local", server="local") == ImageDelivery(
        "present", "berth/shop:d1", "local"
    )


def test_berth_images_come_from_the_control_plane_and_prebuilt_images_are_pulled_where_they_run():
    assert image_delivery("berth/shop:d0", None, built=False, build_server="local", server="s1") == ImageDelivery(
        "stream", "berth/shop:d0", "local"
    )
    assert image_delivery("nginx:1.27", None, built=False, build_server="local", server="local") == ImageDelivery(
        "present", "nginx:1.27"
    )
    assert image_delivery("nginx:1.27", None, built=False, build_server="local", server="s1") == ImageDelivery(
        "check", "nginx:1.27"
    )


def test_a_pushed_build_runs_its_digest_and_the_deployment_records_it():
    r = Rollout("d1", "a1", "t1", State.QUEUED, True, T, created_at=100.0)
    events: list = []
    for inp in (
        m.Admit("d0"),
        m.BuildSucceeded("berth/shop:d1", PUSHED),
        m.ContainersStarted(1),
        m.ReplicasReady(PLAN),
    ):
        r, ev = transition(r, inp, 200.0)
        events += ev
    assert (r.image, r.pushed_ref, r.run_image, r.image_digest) == ("berth/shop:d1", PUSHED, PUSHED, None)
    built = [e for e in events if isinstance(e, DeploymentProgressed) and e.step == "build succeeded"]
    assert [(e.detail, e.image_digest) for e in built] == [(f"image berth/shop:d1, pushed as {PUSHED}", PUSHED)]
    for inp in (m.RouteStepConfirmed(0), m.Drained()):
        r, _ = transition(r, inp, 202.0)
    r, events = transition(r, m.OldStopped(0, ()), 203.0)
    assert events[-1] == DeploymentSucceeded(
        deployment_id="d1",
        application_id="a1",
        team_id="t1",
        image="berth/shop:d1",
        image_digest=PUSHED,  # the api's rollback runs this digest (ImageSource, pulled with the team's auth)
        previous_deployment_id="d0",
        duration_s=103.0,
        replicas=[],
    )


def test_a_build_without_push_runs_its_tag():
    r = Rollout("d1", "a1", "t1", State.QUEUED, True, T, created_at=100.0)
    r, _ = transition(r, m.Admit(None), 100.0)
    r, events = transition(r, m.BuildSucceeded("berth/shop:d1"), 101.0)
    assert (r.pushed_ref, r.run_image) == (None, "berth/shop:d1")
    assert [(e.detail, e.image_digest) for e in events if isinstance(e, DeploymentProgressed)] == [
        ("image berth/shop:d1", None)
    ]
