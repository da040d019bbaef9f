"""The notifier receives the events the catalogue names it a consumer of, as their catalogue models (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from berth_common.catalogue import (
    AlertRaised,
    CertificateExpiring,
    ContainerCrashed,
    DeploymentFailed,
    ServerUnreachable,
    consumed_by,
)
from berth_notifier.domain.audience import MAX_TEAMS, Audience, audience
from berth_notifier.domain.notice import KNOWN
from berth_notifier.domain.policy import FAMILIES, NOTIFIED, PatternError, check_pattern

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def test_the_notified_events_are_the_catalogues():
    assert NOTIFIED == tuple(m.TYPE for m in consumed_by("notifier"))
    assert "evt.deployment.failed" in NOTIFIED and "evt.deployment.progressed" not in NOTIFIED
    assert set(FAMILIES) == {
        "alert",
        "application",
        "backup",
        "build",
        "certificate",
        "container",
        "deployment",
        "job",
        "restore",
        "schedule",
        "server",
    }


def test_every_written_sentence_is_for_an_event_the_notifier_receives():
    assert set(KNOWN) <= set(NOTIFIED)


@pytest.mark.parametrize("pattern", ["evt.route.failed", "evt.route.*", "evt.bus.dead_lettered"])
def test_a_family_the_notifier_does_not_receive_is_refused(pattern):
    with pytest.raises(PatternError, match="the notifier delivers"):
        check_pattern(pattern)


def test_the_audience_comes_from_the_fields_the_model_declares():
    failed = DeploymentFailed(deployment_id="d", application_id="app", team_id="t", reason="r")
    assert audience(failed) == Audience(application_id="app", team_id="t")
    crashed = ContainerCrashed(container_id="c", application_id="app")
    assert audience(crashed) == Audience(application_id="app")
    raised = AlertRaised.model_construct(team_id="t", target_id="app")
    assert audience(raised) == Audience(team_id="t")
    cert = CertificateExpiring(
        domain="a.example", expires_at=NOW, days_left=3, team_id="t", project_id="p", application_id="app"
    )
    assert audience(cert) == Audience(application_id="app", team_id="t", project_id="p")
    teams = ["t1", "t2", "t1", "", *(f"x{i}" for i in range(200))]
    down = ServerUnreachable(server="vm", outage_id="o", team_ids=teams, down_since=NOW)
    who = audience(down)
    assert who.team_ids[:3] == ("t1", "t2", "x0") and len(who.team_ids) == MAX_TEAMS
    assert (who.application_id, who.team_id) == (None, None)
