"""The pure parts of scaling (``domain/scaling.py``): which replicas are added and removed, the routes after,
and the events, by exact comparison."""

from __future__ import annotations

import pytest

from berth_common.catalogue import ApplicationScaled
from berth_scheduler.domain.scaling import (
    Phase,
    Scale,
    Slot,
    UnknownServiceError,
    counts_after,
    merged_upstreams,
    plan_slots,
    scaled_events,
)


def test_new_replicas_take_the_lowest_free_numbers_and_the_highest_go() -> None:
    assert plan_slots({"web": 3}, {"web": [1]}) == ((Slot("web", 2), Slot("web", 3)), ())
    assert plan_slots({"web": 3}, {"web": [1, 4]}) == ((Slot("web", 2),), ())
    assert plan_slots({"web": 1}, {"web": [3, 1, 2]}) == ((), (Slot("web", 2), Slot("web", 3)))
    assert plan_slots({"web": 2, "jobs": 1}, {"web": [1, 2], "jobs": [1, 2], "other": [1]}) == (
        (),
        (Slot("jobs", 2),),
    )
    assert plan_slots({"web": 64}, {"web": [1]})[0][-1] == Slot("web", 64)
    with pytest.raises(UnknownServiceError, match="no service 'nope'"):
        plan_slots({"nope": 2}, {"web": [1]})


def test_routes_keep_their_order_lose_the_removed_and_gain_the_new() -> None:
    a, b, c, d = (f"http://127.0.0.1:{p}" for p in (1001, 1002, 1003, 1004))
    assert merged_upstreams([a, b, c], [b], [d]) == (a, c, d)
    assert merged_upstreams([a], [], [b, a]) == (a, b)
    assert merged_upstreams([a, b], [a, b], []) == ()


def _done() -> Scale:
    planned = Scale(
        id="r1",
        seq=7,
        application_id="app",
        team_id="team",
        trigger="auto",
        reason="cpu 90% > 70% target for 60s: 1 -> 3 replicas",
        targets={"web": 3, "jobs": 1},
        drain_grace_s=2.0,
        before={"web": 1, "jobs": 2},
        add=(Slot("web", 2), Slot("web", 3)),
        remove=(Slot("jobs", 2),),
    )
    return planned.moved(Phase.DONE)


def test_events_say_from_to_and_why() -> None:
    done = _done()
    assert done.owner_id == "scale-7" and done.version == 1
    assert counts_after(done) == {"web": 3, "jobs": 1}
    common = {"application_id": "app", "team_id": "team", "request_id": "r1", "trigger": "auto"}
    reason = "cpu 90% > 70% target for 60s: 1 -> 3 replicas"
    assert scaled_events(done) == [
        ApplicationScaled(**common, service="jobs", from_replicas=2, to_replicas=1, reason=reason),
        ApplicationScaled(**common, service="web", from_replicas=1, to_replicas=3, reason=reason),
    ]
    failed = done.moved(Phase.FAILED, failure="a new replica is not ready: no 2xx")
    assert scaled_events(failed) == [
        ApplicationScaled(
            **common,
            service="jobs",
            from_replicas=2,
            to_replicas=2,
            reason=reason,
            outcome="failed",
            failure="a new replica is not ready: no 2xx",
        ),
        ApplicationScaled(
            **common,
            service="web",
            from_replicas=1,
            to_replicas=1,
            reason=reason,
            outcome="failed",
            failure="a new replica is not ready: no 2xx",
        ),
    ]
