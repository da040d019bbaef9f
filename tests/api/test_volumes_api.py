"""Volumes through the api: services with named volumes, bind mounts and a strategy are stored and sent in the
deployment's snapshot; a single-writer volume with rolling or several replicas, and a bind outside the
administrator's allow-list, are 422s naming the field; a DELETE keeps the volumes unless it says
``delete_volumes=true`` and lists them; ``GET /v1/applications/{id}/volumes`` shows each volume with its
size, answered over the real bus from a real Docker volume's disk usage."""

from __future__ import annotations

import copy
import subprocess
from typing import Any

import pytest

from berth_common.catalogue import VolumesQuery, VolumesReply
from tests.api.conftest import WEB_APP, make_app
from tests.api.test_application_removal import _deployed, _team
from tests.api.test_projects import problem

ALLOWED = "/srv/berth-shared"
SINGLE = [{"name": "db", "path": "/var/lib/db", "single_writer": True}]


@pytest.fixture
def api_settings(api_settings):
    """The conftest's settings with one host path an administrator allows bind mounts under."""
    return api_settings.model_copy(update={"bind_mount_allow": [ALLOWED]})


def _body(name: str = "shop", **web: Any) -> dict:
    body = copy.deepcopy(WEB_APP)
    body["name"] = name
    body["services"][0].update(web)
    return body


def _error(r) -> dict:
    (err,) = problem(r, 422)["errors"]
    return err


async def _environment(client, headers) -> str:
    app = await make_app(client, headers, _body("probe"))
    return app["environment_id"]


async def test_volumes_binds_and_strategy_are_stored_shown_and_sent_in_the_snapshot(client, members, scheduler):
    web = {
        "replicas": 1,
        "strategy": "recreate",
        "volumes": [{"name": "data", "path": "/data", "size_mb": 512}, *SINGLE],
        "binds": [{"host_path": f"{ALLOWED}/media", "path": "/media"}],
    }
    app = await make_app(client, members.developer, _body(**web))
    (shown,) = [s for s in app["services"] if s["name"] == "web"]
    assert shown["volumes"] == web["volumes"]
    assert shown["binds"] == [{"host_path": f"{ALLOWED}/media", "path": "/media", "read_only": True}]
    assert shown["strategy"] == "recreate"
    (worker,) = [s for s in app["services"] if s["name"] == "jobs"]
    assert "volumes" not in worker and "binds" not in worker and "strategy" not in worker

    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
    assert r.status_code == 202, r.text
    (start,) = [c for c in await scheduler.wait_for("cmd.deployment.start") if c.data["application_id"] == app["id"]]
    (sent,) = [s for s in start.data["spec"]["services"] if s["name"] == "web"]
    assert sent["volumes"] == web["volumes"]
    assert sent["binds"] == [{"host_path": f"{ALLOWED}/media", "path": "/media", "read_only": True}]
    assert sent["strategy"] == "recreate"
    (jobs,) = [s for s in start.data["spec"]["services"] if s["name"] == "jobs"]
    assert set(jobs) == {"kind", "name", "replicas", "command", "health_command", "limits"}  # as before


async def test_a_single_writer_volume_with_rolling_is_refused_naming_the_strategy(client, members):
    env = await _environment(client, members.developer)
    r = await client.post(
        f"/v1/environments/{env}/applications", headers=members.developer, json=_body(replicas=1, volumes=SINGLE)
    )
    err = _error(r)
    assert err["loc"] == "/body/services/0/strategy"
    assert "need strategy recreate" in err["detail"] and "two containers would write at once" in err["detail"]
    assert "expected downtime" in err["detail"]


async def test_a_single_writer_volume_with_two_replicas_is_refused_naming_the_replicas(client, members):
    env = await _environment(client, members.developer)
    body = _body(replicas=2, volumes=SINGLE, strategy="recreate")
    err = _error(await client.post(f"/v1/environments/{env}/applications", headers=members.developer, json=body))
    assert err["loc"] == "/body/services/0/replicas"
    assert "one container only: run 1 replica with strategy recreate" in err["detail"]


async def test_a_patch_that_adds_a_single_writer_volume_to_a_rolling_service_is_refused(client, members):
    app = await make_app(client, members.developer, _body(replicas=1))
    services = copy.deepcopy(app["services"])
    for svc in services:
        svc.pop("hosts", None)
    services[0]["volumes"] = SINGLE
    r = await client.patch(f"/v1/applications/{app['id']}", headers=members.developer, json={"services": services})
    assert _error(r)["loc"] == "/body/services/0/strategy"


ALLOW_LOC = "/body/services/0/binds/0/host_path"  # the api's allow-list
GRAMMAR_LOC = "/body/services/0/web/binds/0/host_path"  # the body's schema (its pointer names the kind)


@pytest.mark.parametrize(
    ("host_path", "loc", "why"),
    [
        ("/etc", ALLOW_LOC, "allowed only under"),
        ("/srv/berth-shared-not", ALLOW_LOC, "allowed only under"),
        ("/srv/berth-shared/../x", GRAMMAR_LOC, ".."),
    ],
)
async def test_a_bind_outside_the_allow_list_is_refused(client, members, host_path, loc, why):
    env = await _environment(client, members.developer)
    body = _body(binds=[{"host_path": host_path, "path": "/mnt"}])
    err = _error(await client.post(f"/v1/environments/{env}/applications", headers=members.developer, json=body))
    assert err["loc"] == loc
    assert why in err["detail"]


@pytest.mark.parametrize("path", ["data", "/", "/a/../b", "/a:b"])
async def test_a_mount_path_that_is_not_a_clean_absolute_path_is_refused(client, members, path):
    env = await _environment(client, members.developer)
    body = _body(volumes=[{"name": "data", "path": path}])
    err = _error(await client.post(f"/v1/environments/{env}/applications", headers=members.developer, json=body))
    assert err["loc"] == "/body/services/0/web/volumes/0/path"


