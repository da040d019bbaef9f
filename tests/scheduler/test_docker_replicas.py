"""The Docker executor and Berth's readiness checks against the real engine (busybox images)."""

from __future__ import annotations

import time

import httpx
import pytest

from berth_common import labels
from berth_common.catalogue import ApplicationSpec
from berth_scheduler.adapters.docker import DockerOperationError, host_port_of
from berth_scheduler.adapters.ports import allocate_port
from berth_scheduler.adapters.readiness import NotReadyError
from berth_scheduler.domain.containers import container_spec
from tests.scheduler import apps

pytestmark = [pytest.mark.docker]
DEP = "5ca1ab1e00000000000000000000beef"


def spec_of(image: str, services: list[dict], **over) -> ApplicationSpec:
    return ApplicationSpec.model_validate(
        {"name": "t", "source": {"kind": "image", "image": image}, "services": services, **over}
    )


async def run(docker, cs):
    await docker.create(cs)
    await docker.start(cs.name)


async def test_web_replica_starts_on_loopback_and_passes_readiness(docker, readiness, busybox, app_id):
    spec = spec_of(
        busybox,
        [
            {
                "kind": "web",
                "name": "web",
                "port": 8080,
                "health_path": "/cgi-bin/health",
                "command": apps.web("hello v1"),
            }
        ],
    )
    cs = container_spec(app_id, DEP, spec, spec.services[0], 1, busybox, host_port=allocate_port())
    t0 = time.monotonic()
    await run(docker, cs)
    await readiness.wait_ready(cs, time.time() + 20)
    elapsed = time.monotonic() - t0
    info = await docker.inspect(cs.name)
    assert host_port_of(info, 8080) == cs.host_port
    assert info["HostConfig"]["PortBindings"] == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(cs.host_port)}]}
    assert info["Config"]["Labels"][labels.DEPLOYMENT] == DEP
    async with httpx.AsyncClient(trust_env=False) as c:
        assert (await c.get(f"{cs.upstream}/")).text == "hello v1\n"
    listed = await docker.list_containers({labels.APP: app_id})
    assert [(c.name, c.state) for c in listed] == [(cs.name, "running")]
    assert elapsed < 10, elapsed
    # a repeated create (a step resumed after a restart) finds the same container
    assert await docker.create(cs) == info["Id"]


async def test_not_ready_while_the_health_path_answers_503(docker, readiness, busybox, app_id):
    spec = spec_of(
        busybox,
        [
            {
                "kind": "web",
                "name": "web",
                "port": 8080,
                "health_path": "/cgi-bin/health",
                "command": apps.web("v2", warmup_s=3),
            }
        ],
    )
    cs = container_spec(app_id, DEP, spec, spec.services[0], 1, busybox, host_port=allocate_port())
    t0 = time.monotonic()
    await run(docker, cs)
    seen_503 = False
    for _ in range(50):  # the app really answers 503 first (so the assertion below can fail)
        ok, what = await readiness.probe_http(cs.host_port, "/cgi-bin/health")
        if "503" in what:
            seen_503 = True
            break
        time.sleep(0.05)
    assert seen_503
    await readiness.wait_ready(cs, time.time() + 20)
    waited = time.monotonic() - t0
    assert waited >= 2.0, f"declared ready after {waited:.2f}s while the app warms up for 3s"
    ok, what = await readiness.probe_http(cs.host_port, "/cgi-bin/health")
    assert ok, what


async def test_never_healthy_fails_at_the_deadline_with_a_reason(docker, readiness, busybox, app_id):
    spec = spec_of(
        busybox,
        [
            {
                "kind": "web",
                "name": "web",
                "port": 8080,
                "health_path": "/cgi-bin/health",
                "command": apps.web("x", never_healthy=True),
            }
        ],
    )
    cs = container_spec(app_id, DEP, spec, spec.services[0], 1, busybox, host_port=allocate_port())
    await run(docker, cs)
    t0 = time.monotonic()
    with pytest.raises(
        NotReadyError,
        match=r"no 2xx from GET /cgi-bin/health before the deadline \(GET /cgi-bin/health answered 503: warming up\)",
    ):
        await readiness.wait_ready(cs, time.time() + 3)
    assert 2.5 < time.monotonic() - t0 < 6


async def test_crash_loop_is_detected_before_the_deadline_with_its_logs(docker, readiness, busybox, app_id):
    spec = spec_of(busybox, [{"kind": "web", "name": "web", "port": 8080, "command": apps.crash()}])
    cs = container_spec(app_id, DEP, spec, spec.services[0], 1, busybox, host_port=allocate_port())
    await run(docker, cs)
    t0 = time.monotonic()
    with pytest.raises(NotReadyError) as err:
        await readiness.wait_ready(cs, time.time() + 60)
    assert time.monotonic() - t0 < 30
    assert "keeps crashing" in str(err.value) and "last exit code 3" in str(err.value)
    assert "fatal: cannot connect to the database" in str(err.value)


