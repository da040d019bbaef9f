"""The deployment state machine: pure transitions and the events each one emits."""

from __future__ import annotations

import pytest

from berth_common.catalogue import (
    DeploymentCancelled,
    DeploymentFailed,
    DeploymentProgressed,
    DeploymentSucceeded,
    Replica,
)
from berth_scheduler.domain import machine as m
from berth_scheduler.domain.machine import RefusedError, Rollout, State, Timeouts, transition
from berth_scheduler.domain.routing import RouteOp, RoutePlan, RouteTarget

T = Timeouts(build_s=600, readiness_s=60, route_s=30, drain_grace_s=5)
OLD = RouteTarget("r1", ("a.localhost",), ("http://127.0.0.1:1001",))
PLAN = RoutePlan(
    before=(OLD,),
    steps=(
        (RouteOp("apply", "r1", ("a.localhost",), ("http://127.0.0.1:1001", "http://127.0.0.1:2001")),),
        (RouteOp("apply", "r1", ("a.localhost",), ("http://127.0.0.1:2001",)),),
    ),
)


def new(needs_build: bool = True) -> Rollout:
    return Rollout(
        "d1", "a1", "t1", State.QUEUED, needs_build, T, created_at=100.0, image=None if needs_build else "img:1"
    )


def run(r: Rollout, *inputs: m.Input, now: float = 200.0) -> tuple[Rollout, list]:
    events: list = []
    for inp in inputs:
        r, ev = transition(r, inp, now)
        events += ev
    return r, events


def steps_of(events) -> list[tuple[str, str]]:
    return [(e.state, e.step) for e in events if isinstance(e, DeploymentProgressed)]


def test_full_rollout_from_git_emits_every_step():
    replicas = (Replica(service="web", kind="web", replica=1, container="c1", upstream="http://127.0.0.1:2001"),)
    r, events = run(
        new(),
        m.Admit("d0"),
        m.BuildSucceeded("berth/a:d1"),
        m.ContainersStarted(1),
        m.ReplicaReady("c1"),
        m.ReplicasReady(PLAN),
        m.RouteStepConfirmed(0),
        m.RouteStepConfirmed(1),
        m.Drained(),
        m.OldStopped(1, replicas),
    )
    assert r.state == State.SUCCEEDED and r.image == "berth/a:d1" and r.finished_at == 200.0
    assert steps_of(events) == [
        ("building", "build requested"),
        ("starting", "build succeeded"),
        ("verifying", "replicas started"),
        ("verifying", "replica ready"),
        ("routing", "replicas ready"),
        ("routing", "route step live"),
        ("draining", "new version live"),
        ("stopping_old", "drained"),
        ("succeeded", "succeeded"),
    ]
    done = events[-1]
    assert done == DeploymentSucceeded(
        deployment_id="d1",
        application_id="a1",
        team_id="t1",
        image="berth/a:d1",
        previous_deployment_id="d0",
        duration_s=100.0,
        replicas=list(replicas),
    )
    assert r.version == 9


def test_deadlines_and_drain_follow_the_timeouts():
    r, _ = run(new(), m.Admit(None), now=10.0)
    assert r.deadline_at == 10.0 + 600 + m.BUILD_ANSWER_MARGIN_S
    r, _ = run(r, m.BuildSucceeded("img"), now=20.0)
    assert r.deadline_at == 80.0  # readiness covers starting and verifying
    r, _ = run(r, m.ContainersStarted(1), m.ReplicasReady(PLAN), now=30.0)
    assert r.deadline_at == 60.0
    r, _ = run(r, m.RouteStepConfirmed(0), now=40.0)
    assert r.deadline_at == 70.0 and r.route_step == 1
    r, _ = run(r, m.RouteStepConfirmed(1), now=50.0)
    assert r.state == State.DRAINING and r.drain_until == 55.0


def test_first_deployment_has_nothing_to_drain():
    first = RoutePlan(before=(), steps=((RouteOp("apply", "r1", ("a.localhost",), ("http://127.0.0.1:2001",)),),))
    r, _ = run(new(False), m.Admit(None), m.ContainersStarted(1), m.ReplicasReady(first), m.RouteStepConfirmed(0))
    assert r.state == State.DRAINING and r.drain_until == 200.0


