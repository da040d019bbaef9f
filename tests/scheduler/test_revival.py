"""Which replicas of a live version the scheduler starts again: those an engine restart left exited although
their restart policy asks for them to run; and which container records a rollout left behind, for the same
pass to remove (``domain/revival.py``)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from berth_scheduler.domain.revival import exited_at, leftovers, should_start

NOW = datetime(2026, 12, 6, 4, 37, 30, tzinfo=UTC)
LONG_AGO = "2026-12-06T04:37:20.978096123Z"  # 9.02 s before NOW


def info(
    status: str, policy: str | None, exit_code: int = 137, running: bool = False, finished: str = LONG_AGO
) -> dict[str, Any]:
    host: dict[str, Any] = {} if policy is None else {"RestartPolicy": {"Name": policy, "MaximumRetryCount": 0}}
    state = {"Status": status, "Running": running, "ExitCode": exit_code, "FinishedAt": finished}
    return {"State": state, "HostConfig": host}


@pytest.mark.parametrize(
    ("container", "expected"),
    [
        (info("exited", "unless-stopped"), True),  # what a crashed engine leaves of a replica
        (info("exited", "always", exit_code=0), True),
        (info("exited", "on-failure", exit_code=137), True),
        (info("exited", "on-failure", exit_code=0), False),  # ended by itself, as its policy allows
        (info("exited", "no"), False),
        (info("exited", ""), False),  # the engine's default: no
        (info("exited", None), False),
        (info("running", "unless-stopped", running=True), False),
        (info("restarting", "unless-stopped"), False),  # the engine is at it already
        (info("created", "unless-stopped"), False),  # a rollout's, not started yet
        (info("paused", "unless-stopped", running=True), False),
        (info("dead", "unless-stopped"), False),
        (None, False),  # gone
        ({}, False),
        (info("exited", "unless-stopped", finished="2026-12-06T04:37:26.5Z"), False),  # 3.5 s ago: not yet
        (info("exited", "unless-stopped", finished="2026-12-06T04:37:24.999Z"), True),  # 5.001 s ago
        (info("exited", "unless-stopped", finished="0001-01-01T00:00:00Z"), True),  # the engine knows no end
    ],
)
def test_only_exited_replicas_whose_policy_asks_to_run_are_started_again(container, expected):
    assert should_start(container, NOW) is expected


def test_the_engines_end_time_is_read_to_the_microsecond():
    assert exited_at({"FinishedAt": LONG_AGO}) == datetime(2026, 12, 6, 4, 37, 20, 978096, tzinfo=UTC)
    assert exited_at({"FinishedAt": "2026-12-06T04:37:20Z"}) == datetime(2026, 12, 6, 4, 37, 20, tzinfo=UTC)
    assert exited_at({"FinishedAt": "0001-01-01T00:00:00Z"}) is None
    assert exited_at({}) is None
    assert exited_at({"FinishedAt": "yesterday"}) is None


def test_left_behind_are_the_records_of_finished_deployments_other_than_the_live_one():
    rows = [SimpleNamespace(name=f"c-{d}", deployment_id=d) for d in ("old", "live", "failed", "running", "unknown")]
    finished = {"old", "live", "failed"}  # "running" has not ended: its records are its own
    assert [r.name for r in leftovers(rows, "live", finished)] == ["c-old", "c-failed"]
    # nothing succeeded yet: a failed first deployment's records are left behind too
    assert [r.name for r in leftovers(rows, None, finished)] == ["c-old", "c-live", "c-failed"]
    assert leftovers([], "live", finished) == []