async def test_exited_container_without_restart_policy(docker, readiness, busybox, app_id):
    spec = spec_of(busybox, [{"kind": "worker", "name": "jobs", "command": apps.crash(7)}], restart_policy="no")
    cs = container_spec(app_id, DEP, spec, spec.services[0], 1, busybox)
    await run(docker, cs)
    with pytest.raises(NotReadyError, match="exited with code 7"):
        await readiness.wait_ready(cs, time.time() + 20)


async def test_worker_readiness_by_command(docker, readiness, busybox, app_id):
    spec = spec_of(
        busybox,
        [
            {
                "kind": "worker",
                "name": "jobs",
                "command": apps.worker(ready_after_s=2),
                "health_command": apps.WORKER_HEALTH,
            }
        ],
    )
    cs = container_spec(app_id, DEP, spec, spec.services[0], 1, busybox)
    await run(docker, cs)
    assert (await docker.exec(cs.name, apps.WORKER_HEALTH, 5)).exit_code == 1
    t0 = time.monotonic()
    await readiness.wait_ready(cs, time.time() + 20)
    assert time.monotonic() - t0 > 1.0
    assert (await docker.exec(cs.name, apps.WORKER_HEALTH, 5)).exit_code == 0


async def test_worker_gets_sigterm_and_is_gone_before_the_grace_ends(docker, busybox, app_id):
    spec = spec_of(busybox, [{"kind": "worker", "name": "jobs", "command": apps.worker()}], stop_timeout_s=10)
    cs = container_spec(app_id, DEP, spec, spec.services[0], 1, busybox)
    await run(docker, cs)
    time.sleep(0.5)
    t0 = time.monotonic()
    await docker.stop(cs.name)  # the container's own StopTimeout (10 s) applies
    took = time.monotonic() - t0
    info = await docker.inspect(cs.name)
    assert info["State"]["Status"] == "exited" and info["State"]["ExitCode"] == 0
    assert "got SIGTERM" in await docker.logs(cs.name)
    assert took < 5, f"stopping took {took:.2f}s: SIGTERM was not honoured"


async def test_worker_ignoring_sigterm_is_killed_at_the_stop_timeout(docker, busybox, app_id):
    spec = spec_of(
        busybox, [{"kind": "worker", "name": "jobs", "command": apps.worker(honour_term=False)}], stop_timeout_s=2
    )
    cs = container_spec(app_id, DEP, spec, spec.services[0], 1, busybox)
    await run(docker, cs)
    time.sleep(0.5)
    t0 = time.monotonic()
    await docker.stop(cs.name)
    took = time.monotonic() - t0
    info = await docker.inspect(cs.name)
    assert info["State"]["ExitCode"] == 137  # SIGKILL
    assert 1.8 < took < 6, took
    await docker.remove(cs.name)
    assert await docker.inspect(cs.name) is None
    await docker.remove(cs.name)  # removing again is fine
    await docker.stop(cs.name)


async def test_missing_image_is_reported_plainly(docker, busybox, app_id):
    spec = spec_of("berth-test/absent:nope", [{"kind": "worker", "name": "jobs"}])
    cs = container_spec(app_id, DEP, spec, spec.services[0], 1, "berth-test/absent:nope")
    with pytest.raises(DockerOperationError, match="is not on this server"):
        await docker.create(cs)


async def test_replicas_join_the_applications_network(docker, busybox, app_id, unique):
    import subprocess

    net = f"berth-test-{unique}"
    spec = spec_of(busybox, [{"kind": "worker", "name": "jobs", "command": apps.worker()}], network=net)
    cs = container_spec(app_id, DEP, spec, spec.services[0], 1, busybox)
    try:
        await docker.ensure_network(net, {"berth.test": "1"})
        await docker.ensure_network(net, {"berth.test": "1"})  # idempotent
        await run(docker, cs)
        info = await docker.inspect(cs.name)
        assert info["NetworkSettings"]["Networks"][net]["Aliases"][:1] == ["jobs.t"]
    finally:
        await docker.remove(cs.name)
        subprocess.run(["docker", "network", "rm", net], capture_output=True, check=False)


async def test_networks_made_at_once_under_one_name_are_one_network(docker, unique):
    """Two deployments preparing a new server at once: one network, never two of one name (ambiguous)."""
    import asyncio
    import subprocess

    name = f"berth-test-net-{unique}"

    def made() -> list[str]:
        argv = ["docker", "network", "ls", "-q", "--filter", f"name=^{name}$"]
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split()

    try:
        await asyncio.gather(*(docker.ensure_network(name, {labels.MANAGED: "true"}) for _ in range(6)))
        assert len(made()) == 1, made()
    finally:
        for net in made():  # by id: a name made twice is ambiguous
            subprocess.run(["docker", "network", "rm", net], capture_output=True, check=False)