async def test_scaling_a_single_writer_service_above_one_replica_is_refused(client, members, scheduler):
    app = await _deployed(client, members, scheduler, "solo")
    services = [{k: v for k, v in s.items() if k != "hosts"} for s in app["services"]]
    services[0].update(replicas=1, volumes=SINGLE, strategy="recreate")
    r = await client.patch(f"/v1/applications/{app['id']}", headers=members.developer, json={"services": services})
    assert r.status_code == 200, r.text
    r = await client.post(
        f"/v1/applications/{app['id']}/scale", headers=members.developer, json={"services": {"web": 2}}
    )
    err = _error(r)
    assert err["loc"] == "/body/services/web" and "one container only" in err["detail"]


async def _with_volumes(client, members, scheduler, name: str) -> dict:
    app = await _deployed(client, members, scheduler, name)
    services = [{k: v for k, v in s.items() if k != "hosts"} for s in app["services"]]
    services[0]["volumes"] = [{"name": "data", "path": "/data"}]
    services[1]["volumes"] = [{"name": "data", "path": "/data"}, {"name": "spool", "path": "/spool"}]
    r = await client.patch(f"/v1/applications/{app['id']}", headers=members.developer, json={"services": services})
    assert r.status_code == 200, r.text
    return app


async def test_delete_keeps_the_volumes_and_lists_them(client, members, scheduler):
    app = await _with_volumes(client, members, scheduler, "keep")
    r = await client.delete(f"/v1/applications/{app['id']}", headers=members.admin)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["volumes_kept"] == [
        {"server_id": "local", "name": "data", "docker_name": f"berth-{app['id']}-data"},
        {"server_id": "local", "name": "spool", "docker_name": f"berth-{app['id']}-spool"},
    ]
    assert body["volumes_deleted"] == []
    (cmd,) = [c for c in await scheduler.wait_for("cmd.application.remove") if c.data["application_id"] == app["id"]]
    assert "delete_volumes" not in cmd.data  # kept: nothing asks the scheduler to delete them


async def test_delete_with_delete_volumes_asks_the_scheduler_to_delete_them(client, members, scheduler):
    app = await _with_volumes(client, members, scheduler, "drop")
    r = await client.delete(f"/v1/applications/{app['id']}", headers=members.admin, params={"delete_volumes": "true"})
    assert r.status_code == 202, r.text
    assert r.json()["volumes_kept"] == []
    assert [v["name"] for v in r.json()["volumes_deleted"]] == ["data", "spool"]
    (cmd,) = [c for c in await scheduler.wait_for("cmd.application.remove") if c.data["application_id"] == app["id"]]
    assert cmd.data["delete_volumes"] is True


def _docker(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *argv], capture_output=True, text=True, check=False)


@pytest.fixture
def real_volume(unique):
    """A Docker volume holding 3000 bytes, labelled as Berth labels an application's volume; removed after."""
    from tests.scheduler.images import busybox_image

    made: list[str] = []

    def make(app_id: str, team_id: str) -> str:
        name = f"berth-{app_id}-data"
        labels = ["--label", f"berth.app={app_id}", "--label", f"berth.team={team_id}", "--label", "berth.volume=data"]
        assert _docker("volume", "create", *labels, name).returncode == 0
        made.append(name)
        fill = ["run", "--rm", "-v", f"{name}:/data", busybox_image(), "sh", "-c", "head -c 3000 /dev/zero > /data/f"]
        assert _docker(*fill).returncode == 0
        return name

    yield make
    if made:
        _docker("volume", "rm", "-f", *made)


@pytest.mark.docker
async def test_volumes_are_listed_with_their_size_from_the_engine(client, members, scheduler, real_volume):
    from berth_common.docker import DockerEngines, local_engine
    from berth_scheduler.adapters.docker import DockerExecutor
    from berth_scheduler.domain import volumes

    app = await _with_volumes(client, members, scheduler, "sized")
    team = await _team(client, members.developer)
    docker_name = real_volume(app["id"], team)
    asked: list[dict[str, Any]] = []
    engine = DockerExecutor(DockerEngines(local_engine(None)))

    async def answer(data: dict[str, Any]) -> VolumesReply:
        """The scheduler's answer, from the engine's disk usage (as ``rpc.scheduler.volumes`` reads it)."""
        query = VolumesQuery.model_validate(data)
        asked.append(data)
        found = volumes.usage("local", await engine.volume_usage(), query.application_id, query.team_id)
        return VolumesReply(application_id=query.application_id, volumes=found)

    await scheduler.bus.serve("volumes", answer)
    try:
        r = await client.get(f"/v1/applications/{app['id']}/volumes", headers=members.viewer)
        assert r.status_code == 200, r.text
        assert r.json()["available"] is True
        (vol,) = r.json()["volumes"]
        assert vol == {
            "server_id": "local",
            "name": "data",
            "docker_name": docker_name,
            "size_bytes": vol["size_bytes"],
            "path": "/data",
            "size_mb": None,
        }
        assert vol["size_bytes"] >= 3000
        assert asked == [{"application_id": app["id"], "team_id": team}]
        other = await client.get(f"/v1/applications/{app['id']}/volumes", headers=members.other)
        assert other.status_code == 404
    finally:
        await engine.engines.close()


async def test_volumes_without_a_scheduler_answer_say_so(client, members, scheduler):
    app = await make_app(client, members.developer, _body("lonely"))
    r = await client.get(f"/v1/applications/{app['id']}/volumes", headers=members.viewer)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["available"], body["volumes"]) == (False, [])
    assert body["error"].startswith("the scheduler did not answer")
