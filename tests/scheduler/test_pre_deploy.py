"""The pre-deploy job on the real scheduler, bus, Postgres, proxy-sync, Traefik and Docker: it runs from the
new image with the application's variables before any new replica starts, its output is in the
deployment's log, a failure leaves the live version serving (no failed request), a scheduler restart in
the middle of it neither runs it twice nor loses it, and a cancel stops it."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess

import pytest
from structlog.testing import capture_logs

from berth_scheduler.adapters.docker import DockerExecutor, DockerOperationError
from berth_scheduler.domain import names
from berth_scheduler.usecases.rollout.pre_deploy import RESTARTED
from tests.scheduler import apps
from tests.scheduler.platform import Load, containers_of, wait_served, web_app

pytestmark = [pytest.mark.slow, pytest.mark.docker]


def with_job(spec: dict, command: list[str], **job) -> dict:
    return {
        **spec,
        "env": [*spec["env"], {"name": "GREETING", "value": "hello"}],
        "pre_deploy": {"command": command, **job},
    }


def job_container(dep: str) -> dict | None:
    out = subprocess.run(["docker", "inspect", f"berth-predeploy-{dep}"], capture_output=True, text=True, check=False)
    return json.loads(out.stdout)[0] if out.returncode == 0 else None


def log_of(platform, dep: str) -> list[str]:
    return [line["data"]["line"] for line in platform.logs if line["data"]["deployment_id"] == dep]


async def deployed_v1(platform, busybox, app_id, unique) -> tuple[str, str]:
    host = f"web-shop-{unique}.localhost"
    d1 = await platform.deploy(app_id, web_app(busybox, "v1", host))
    assert (await platform.wait(d1))["type"] == "evt.deployment.succeeded"
    return host, d1


async def test_a_job_that_succeeds_runs_before_the_replicas_then_the_rollout_goes_on(platform, busybox, app_id, unique):
    host, _ = await deployed_v1(platform, busybox, app_id, unique)
    image = f"berth-test/predeploy:{unique}"
    subprocess.run(["docker", "tag", busybox, image], check=True)
    try:
        spec = with_job(web_app(image, "v2", host), ["sh", "-c", "echo migrating $GREETING; sleep 0.3; echo done >&2"])
        spec["source"] = {"kind": "image", "image": image, "pull_policy": "if-missing"}
        d2 = await platform.deploy(app_id, spec)
        done = await platform.wait(d2, timeout=60)
        assert done["type"] == "evt.deployment.succeeded", done
        steps = [s for _, s in platform.steps(d2)]
        at = steps.index("pre-deploy job succeeded")
        assert steps[:2] == ["queued", "starting replicas"] and steps[at + 1] == "replicas started", steps
        job_step = [e["data"] for e in platform.of(d2, "evt.deployment.progressed")][at]
        assert (job_step["state"], job_step["detail"]) == (
            "starting",
            "sh -c echo migrating $GREETING; sleep 0.3; echo done >&2: exited with code 0",
        )
        assert [line for line in log_of(platform, d2) if line.startswith("[pre-deploy]")] == [
            "[pre-deploy] running sh -c echo migrating $GREETING; sleep 0.3; echo done >&2 (service web, local)",
            "[pre-deploy] migrating hello",
            "[pre-deploy] done",
            "[pre-deploy] exited with code 0",
        ]
        await wait_served(platform, host, "v2")
        assert job_container(d2) is None  # removed once the replicas started
        assert {dep for _, dep in containers_of(app_id)} == {d2}
    finally:
        subprocess.run(["docker", "rmi", image], capture_output=True, check=False)


async def test_a_job_that_fails_fails_the_deployment_and_the_old_version_keeps_serving(
    platform, busybox, app_id, unique
):
    host, d1 = await deployed_v1(platform, busybox, app_id, unique)
    route_id = names.route_id(app_id, "web")
    before = platform.route_file(route_id)
    load = Load(platform.traefik.web_port, host).start()
    await asyncio.sleep(0.5)
    command = ["sh", "-c", "echo step 1; sleep 0.3; echo 'relation users does not exist' >&2; exit 3"]
    d2 = await platform.deploy(app_id, with_job(web_app(busybox, "v2", host), command))
    failed = await platform.wait(d2, timeout=60)
    await asyncio.sleep(0.5)
    await asyncio.to_thread(load.stop)
    assert failed["type"] == "evt.deployment.failed", failed
    assert failed["data"]["failed_in"] == "starting"
    assert failed["data"]["reason"] == (
        "the pre-deploy job exited with code 3; its last lines:\nstep 1\nrelation users does not exist"
    )
    assert "replicas started" not in [s for _, s in platform.steps(d2)]
    assert [line for line in log_of(platform, d2) if line.startswith("[pre-deploy]")][1:] == [
        "[pre-deploy] step 1",
        "[pre-deploy] relation users does not exist",
        "[pre-deploy] the pre-deploy job exited with code 3; its last lines:",
    ]
    assert load.errors == [], load.errors[:10]
    assert set(load.contents()) == {"v1"}
    assert job_container(d2) is None
    assert {dep for _, dep in containers_of(app_id)} == {d1}
    assert platform.route_file(route_id) == before  # byte-identical


async def test_a_scheduler_restart_mid_job_neither_runs_it_twice_nor_loses_it(platform, busybox, app_id, unique):
    host, _ = await deployed_v1(platform, busybox, app_id, unique)
    command = ["sh", "-c", "echo started; sleep 4; echo finished"]
    d2 = await platform.deploy(app_id, with_job(web_app(busybox, "v2", host), command))
    for _ in range(200):
        if any(line.startswith("[pre-deploy] running") for line in log_of(platform, d2)):
            break
        await asyncio.sleep(0.1)
    await platform.scheduler.stop()  # mid-job: the container goes on
    before = job_container(d2)
    assert before is not None and before["State"]["Running"], before
    await platform.scheduler.start()
    done = await platform.wait(d2, timeout=60)
    assert done["type"] == "evt.deployment.succeeded", done
    job_lines = [line for line in log_of(platform, d2) if line.startswith("[pre-deploy]")]
    assert job_lines[1:] == ["[pre-deploy] started", "[pre-deploy] finished", "[pre-deploy] exited with code 0"]
    assert len(job_lines) == 2 + 2  # one "running" line: made once
    assert [s for _, s in platform.steps(d2)].count("pre-deploy job succeeded") == 1
    await wait_served(platform, host, "v2")
    assert job_container(d2) is None


async def test_a_job_whose_start_the_engine_refuses_for_a_lost_task_is_made_again_and_runs(
    platform, busybox, app_id, unique, monkeypatch
):
    host, _ = await deployed_v1(platform, busybox, app_id, unique)
    real = DockerExecutor.start
    refused: list[str] = []

    async def start(self: DockerExecutor, name: str) -> None:
        if name.startswith("berth-predeploy-") and not refused:  # as an engine back from a crash mid-start
            info = await self.inspect(name)
            assert info is not None
            refused.append(info["Id"])
            raise DockerOperationError(f"docker start {name}: task {info['Id']}: already exists", 409)
        await real(self, name)

    monkeypatch.setattr(DockerExecutor, "start", start)
    with capture_logs() as logs:
        d2 = await platform.deploy(app_id, with_job(web_app(busybox, "v2", host), ["echo", "migrated"]))
        done = await platform.wait(d2, timeout=60)
    assert done["type"] == "evt.deployment.succeeded", done
    name = f"berth-predeploy-{d2}"
    assert [(e["container"], e["processes"]) for e in logs if e["event"].startswith("the engine lost the task")] == [
        (name, [])  # the helper ran on it (no process of its task was left)
    ]
    running = "[pre-deploy] running echo migrated (service web, local)"
    assert [line for line in log_of(platform, d2) if line.startswith("[pre-deploy]")] == [
        running,
        "[pre-deploy] " + RESTARTED,
        running,  # made again
        "[pre-deploy] migrated",
        "[pre-deploy] exited with code 0",
    ]
    assert len(refused) == 1 and job_container(d2) is None
    await wait_served(platform, host, "v2")


async def test_a_cancel_stops_the_job_and_the_old_version_keeps_serving(platform, busybox, app_id, unique):
    host, d1 = await deployed_v1(platform, busybox, app_id, unique)
    d2 = await platform.deploy(app_id, with_job(web_app(busybox, "v2", host), ["sleep", "300"]))
    for _ in range(200):
        found = job_container(d2)
        if found is not None and found["State"]["Running"]:
            break
        await asyncio.sleep(0.1)
    await platform.cancel(d2)
    ended = await platform.wait(d2, timeout=30)
    assert ended["type"] == "evt.deployment.cancelled", ended
    assert job_container(d2) is None
    assert {dep for _, dep in containers_of(app_id)} == {d1}
    await wait_served(platform, host, "v1")


def compose_app(busybox: str, host: str, job: list[str]) -> dict:
    db = "mkdir -p /w && echo db-up > /w/index.html && exec httpd -f -p 8081 -h /w"
    return {
        "name": "stats",
        "source": {"kind": "image", "image": busybox},
        "services": [
            {
                "kind": "web",
                "name": "web",
                "port": 8080,
                "health_path": "/cgi-bin/health",
                "hosts": [host],
                "command": apps.web("v1"),
            },
            {
                "kind": "worker",
                "name": "db",
                "command": ["sh", "-c", db],
                "healthcheck": {"test": ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8081/"], "interval_s": 0.5},
            },
            {
                "kind": "worker",
                "name": "migrate",
                "command": apps.worker(),
                "depends_on": [{"service": "db", "condition": "service_healthy"}],
            },
        ],
        "private_network": True,
        "stop_timeout_s": 2,
        "pre_deploy": {"command": job, "service": "migrate"},
    }


async def test_a_compose_job_runs_once_the_services_its_service_depends_on_run(platform, busybox, app_id, unique):
    host = f"stats-{unique}.localhost"
    d1 = await platform.deploy(app_id, compose_app(busybox, host, ["wget", "-qO-", "http://db:8081/"]))
    done = await platform.wait(d1, timeout=90)
    assert done["type"] == "evt.deployment.succeeded", platform.steps(d1)
    assert [line for line in log_of(platform, d1) if line.startswith("[pre-deploy]")] == [
        "[pre-deploy] running wget -qO- http://db:8081/ (service migrate, local)",
        "[pre-deploy] db-up",  # the first deployment's db, reached by its name on the application's network
        "[pre-deploy] exited with code 0",
    ]
    await wait_served(platform, host, "v1")
    assert job_container(d1) is None
    assert sorted(dep for _, dep in containers_of(app_id)) == [d1, d1, d1]

    d2 = await platform.deploy(app_id, compose_app(busybox, host, ["sh", "-c", "echo no table; exit 5"]))
    failed = await platform.wait(d2, timeout=90)
    assert failed["type"] == "evt.deployment.failed", platform.steps(d2)
    assert failed["data"]["reason"].startswith("the pre-deploy job exited with code 5; its last lines:\nno table")
    assert job_container(d2) is None
    assert {dep for _, dep in containers_of(app_id)} == {d1}
    await wait_served(platform, host, "v1")


async def test_a_job_past_its_timeout_or_with_no_such_program_fails_saying_so(platform, busybox, app_id, unique):
    host, d1 = await deployed_v1(platform, busybox, app_id, unique)
    slow = with_job(web_app(busybox, "v2", host), ["sh", "-c", "echo waiting; sleep 60"], timeout_s=2)
    d2 = await platform.deploy(app_id, slow)
    failed = await platform.wait(d2, timeout=60)
    assert failed["type"] == "evt.deployment.failed", failed
    assert failed["data"]["reason"] == "the pre-deploy job timed out after 2 s (killed); its last lines:\nwaiting"
    assert job_container(d2) is None

    d3 = await platform.deploy(app_id, with_job(web_app(busybox, "v3", host), ["/no/such/migrate"]))
    failed = await platform.wait(d3, timeout=60)
    assert failed["type"] == "evt.deployment.failed", failed
    assert re.fullmatch(  # the container's init says why (its process id varies)
        r"the pre-deploy job exited with code 127; its last lines:\n"
        r"\[FATAL tini \(\d+\)\] exec /no/such/migrate failed: No such file or directory",
        failed["data"]["reason"],
    ), failed["data"]["reason"]
    assert job_container(d3) is None
    assert {dep for _, dep in containers_of(app_id)} == {d1}
    await wait_served(platform, host, "v1")
