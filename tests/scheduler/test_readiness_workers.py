"""A worker whose health check fails is told with the check's own output and its last log lines, against the
real engine: Berth's health command (an exec) at the deadline, Docker's healthcheck (a compose service's) as
soon as Docker reports the container unhealthy."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace

import pytest

from berth_scheduler.adapters.docker import DockerOperationError
from berth_scheduler.adapters.readiness import NotReadyError, ReadinessChecker
from berth_scheduler.domain import runs
from berth_scheduler.domain.containers import container_spec
from berth_scheduler.domain.readiness import ReadinessConfig
from tests.scheduler.test_docker_replicas import run, spec_of

pytestmark = [pytest.mark.docker]


async def test_a_worker_whose_health_command_fails_is_told_with_its_output(docker, readiness, busybox, app_id):
    worker = {
        "kind": "worker",
        "name": "jobs",
        "command": ["sh", "-c", "echo 'worker started, no queue yet'; exec sleep 600"],
        "health_command": ["sh", "-c", "echo 'queue broker unreachable'; exit 1"],
    }
    spec = spec_of(busybox, [worker])
    cs = container_spec(app_id, uuid.uuid4().hex, spec, spec.services[0], 1, busybox)
    await run(docker, cs)
    with pytest.raises(NotReadyError) as err:
        await readiness.wait_ready(cs, time.time() + 2)
    reason = str(err.value)
    assert "the health command exited with code 1: queue broker unreachable" in reason, reason
    assert "worker started, no queue yet" in reason, reason  # the container's last log lines


async def test_a_worker_docker_reports_unhealthy_fails_at_once_with_the_checks_output(docker, busybox, app_id):
    worker = {
        "kind": "worker",
        "name": "jobs",
        "command": ["sh", "-c", "echo 'worker up'; exec sleep 600"],
        "healthcheck": {"test": ["sh", "-c", "echo 'cache not warm'; exit 1"], "interval_s": 0.2, "retries": 2},
    }
    spec = spec_of(busybox, [worker])
    cs = container_spec(app_id, uuid.uuid4().hex, spec, spec.services[0], 1, busybox)
    checker = ReadinessChecker(docker, ReadinessConfig(interval_s=0.1, worker_settle_s=30))  # would pass at 30 s
    await run(docker, cs)
    t0 = time.monotonic()
    try:
        with pytest.raises(NotReadyError) as err:
            await checker.wait_ready(cs, time.time() + 60)
    finally:
        await checker.close()
    took = time.monotonic() - t0
    reason = str(err.value)
    assert (
        "Docker reports it unhealthy (2 failures in a row): the health command exited with code 1: cache not warm"
        in (reason)
    ), reason
    assert "worker up" in reason, reason
    assert took < 5, took


async def test_a_container_the_engine_cannot_start_is_told_with_the_engines_error(docker, busybox, app_id):
    """What a one-off run records when the engine refuses to start its container (here: no such program, and
    no init process to run first), read from the engine's own inspection."""
    spec = spec_of(busybox, [{"kind": "worker", "name": "jobs", "command": ["/no/such/program"]}])
    cs = container_spec(app_id, uuid.uuid4().hex, spec, spec.services[0], 1, busybox)
    cs = replace(cs, body={**cs.body, "HostConfig": {**cs.body["HostConfig"], "Init": False}})
    await docker.create(cs)
    with pytest.raises(DockerOperationError) as err:
        await docker.start(cs.name)
    result = runs.not_started(await docker.inspect(cs.name), str(err.value))
    assert (result.status, result.exit_code) == ("failed", 127), result
    assert result.reason.startswith("could not start (exit code 127): "), result
    assert "/no/such/program" in result.reason, result


@pytest.mark.parametrize(
    ("check", "words"),
    [
        (["/no/such/check"], "the health command cannot run in this image"),
        (["sh", "-c", "no-such-tool --ping"], "the health command exited with code 127"),
    ],
)
async def test_a_health_command_that_cannot_run_fails_at_once(docker, busybox, app_id, check, words):
    worker = {"kind": "worker", "name": "jobs", "command": ["sh", "-c", "exec sleep 600"], "health_command": check}
    spec = spec_of(busybox, [worker])
    cs = container_spec(app_id, uuid.uuid4().hex, spec, spec.services[0], 1, busybox)
    checker = ReadinessChecker(docker, ReadinessConfig(interval_s=0.1))
    await run(docker, cs)
    t0 = time.monotonic()
    try:
        with pytest.raises(NotReadyError) as err:
            await checker.wait_ready(cs, time.time() + 60)
    finally:
        await checker.close()
    assert words in str(err.value), err.value
    assert time.monotonic() - t0 < 20  # well before the deadline: the check can never pass
