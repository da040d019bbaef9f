"""An application's files on the real scheduler, bus, Postgres, proxy-sync, Traefik and Docker: a compose
web service serves a file of the application from the directory it mounts, its pre-deploy job reads a
single mounted file (mode 0400, root's) as a one-off run of it does, and the next deployment's containers
serve the changed file."""

from __future__ import annotations

import uuid

import pytest

from berth_common.catalogue import StartRun
from tests.scheduler.platform import containers_of, wait_served
from tests.scheduler.test_pre_deploy import log_of
from tests.scheduler.test_runs import RunEvents

pytestmark = [pytest.mark.slow, pytest.mark.docker]


def files_app(busybox: str, host: str, page: str) -> dict:
    return {
        "name": "page",
        "source": {"kind": "image", "image": busybox},
        "services": [
            {
                "kind": "web",
                "name": "web",
                "port": 8080,
                "hosts": [host],
                "command": ["httpd", "-f", "-p", "8080", "-h", "/srv/www"],
                "files": [{"source": "www", "target": "/srv/www"}],
            },
            {
                "kind": "worker",
                "name": "tools",
                "command": ["sh", "-c", "exec sleep 3600"],
                "files": [{"source": "conf/motd", "target": "/etc/app/motd"}],
            },
        ],
        "files": [
            {"path": "www/index.html", "content": f"{page}\n"},
            {"path": "conf/motd", "content": "hello from a file\n", "mode": 0o400},
        ],
        "private_network": True,
        "stop_timeout_s": 1,
        "pre_deploy": {"command": ["cat", "/etc/app/motd"], "service": "tools"},
    }


async def test_files_are_in_the_replicas_and_the_job_and_a_changed_file_is_served_next(
    platform, busybox, app_id, unique
):
    host = f"page-{unique}.localhost"
    d1 = await platform.deploy(app_id, files_app(busybox, host, "page v1"))
    done = await platform.wait(d1, timeout=90)
    assert done["type"] == "evt.deployment.succeeded", platform.steps(d1)
    await wait_served(platform, host, "page v1")
    assert "[pre-deploy] hello from a file" in log_of(platform, d1)

    d2 = await platform.deploy(app_id, files_app(busybox, host, "page v2"))
    done = await platform.wait(d2, timeout=90)
    assert done["type"] == "evt.deployment.succeeded", platform.steps(d2)
    await wait_served(platform, host, "page v2")
    # the web service's files changed: a new container; the worker's did not: its container is kept
    assert {dep for _, dep in containers_of(app_id)} == {d2}
    assert "[pre-deploy] hello from a file" in log_of(platform, d2)


async def test_a_one_off_run_of_a_service_reads_the_files_it_mounts(platform, busybox, app_id, unique):
    host = f"page-{unique}.localhost"
    spec = files_app(busybox, host, "page v1")
    del spec["pre_deploy"]
    dep = await platform.deploy(app_id, spec)
    assert (await platform.wait(dep, timeout=90))["type"] == "evt.deployment.succeeded", platform.steps(dep)
    events = await RunEvents().subscribe(platform.nc)
    run_id = uuid.uuid4().hex
    cmd = StartRun(
        run_id=run_id,
        team_id="team-1",
        application_id=app_id,
        deployment_id=dep,
        service="tools",
        command=["cat", "/etc/app/motd"],
        timeout_s=30,
    )
    await platform.api.publish(cmd, id=f"run-start-{run_id}")
    done = await events.wait(run_id)
    assert (done["status"], done["last_lines"]) == ("succeeded", ["hello from a file"]), done
