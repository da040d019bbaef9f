"""Each compose service stops within its own ``stop_grace_period`` (exact data): its container's create body
and its Swarm service carry the service's own stop timeout, a service without one the application's; the
stop calls name no timeout, so the engine waits each container's own ``StopTimeout``."""

from __future__ import annotations

import time

import pytest

from berth_scheduler.domain.containers import container_spec
from berth_scheduler.domain.swarm import service_body
from tests.scheduler import apps
from tests.scheduler.test_compose_specs import APP, DEP, compose_spec
from tests.scheduler.test_docker_replicas import spec_of

NANO = 1_000_000_000


def test_each_service_stops_within_its_own_grace_period():
    base = compose_spec()
    services = [s.model_dump() for s in base.services]
    services[1]["stop_timeout_s"] = 45  # db: stop_grace_period 45s
    services[2]["stop_timeout_s"] = 0  # migrate: killed at once
    spec = compose_spec(services=services)
    web, db, migrate = spec.services[:3]
    bodies = {
        svc.name: container_spec(APP, DEP, spec, svc, 1, "berth/stats:v1", host_port=41000).body
        for svc in (web, db, migrate)
    }
    assert {name: body["StopTimeout"] for name, body in bodies.items()} == {"web": 5, "db": 45, "migrate": 0}
    assert "stop_timeout_s" not in spec.model_dump(mode="json")["services"][0]  # unset: left out of the dump
    assert spec.model_dump(mode="json")["services"][1]["stop_timeout_s"] == 45
    swarm = service_body(container_spec(APP, DEP, spec, db, 1, "berth/stats:v1"), 1, "berth-overlay")
    assert swarm.body["TaskTemplate"]["ContainerSpec"]["StopGracePeriod"] == 45 * NANO


@pytest.mark.docker
async def test_a_stop_call_waits_each_services_own_grace(docker, busybox, app_id):
    """Two services ignoring SIGTERM: the one with its own 1 s grace is killed after about 1 s, while the
    application's timeout is 10 s."""
    spec = spec_of(
        busybox,
        [
            {"kind": "worker", "name": "quick", "command": apps.worker(honour_term=False), "stop_timeout_s": 1},
            {"kind": "worker", "name": "slow", "command": apps.worker(honour_term=False)},
        ],
        stop_timeout_s=10,
    )
    made = [container_spec(app_id, DEP, spec, svc, 1, busybox) for svc in spec.services]
    for cs in made:
        await docker.create(cs)
        await docker.start(cs.name)
    quick, slow = made
    assert (
        (await docker.inspect(quick.name))["Config"]["StopTimeout"],
        (await docker.inspect(slow.name))["Config"]["StopTimeout"],
    ) == (1, 10)
    time.sleep(0.5)
    t0 = time.monotonic()
    await docker.stop(quick.name)  # the call names no timeout: the container's own applies
    took = time.monotonic() - t0
    assert (await docker.inspect(quick.name))["State"]["ExitCode"] == 137
    assert 0.8 < took < 5, took