def test_worker_only_app_passes_routing_with_no_steps():
    r, _ = run(
        new(False), m.Admit(None), m.ContainersStarted(1), m.ReplicasReady(RoutePlan((), ())), m.RouteStepConfirmed(0)
    )
    assert r.state == State.DRAINING


def test_failure_is_recorded_then_ended_after_compensation():
    r, events = run(new(False), m.Admit(None), m.ContainersStarted(2), m.Fail("replica x is not ready: 503"))
    assert (
        r.state == State.VERIFYING
        and r.compensating
        and r.abort == m.Abort("failed", "replica x is not ready: 503", State.VERIFYING)
    )
    assert steps_of(events)[-1] == ("verifying", "failing")
    with pytest.raises(RefusedError):
        transition(r, m.ReplicasReady(PLAN), 1.0)  # no progress while undoing
    with pytest.raises(RefusedError):
        transition(r, m.Cancel(), 1.0)
    r, events = run(r, m.Compensated("replica x is not ready: 503 (2 new container(s) removed)"), now=250.0)
    assert r.state == State.FAILED and not r.compensating
    assert events[-1] == DeploymentFailed(
        deployment_id="d1",
        application_id="a1",
        team_id="t1",
        reason="replica x is not ready: 503",
        failed_in="verifying",
        duration_s=150.0,
    )
    with pytest.raises(RefusedError, match="already failed"):
        transition(r, m.Compensated(), 1.0)


def test_build_failure_fails_with_the_builders_reason():
    r, _ = run(new(), m.Admit(None), m.BuildFailed("clone: repository not found"))
    r, events = run(r, m.Compensated())
    assert r.state == State.FAILED and events[-1].reason == "build failed: clone: repository not found"


def test_cancel_a_queued_deployment_ends_it_at_once():
    r, events = run(new(), m.Cancel("replaced by d2"))
    assert r.state == State.CANCELLED
    assert isinstance(events[-1], DeploymentCancelled) and events[-1].cancelled_in == "queued"


@pytest.mark.parametrize("state", [State.BUILDING, State.STARTING, State.VERIFYING, State.ROUTING])
def test_cancel_before_the_switch_undoes(state):
    r = Rollout("d1", "a1", "t1", state, True, T, 0.0, plan=PLAN)
    r, _ = run(r, m.Cancel())
    assert r.compensating and r.abort.outcome == "cancelled"
    r, events = run(r, m.Compensated())
    assert r.state == State.CANCELLED and events[-1].cancelled_in == state.value


@pytest.mark.parametrize("state", [State.DRAINING, State.STOPPING_OLD])
def test_after_the_switch_there_is_no_way_back(state):
    r = Rollout("d1", "a1", "t1", state, True, T, 0.0, plan=PLAN, route_step=2)
    with pytest.raises(RefusedError, match="too late to cancel"):
        transition(r, m.Cancel(), 1.0)
    with pytest.raises(RefusedError, match="cannot fail"):
        transition(r, m.Fail("x"), 1.0)


@pytest.mark.parametrize(
    ("state", "inp"),
    [
        (State.QUEUED, m.BuildSucceeded("i")),
        (State.BUILDING, m.ContainersStarted(1)),
        (State.STARTING, m.Admit()),
        (State.VERIFYING, m.Drained()),
        (State.DRAINING, m.OldStopped(0, ())),
        (State.SUCCEEDED, m.Cancel()),
    ],
)
def test_inputs_out_of_order_are_refused_without_change(state, inp):
    r = Rollout("d1", "a1", "t1", state, True, T, 0.0, plan=PLAN)
    with pytest.raises(RefusedError):
        transition(r, inp, 1.0)


def test_a_route_step_is_confirmed_in_order():
    r = Rollout("d1", "a1", "t1", State.ROUTING, False, T, 0.0, plan=PLAN)
    with pytest.raises(RefusedError, match="step 1 confirmed while step 0"):
        transition(r, m.RouteStepConfirmed(1), 1.0)
