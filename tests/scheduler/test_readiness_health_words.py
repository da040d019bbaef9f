"""A worker's health check in words (pure): its command's exit code and output, from an exec or from the
last entry of Docker's health log, and Docker's ``unhealthy`` as a reason to fail at once."""

from __future__ import annotations

from berth_scheduler.domain.readiness import docker_health_failure, health_command_text, health_log_text


def test_a_health_command_is_told_with_its_exit_code_and_output_on_one_line():
    assert health_command_text(1, "queue down\n  retrying later\n") == (
        "the health command exited with code 1: queue down retrying later"
    )
    assert health_command_text(2, "  \n") == "the health command exited with code 2 and printed nothing"
    long = "x" * 290 + " the end of it"
    assert health_command_text(1, long) == "the health command exited with code 1: ..." + long[-300:]


def test_dockers_health_log_is_told_by_its_last_check():
    health = {
        "Status": "starting",
        "FailingStreak": 1,
        "Log": [{"ExitCode": 0, "Output": "ok"}, {"ExitCode": 1, "Output": "no ready file\n"}],
    }
    assert health_log_text(health) == "the health command exited with code 1: no ready file"
    assert health_log_text({"Status": "starting", "Log": []}) is None
    assert health_log_text(None) is None


def test_only_unhealthy_fails_and_says_how_often_the_check_failed():
    assert docker_health_failure(None) is None
    assert docker_health_failure({"Status": "starting", "Log": [{"ExitCode": 1, "Output": "x"}]}) is None
    assert docker_health_failure({"Status": "healthy", "Log": [{"ExitCode": 0, "Output": ""}]}) is None
    unhealthy = {"Status": "unhealthy", "FailingStreak": 3, "Log": [{"ExitCode": 1, "Output": "db down"}]}
    assert docker_health_failure(unhealthy) == (
        "Docker reports it unhealthy (3 failures in a row): the health command exited with code 1: db down"
    )
    assert docker_health_failure({"Status": "unhealthy", "FailingStreak": 1, "Log": []}) == (
        "Docker reports it unhealthy: no check output"
    )


def test_a_health_command_that_cannot_run_is_hopeless_at_once():
    from berth_scheduler.domain.readiness import health_command_hopeless, health_exec_refused

    assert health_command_hopeless(127, "sh: redis-cli: not found\n") == (
        "the health command exited with code 127: sh: redis-cli: not found (a program it runs is not found in "
        "this image)"
    )
    assert health_command_hopeless(126, "") == (
        "the health command exited with code 126 and printed nothing (a program it runs cannot be executed in "
        "this image)"
    )
    assert health_command_hopeless(1, "queue down") is None and health_command_hopeless(None, "") is None
    refused = 'OCI runtime exec failed: exec failed: unable to start container process: exec: "/no/check": stat /no/check: no such file or directory: unknown'
    assert health_exec_refused(refused) == f"the health command cannot run in this image: {refused}"
    assert health_exec_refused("container abc is restarting, wait until the container is running") is None
