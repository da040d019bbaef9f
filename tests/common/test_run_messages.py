"""The messages of one-off runs (``catalogue/runs.py``): a command is an argv of 1 to 64 arguments without
NUL, each at most 4096 characters; a finished run carries at most 20 lines."""

from __future__ import annotations

import pytest

from berth_common.catalogue import RunFinished, StartRun


def test_a_command_is_kept_as_the_argv_given():
    cmd = StartRun(
        run_id="r", team_id="t", application_id="a", deployment_id="d", service="web", command=["sh", "-c", "a; b"]
    )
    assert cmd.command == ["sh", "-c", "a; b"] and cmd.timeout_s == 3600


@pytest.mark.parametrize(
    "command",
    [[], ["a"] * 65, ["x" * 4097], ["ok", "nul\x00inside"]],
)
def test_a_bad_command_is_refused(command):
    with pytest.raises(ValueError, match="command"):
        StartRun(run_id="r", team_id="t", application_id="a", deployment_id="d", service="web", command=command)


def test_finished_carries_at_most_twenty_lines():
    with pytest.raises(ValueError, match="last_lines"):
        RunFinished(
            run_id="r",
            team_id="t",
            application_id="a",
            status="failed",
            last_lines=["x"] * 21,
            finished_at="2026-01-01T00:00:00Z",
        )
