"""`evt.application.scaled` as a notification: subscribable, and written in words (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from berth_common.catalogue import ApplicationScaled
from berth_notifier.domain.notice import render
from berth_notifier.domain.policy import check_pattern

NOW = datetime(2026, 12, 4, tzinfo=UTC)


def _notice(event: ApplicationScaled):
    return render(event.TYPE, event.model_dump(mode="json"), event_id="e1", time=NOW, public_url="https://b.example")


def test_a_scale_is_subscribable_and_says_from_to_and_why() -> None:
    check_pattern("evt.application.scaled")
    check_pattern("evt.application.*")
    scaled = ApplicationScaled(
        application_id="app1",
        team_id="team1",
        request_id="r1",
        service="web",
        from_replicas=2,
        to_replicas=3,
        trigger="auto",
        reason="cpu 87% > 70% target for 60s: 2 -> 3 replicas",
    )
    notice = _notice(scaled)
    assert (notice.title, notice.severity) == ("Application scaled", "info")
    assert notice.summary == "Service web of application app1 scaled from 2 to 3 replica(s) (autoscaling)"
    assert notice.reason == "cpu 87% > 70% target for 60s: 2 -> 3 replicas"
    assert notice.url == "https://b.example/applications/app1"


def test_a_failed_scale_is_an_error_with_what_is_left() -> None:
    failed = ApplicationScaled(
        application_id="app1",
        team_id="team1",
        request_id="r2",
        service="web",
        from_replicas=1,
        to_replicas=1,
        trigger="manual",
        reason="launch day",
        outcome="failed",
        failure="a new replica is not ready: no 2xx from GET /",
    )
    notice = _notice(failed)
    assert (notice.title, notice.severity) == ("Scaling failed", "error")
    assert notice.summary == "Service web of application app1 could not be scaled (by hand): it runs 1 replica(s)"
    assert notice.facts["failure"] == "a new replica is not ready: no 2xx from GET /"
