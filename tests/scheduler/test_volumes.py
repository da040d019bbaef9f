"""Named volumes of application services: what the scheduler makes and mounts (as exact data), and end to end
with the real scheduler, bus, Postgres, proxy-sync, Traefik and Docker: a file written into a volume by one
version is read by the next after a redeploy, after a rollback and by a scaled-up replica; ``strategy:
recreate`` stops the old replica before the new one starts and says the gap is expected downtime; a
removal keeps the volumes unless the command asks to delete them."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from typing import Any

import pytest

from berth_common.catalogue import (
    ApplicationSpec,
    RemoveApplication,
    ScaleApplication,
    VolumesQuery,
    VolumesReply,
    WebService,
    WorkerService,
)
from berth_scheduler.domain import machine, volumes
from berth_scheduler.domain.containers import container_spec
from tests.scheduler.conftest import remove_labelled
from tests.scheduler.platform import DockerEvents, containers_of, wait_served, web_app

TEAM = "team-1"


# --- exact data ------------------------------------------------------------------------------------


def _spec(**service: Any) -> ApplicationSpec:
    svc = {"kind": "web", "name": "web", "port": 8080, **service}
    return ApplicationSpec.model_validate(
        {"name": "shop", "source": {"kind": "image", "image": "x:1"}, "services": [svc]}
    )


def test_a_replica_mounts_its_named_volumes_then_its_binds_exactly():
    spec = _spec(
        volumes=[
            {"name": "data", "path": "/var/lib/data", "size_mb": 512},
            {"name": "cache", "path": "/cache"},
            {"name": "uploads", "path": "/srv/uploads", "read_only": True},
        ],
        binds=[
            {"host_path": "/srv/shared", "path": "/shared"},
            {"host_path": "/srv/out", "path": "/out", "read_only": False},
        ],
    )
    cs = container_spec("app1", "dep1", spec, spec.services[0], 1, "x:1", 30001, "team-1")
    assert cs.body["HostConfig"]["Mounts"] == [
        {"Type": "volume", "Source": "berth-app1-data", "Target": "/var/lib/data", "ReadOnly": False},
        {"Type": "volume", "Source": "berth-app1-cache", "Target": "/cache", "ReadOnly": False},
        {"Type": "volume", "Source": "berth-app1-uploads", "Target": "/srv/uploads", "ReadOnly": True},
        {"Type": "bind", "Source": "/srv/shared", "Target": "/shared", "ReadOnly": True},
        {"Type": "bind", "Source": "/srv/out", "Target": "/out", "ReadOnly": False},
    ]


def test_a_service_without_mounts_has_no_mounts_key_and_its_spec_dumps_as_before():
    spec = _spec()
    cs = container_spec("app1", "dep1", spec, spec.services[0], 1, "x:1", 30001)
    assert "Mounts" not in cs.body["HostConfig"]
    assert set(spec.services[0].model_dump(mode="json")) == {
        "kind", "name", "port", "replicas", "health_path", "command", "hosts", "limits"
    }  # fmt: skip


def test_the_volume_create_body_is_named_and_labelled_exactly():
    assert volumes.create_body("app1", "data", "team-1") == {
        "Name": "berth-app1-data",
        "Driver": "local",
        "Labels": {"berth.team": "team-1", "berth.app": "app1", "berth.volume": "data", "berth.managed": "true"},
    }


def test_every_server_of_a_service_gets_its_volumes():
    spec = ApplicationSpec.model_validate(
        {
            "name": "shop",
            "source": {"kind": "image", "image": "x:1"},
            "services": [
                {
                    "kind": "web",
                    "name": "web",
                    "port": 80,
                    "servers": ["s1", "s2"],
                    "volumes": [{"name": "a", "path": "/a"}],
                },
                {
                    "kind": "worker",
                    "name": "jobs",
                    "volumes": [{"name": "b", "path": "/b"}, {"name": "a", "path": "/a"}],
                },
            ],
        }
    )
    assert volumes.wanted(spec) == [
        volumes.Wanted("s1", "a"),
        volumes.Wanted("s2", "a"),
        volumes.Wanted("local", "b"),
        volumes.Wanted("local", "a"),
    ]
    assert volumes.on_server(spec, "local") == ["b", "a"]


def test_disk_usage_shows_only_the_applications_volumes_of_its_team_with_their_size():
    df = {
        "LayersSize": 1,
        "Volumes": [
            {"Name": "berth-app1-data", "Labels": {"berth.app": "app1", "berth.team": "t1", "berth.volume": "data"},
             "UsageData": {"Size": 4096, "RefCount": 1}},
            {"Name": "berth-app1-new", "Labels": {"berth.app": "app1", "berth.team": "t1", "berth.volume": "new"},
             "UsageData": {"Size": -1, "RefCount": 0}},
            {"Name": "berth-app1-x", "Labels": {"berth.app": "app1", "berth.team": "t2", "berth.volume": "x"},
             "UsageData": {"Size": 1}},
            {"Name": "other", "Labels": None, "UsageData": {"Size": 9}},
        ],
    }  # fmt: skip
    found = volumes.usage("local", df, "app1", "t1")
    assert [u.model_dump() for u in found] == [
        {"server_id": "local", "name": "data", "docker_name": "berth-app1-data", "size_bytes": 4096},
        {"server_id": "local", "name": "new", "docker_name": "berth-app1-new", "size_bytes": None},
    ]


def test_a_single_writer_volume_needs_one_replica_and_recreate():
    sw = [{"name": "db", "path": "/db", "single_writer": True}]
    with pytest.raises(ValueError, match="need strategy recreate: rolling"):
        WorkerService(name="w", volumes=sw)
    with pytest.raises(ValueError, match="one container only"):
        WorkerService(name="w", volumes=sw, strategy="recreate", replicas=2)
    ok = WorkerService(name="w", volumes=sw, strategy="recreate")
    assert ok.model_dump(mode="json")["strategy"] == "recreate"
    assert WebService(name="w", port=80, volumes=[{"name": "db", "path": "/db"}], replicas=3).replicas == 3


@pytest.mark.parametrize("path", ["relative", "/", "/a/../etc", "/a:/b", "/a//b", "/a/", "/a/./b", "/a\nb"])
def test_mount_paths_that_could_escape_or_split_are_refused(path):
    with pytest.raises(ValueError):
        WebService(name="w", port=80, volumes=[{"name": "d", "path": path}])
    with pytest.raises(ValueError):
        WebService(name="w", port=80, binds=[{"host_path": path, "path": "/x"}])


@pytest.mark.parametrize("path", ["/.berth-files", "/.berth-files/x"])
def test_the_path_where_berth_mounts_read_only_files_is_refused_to_every_mount(path):
    with pytest.raises(ValueError, match="Berth mounts read-only files there"):
        WebService(name="w", port=80, volumes=[{"name": "d", "path": path}])
    with pytest.raises(ValueError, match="Berth mounts read-only files there"):
        WebService(name="w", port=80, files=[{"source": "a.conf", "target": path}])
    assert WebService(name="w", port=80, volumes=[{"name": "d", "path": "/.berth-filesx"}])


def test_the_recreate_gap_is_reported_as_expected_downtime():
    r = machine.Rollout(
        "d2", "app1", "t1", machine.State.STARTING, False, machine.Timeouts(1, 1, 1, 1), 0.0, image="x:1"
    )
    nxt, events = machine.transition(r, machine.OldStoppedForRecreate(("web",), 1, 1), 5.0)
    assert nxt.state == machine.State.STARTING and nxt.version == r.version + 1
    (progress,) = events
    assert (progress.state, progress.step) == ("starting", "expected downtime")
    assert progress.detail == (
        "strategy recreate: the old replica(s) of web left 1 route(s) and 1 stopped before the new ones start; "
        "expected downtime until the new version is routed"
    )


# --- end to end ------------------------------------------------------------------------------------


def _docker(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *argv], capture_output=True, text=True, check=False)


def _volume(app_id: str, name: str) -> dict[str, Any] | None:
    found = _docker("volume", "inspect", volumes.docker_name(app_id, name))
    return json.loads(found.stdout)[0] if found.returncode == 0 else None


@pytest.fixture
def volume_app(app_id):
    """``app_id``; its containers, then its volumes (a volume in use cannot go) are removed afterwards."""
    yield app_id
    remove_labelled(f"berth.app={app_id}")
    names = _docker("volume", "ls", "-q", "--filter", f"label=berth.app={app_id}").stdout.split()
    if names:
        _docker("volume", "rm", "-f", *names)


def _logging(version: str, argv: list[str]) -> list[str]:
    """``argv`` run after appending ``version`` to /data/log (the volume)."""
    return ["sh", "-c", 'echo "$0" >> /data/log; exec "$@"', version, *argv]


def _app(busybox: str, version: str, host: str, *, never_healthy: bool = False, **service: Any) -> dict[str, Any]:
    spec = web_app(busybox, version, host, never_healthy=never_healthy)
    svc = spec["services"][0]
    svc["command"] = _logging(version, svc["command"])
    svc["volumes"] = [{"name": "data", "path": "/data", "size_mb": 64}]
    svc.update(service)
    return spec


def _read_log(container: str) -> list[str]:
    return _docker("exec", container, "cat", "/data/log").stdout.split()


def _running(app_id: str, deployment_id: str) -> list[str]:
    return sorted(name for name, dep in containers_of(app_id) if dep == deployment_id)


async def _succeeded(platform, spec: dict[str, Any], app_id: str) -> str:
    dep = await platform.deploy(app_id, spec)
    done = await platform.wait(dep, timeout=90)
    assert done["type"] == "evt.deployment.succeeded", done
    return dep


async def _remove(platform, app_id: str, *, delete_volumes: bool = False) -> dict[str, Any]:
    cmd = RemoveApplication(application_id=app_id, team_id=TEAM, drain_grace_s=0, delete_volumes=delete_volumes)
    await platform.api.publish(cmd, id=uuid.uuid4().hex)
    deadline = time.monotonic() + 90
    while True:
        ends = [e for e in platform.of_app(app_id) if e["type"].startswith("evt.application.remov")]
        if ends:
            assert ends[0]["type"] == "evt.application.removed", ends[0]
            return ends[0]["data"]
        assert time.monotonic() < deadline, platform.of_app(app_id)
        await asyncio.sleep(0.1)


@pytest.mark.slow
@pytest.mark.docker
async def test_a_volume_outlives_redeploy_rollback_and_scaling_and_a_removal_keeps_it(
    platform, busybox, volume_app, unique
):
    app_id = volume_app
    host = f"web-vol-{unique}.localhost"
    d1 = await _succeeded(platform, _app(busybox, "v1", host), app_id)
    made = _volume(app_id, "data")
    assert made is not None
    assert made["Labels"] == {"berth.team": TEAM, "berth.app": app_id, "berth.volume": "data", "berth.managed": "true"}
    (c1,) = _running(app_id, d1)
    assert _read_log(c1) == ["v1"]

    d2 = await _succeeded(platform, _app(busybox, "v2", host), app_id)  # redeploy
    (c2,) = _running(app_id, d2)
    assert _read_log(c2) == ["v1", "v2"]  # version 2 reads what version 1 wrote
    await wait_served(platform, host, "v2")

    d3 = await _succeeded(platform, _app(busybox, "v1", host), app_id)  # rollback to version 1's spec
    (c3,) = _running(app_id, d3)
    assert _read_log(c3) == ["v1", "v2", "v1"]
    assert _volume(app_id, "data")["CreatedAt"] == made["CreatedAt"]  # the same volume all along

    rid = uuid.uuid4().hex
    await platform.api.publish(
        ScaleApplication(application_id=app_id, team_id=TEAM, request_id=rid, services={"web": 2}), id=rid
    )
    deadline = time.monotonic() + 60
    while len(_running(app_id, d3)) < 2 or len(_read_log(c3)) < 4:
        assert time.monotonic() < deadline, (containers_of(app_id), _read_log(c3))
        await asyncio.sleep(0.2)
    added = next(c for c in _running(app_id, d3) if c != c3)
    assert _read_log(added) == ["v1", "v2", "v1", "v1"]  # the new replica mounts the same volume

    reply = await platform.api.request(
        "scheduler", "volumes", VolumesQuery(application_id=app_id, team_id=TEAM), VolumesReply, timeout=10
    )
    (usage,) = reply.volumes
    assert (usage.server_id, usage.name, usage.docker_name) == ("local", "data", f"berth-{app_id}-data")
    assert usage.size_bytes is not None and usage.size_bytes >= len("v1\nv2\nv1\nv1\n")
    other_team = await platform.api.request(
        "scheduler", "volumes", VolumesQuery(application_id=app_id, team_id="team-2"), VolumesReply, timeout=10
    )
    assert other_team.volumes == []

    removed = await _remove(platform, app_id)
    assert removed.get("volumes_removed", 0) == 0
    assert containers_of(app_id) == []
    kept = _volume(app_id, "data")
    assert kept is not None and kept["CreatedAt"] == made["CreatedAt"]  # removal keeps the volume


@pytest.mark.slow
@pytest.mark.docker
async def test_a_removal_that_asks_deletes_the_volumes(platform, busybox, volume_app, unique):
    app_id = volume_app
    spec = _app(busybox, "v1", f"web-del-{unique}.localhost")
    spec["services"][0]["volumes"].append({"name": "cache", "path": "/cache"})
    await _succeeded(platform, spec, app_id)
    assert _volume(app_id, "data") is not None and _volume(app_id, "cache") is not None
    removed = await _remove(platform, app_id, delete_volumes=True)
    assert removed["volumes_removed"] == 2
    assert _volume(app_id, "data") is None and _volume(app_id, "cache") is None


def _at(events: list[dict[str, Any]], name: str, action: str) -> int:
    return next(e["timeNano"] for e in events if e["Action"] == action and e["Actor"]["Attributes"]["name"] == name)


@pytest.mark.slow
@pytest.mark.docker
async def test_recreate_stops_the_old_replica_before_the_new_starts_and_reports_expected_downtime(
    platform, busybox, volume_app, unique
):
    app_id = volume_app
    host = f"web-rec-{unique}.localhost"
    single = {"volumes": [{"name": "data", "path": "/data", "single_writer": True}], "strategy": "recreate"}
    d1 = await _succeeded(platform, _app(busybox, "v1", host, **single), app_id)
    (old,) = _running(app_id, d1)
    await wait_served(platform, host, "v1")

    events = DockerEvents(app_id)
    d2 = await _succeeded(platform, _app(busybox, "v2", host, **single), app_id)
    seen = await asyncio.to_thread(events.stop)
    (new,) = _running(app_id, d2)
    assert _at(seen, old, "die") < _at(seen, new, "start")  # never two writers at once
    steps = platform.steps(d2)
    assert ("starting", "expected downtime") in steps
    assert steps.index(("starting", "expected downtime")) < steps.index(("draining", "new version live"))
    (downtime,) = [e for e in platform.of(d2, "evt.deployment.progressed") if e["data"]["step"] == "expected downtime"]
    assert "strategy recreate" in downtime["data"]["detail"] and "1 stopped" in downtime["data"]["detail"]
    lines = [e["data"]["line"] for e in platform.logs if e["data"]["deployment_id"] == d2]
    assert any(line.startswith("[starting] expected downtime: strategy recreate") for line in lines), lines
    await wait_served(platform, host, "v2")
    assert _read_log(new) == ["v1", "v2"]


def test_a_swarm_task_mounts_the_same_volumes_labelled_as_berths():
    from berth_scheduler.domain.swarm import service_body

    spec = _spec(volumes=[{"name": "data", "path": "/data"}], binds=[{"host_path": "/srv/x", "path": "/x"}])
    cs = container_spec("app1", "dep1", spec, spec.services[0], 1, "x:1", 30001, "team-1")
    body = service_body(cs, 1, "berth-overlay").body
    assert body["TaskTemplate"]["ContainerSpec"]["Mounts"] == [
        {
            "Type": "volume",
            "Source": "berth-app1-data",
            "Target": "/data",
            "ReadOnly": False,
            "VolumeOptions": {
                "Labels": {"berth.team": "team-1", "berth.app": "app1", "berth.volume": "data", "berth.managed": "true"}
            },
        },
        {"Type": "bind", "Source": "/srv/x", "Target": "/x", "ReadOnly": True},
    ]


@pytest.mark.slow
@pytest.mark.docker
async def test_a_failed_recreate_starts_the_old_replica_again_and_routes_it(platform, busybox, volume_app, unique):
    app_id = volume_app
    host = f"web-undo-{unique}.localhost"
    single = {"volumes": [{"name": "data", "path": "/data", "single_writer": True}], "strategy": "recreate"}
    d1 = await _succeeded(platform, _app(busybox, "v1", host, **single), app_id)
    (old,) = _running(app_id, d1)
    # never ready: it fails at its own readiness deadline (the platform's is for slow starts under load)
    never = _app(busybox, "v2", host, never_healthy=True, **single)
    d2 = await platform.deploy(app_id, never, readiness_timeout_s=8)
    failed = await platform.wait(d2, timeout=90)
    assert failed["type"] == "evt.deployment.failed", failed
    assert ("starting", "expected downtime") in platform.steps(d2)
    (end,) = [e for e in platform.of(d2, "evt.deployment.progressed") if e["data"]["state"] == "failed"]
    assert "1 old replica(s) started again and routed" in end["data"]["detail"], end
    assert _running(app_id, d2) == []
    state = _docker("inspect", "-f", "{{.State.Running}}", old).stdout.strip()
    assert state == "true"
    await wait_served(platform, host, "v1")  # the old version serves again, with its volume
    assert _read_log(old) == ["v1", "v2", "v1"]  # v2 ran after the old stopped, the old again after v2 went
