"""An application's files on the real scheduler, bus, Postgres, proxy-sync, Traefik and Docker: a compose
web service serves a file of the application from the directory it mounts, its pre-deploy job reads a
single mounted file (mode 0400, root's) as a one-off run of it does, and the next deployment's containers
serve the changed file."""

from __future__ import annotations

import asyncio
import subprocess
import uuid

import pytest

from berth_common.catalogue import ReplicasQuery, ReplicasReply, StartRun
from berth_scheduler.domain import app_files
from tests.scheduler.conftest import remove_labelled
from tests.scheduler.platform import containers_of, wait_served
from tests.scheduler.test_app_files_fill import interrupted_fill
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


def _as_root(name: str, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", "exec", "-u", "0", name, "sh", "-c", script], capture_output=True, text=True, timeout=30
    )


async def test_a_read_only_file_cannot_be_changed_by_root_in_the_replica(platform, busybox, app_id, unique):
    """Compose's ``:ro``: the file is bind-mounted read-only from its volume, so root in the container can
    neither write it, nor replace it, nor change its mode; a writable mount's file stays writable."""
    spec = files_app(busybox, f"page-{unique}.localhost", "page v1")
    del spec["pre_deploy"]
    tools = spec["services"][1]
    tools["files"] = [
        {"source": "conf/motd", "target": "/etc/app/motd", "read_only": True},
        {"source": "www", "target": "/srv/www"},
    ]
    tools["replicas"] = 3  # started together: one fill of their volume, none under another's bind
    dep = await platform.deploy(app_id, spec)
    try:
        assert (await platform.wait(dep, timeout=90))["type"] == "evt.deployment.succeeded", platform.steps(dep)
        names = sorted(n for n, _ in containers_of(app_id) if "-tools-" in n)
        assert len(names) == 3 and all(_as_root(n, "cat /etc/app/motd").stdout == "hello from a file\n" for n in names)
        name = names[0]
        for script in (
            "echo changed > /etc/app/motd",
            "echo more >> /etc/app/motd",
            "chmod 666 /etc/app/motd",
            "rm -f /etc/app/motd",
            "mv /etc/app/motd /etc/app/old",
        ):
            done = _as_root(name, script)
            assert done.returncode != 0, (script, done)
        assert _as_root(name, "cat /etc/app/motd").stdout == "hello from a file\n"
        done = _as_root(name, "echo changed > /srv/www/index.html && cat /srv/www/index.html")
        assert (done.returncode, done.stdout) == (0, "changed\n"), done
        volumes = subprocess.run(
            ["docker", "volume", "ls", "-q", "--filter", f"label=berth.app={app_id}"], capture_output=True, text=True
        ).stdout.split()
        assert [v.startswith(f"berth-{app_id}_files-") for v in volumes] == [True], volumes
        fillers = ["docker", "ps", "-aq", "--filter", f"label=berth.files={volumes[0]}"]
        assert subprocess.run(fillers, capture_output=True, text=True).stdout.split() == [], "a filler was left"
        # a changed read-only file: a new volume for the new replica, the one no container binds is gone
        spec["files"][1]["content"] = "hello again\n"
        d2 = await platform.deploy(app_id, spec)
        assert (await platform.wait(d2, timeout=90))["type"] == "evt.deployment.succeeded", platform.steps(d2)
        names = sorted(n for n, _ in containers_of(app_id) if "-tools-" in n)
        assert [_as_root(n, "cat /etc/app/motd").stdout for n in names] == ["hello again\n"] * 3
        name = names[0]
        assert _as_root(name, "echo changed > /etc/app/motd").returncode != 0
        listed = ["docker", "volume", "ls", "-q", "--filter", f"label=berth.app={app_id}"]
        for _ in range(50):  # pruned once the old replicas are gone, after the deployment is announced
            now = subprocess.run(listed, capture_output=True, text=True).stdout.split()
            if len(now) == 1:
                break
            await asyncio.sleep(0.2)
        assert len(now) == 1 and now != volumes, (now, volumes)
        await platform.remove(app_id, drain_grace_s=0.2)  # its named volumes kept: the files' volume goes
        assert (await platform.wait_app(app_id, timeout=30))["type"] == "evt.application.removed"
        left = ["docker", "volume", "ls", "-q", "--filter", f"label=berth.app={app_id}"]
        assert subprocess.run(left, capture_output=True, text=True).stdout.split() == []
    finally:
        remove_labelled(f"berth.app={app_id}")
        found = ["docker", "volume", "ls", "-q", "--filter", f"label=berth.app={app_id}"]
        for volume in subprocess.run(found, capture_output=True, text=True).stdout.split():
            subprocess.run(["docker", "volume", "rm", "-f", volume], capture_output=True)


