"""Which replicas of a live version the scheduler starts again: those an engine restart left exited although
their restart policy asks for them to run (``domain/revival.py``)."""

from __future__ import annotations

from typing import Any

import pytest

from berth_scheduler.domain.revival import should_start


def info(status: str, policy: str | None, exit_code: int = 137, running: bool = False) -> dict[str, Any]:
    host: dict[str, Any] = {} if policy is None else {"RestartPolicy": {"Name": policy, "MaximumRetryCount": 0}}
    return {"State": {"Status": status, "Running": running, "ExitCode": exit_code}, "HostConfig": host}


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
    ],
)
def test_only_exited_replicas_whose_policy_asks_to_run_are_started_again(container, expected):
    assert should_start(container) is expected