async def test_a_read_only_file_cannot_be_changed_by_root_in_a_job_or_a_run(platform, busybox, app_id, unique):
    """The pre-deploy job and a one-off run of a service get its read-only files bound read-only too."""
    spec = files_app(busybox, f"page-{unique}.localhost", "page v1")
    spec["services"][1]["files"] = [{"source": "conf/motd", "target": "/etc/app/motd", "read_only": True}]
    tries = "cat /etc/app/motd; if echo x > /etc/app/motd; then echo WROTE; else echo REFUSED; fi"
    spec["pre_deploy"] = {"command": ["sh", "-c", tries], "service": "tools"}
    try:
        dep = await platform.deploy(app_id, spec)
        assert (await platform.wait(dep, timeout=90))["type"] == "evt.deployment.succeeded", platform.steps(dep)
        logged = log_of(platform, dep)
        assert "[pre-deploy] hello from a file" in logged and "[pre-deploy] REFUSED" in logged, logged
        events = await RunEvents().subscribe(platform.nc)
        run_id = uuid.uuid4().hex
        cmd = StartRun(
            run_id=run_id,
            team_id="team-1",
            application_id=app_id,
            deployment_id=dep,
            service="tools",
            command=["sh", "-c", tries],
            timeout_s=30,
        )
        await platform.api.publish(cmd, id=f"run-start-{run_id}")
        done = await events.wait(run_id)
        assert done["status"] == "succeeded" and "REFUSED" in done["last_lines"], done
        assert "sh: can't create /etc/app/motd: Read-only file system" in done["last_lines"], done
    finally:
        remove_labelled(f"berth.app={app_id}")
        found = ["docker", "volume", "ls", "-q", "--filter", f"label=berth.app={app_id}"]
        for volume in subprocess.run(found, capture_output=True, text=True).stdout.split():
            subprocess.run(["docker", "volume", "rm", "-f", volume], capture_output=True)


async def test_the_removal_leaves_nothing_of_an_interrupted_fill(platform, busybox, app_id, unique, docker):
    """A fill interrupted after its filler was made leaves the filler holding an empty files volume: it is no
    replica of the application, and the application's removal removes it (not counted as one of its
    containers), then the volume."""
    spec = files_app(busybox, f"page-{unique}.localhost", "page v1")
    del spec["pre_deploy"]
    spec["services"][1]["files"] = [{"source": "conf/motd", "target": "/etc/app/motd", "read_only": True}]
    dep = await platform.deploy(app_id, spec)
    try:
        assert (await platform.wait(dep, timeout=90))["type"] == "evt.deployment.succeeded", platform.steps(dep)
        replicas = [n for n, _ in containers_of(app_id)]
        assert len(replicas) == 2 and not any(n.endswith("-filler") for n in replicas), replicas  # gone with d1
        details = [e["data"]["detail"] for e in platform.of(dep, "evt.deployment.progressed")]
        assert details[-1] == "0 old container(s) stopped", details  # its filler removed, but no old container
        await interrupted_fill(docker, app_id, app_files.files_volume_prefix(app_id) + "0" * 24, "team-1")
        query = ReplicasQuery(application_id=app_id)
        reply = await platform.api.request("scheduler", "replicas", query, ReplicasReply)
        assert sorted(r.container for r in reply.replicas) == sorted(replicas)  # the filler is no replica
        await platform.remove(app_id, drain_grace_s=0.2)
        done = await platform.wait_app(app_id, timeout=30)
        assert done["type"] == "evt.application.removed" and done["data"]["containers_removed"] == 2, done
        assert containers_of(app_id) == []
        left = ["docker", "volume", "ls", "-q", "--filter", f"label=berth.app={app_id}"]
        assert subprocess.run(left, capture_output=True, text=True).stdout.split() == []
    finally:
        remove_labelled(f"berth.app={app_id}")
        found = ["docker", "volume", "ls", "-q", "--filter", f"label=berth.app={app_id}"]
        for volume in subprocess.run(found, capture_output=True, text=True).stdout.split():
            subprocess.run(["docker", "volume", "rm", "-f", volume], capture_output=True)
