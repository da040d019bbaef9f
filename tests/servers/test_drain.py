"""Removing and draining a server through the REST API: a server is removed only when nothing is placed on it
(409 naming the applications); draining it marks it ``draining`` (announced in ``evt.server.changed``),
refuses it as a new placement, and starts a deployment of each application placed on it with the server
replaced, rolled out by the real scheduler on the local engine; once they succeeded, it is removed.

The applications' initial placement is written into their desired state (``config.services[].servers``)
the way the api stores it, and their first deployment is played by the scheduler double (it names a server
no engine stands behind); the drain's deployments are the real scheduler's."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from berth_api.domain.placements import KeptVolume, Placed, drained_config, placed_on, replaced, volumes_on
from berth_cli.components import free_port
from berth_common.bus.streams import CMD_STREAM
from berth_common.db.provision import provision
from berth_scheduler.settings import SchedulerSettings
from tests.api.conftest import Identities, bearer, make_app
from tests.api.scheduler_double import SUBJECTS, SchedulerDouble, durable
from tests.scheduler.platform import Scheduler
from tests.support.bus_helpers import Collector
from tests.support.fleet_platform import api_on, other_team_admin
from tests.support.images import busybox_image

SECRET = "test-secret"


def test_a_drained_server_is_replaced_where_it_stood() -> None:
    assert replaced(["a", "b"], "a", ["c"]) == ["c", "b"]
    assert replaced(["a", "b"], "a", []) == ["b"]  # the service's other servers
    assert replaced(["a"], "a", []) == ["local"]  # none left: the control plane
    assert replaced(["a", "b"], "a", ["b", "a"]) == ["b"]  # never twice, never the drained one
    assert replaced(["b"], "a", ["c"]) == ["b"]  # not placed there: unchanged
    config = {"source": {}, "services": [{"name": "web", "servers": ["a"]}, {"name": "jobs"}]}
    assert drained_config(config, "a", ["c"])["services"] == [{"name": "web", "servers": ["c"]}, {"name": "jobs"}]


def test_the_volumes_a_drained_server_keeps_are_those_its_services_mount_there() -> None:
    config = {
        "services": [
            {"name": "web", "servers": ["a", "b"], "volumes": [{"name": "data"}, {"name": "cache"}]},
            {"name": "jobs", "servers": ["a"], "volumes": [{"name": "data"}]},
            {"name": "api", "servers": ["b"], "volumes": [{"name": "uploads"}]},
            {"name": "cron", "servers": ["a"]},
        ]
    }
    assert volumes_on("app1", "shop", config, "a") == [
        KeptVolume("app1", "shop", "data", "berth-app1-data"),
        KeptVolume("app1", "shop", "cache", "berth-app1-cache"),
    ]
    assert volumes_on("app1", "shop", config, "c") == []


def test_a_server_is_in_use_by_the_desired_state_a_running_or_the_live_deployment() -> None:
    apps = [
        {"id": "1", "name": "shop", "config": {"services": [{"name": "web", "servers": ["a"]}]}},
        {"id": "2", "name": "blog", "config": {"services": [{"name": "web", "servers": ["local"]}]}},
        {"id": "3", "name": "wiki", "config": {"services": [{"name": "web"}]}},
    ]
    snapshots = {"2": [{"services": [{"name": "web", "servers": ["a"]}, {"name": "jobs", "servers": ["a"]}]}]}
    assert placed_on("a", apps, snapshots) == [Placed("2", "blog", ("jobs", "web")), Placed("1", "shop", ("web",))]
    assert placed_on("b", apps, snapshots) == []


@pytest.fixture
async def platform(nats_server: Any, database: str, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    urls = await provision(database, SECRET)
    api = await api_on(nats_server.url, urls["api"], tmp_path / "data", SECRET)
    ids = Identities(urls["api"])
    other = await other_team_admin(ids)
    try:
        async with httpx.AsyncClient(base_url=api.url, timeout=10) as client:
            yield {
                "client": client,
                "admin": bearer(api.admin_token()),
                "other": other,
                "db": urls["api"].replace("+asyncpg", ""),
                "scheduler_db": urls["scheduler"],
                "nats": nats_server.url,
            }
    finally:
        await ids.close()
        await api.shutdown()


async def _placement(db: str, app_id: str) -> list[Any]:
    """Each service's servers in the application's desired state."""
    conn = await asyncpg.connect(db)
    try:
        config = json.loads(await conn.fetchval("SELECT config FROM api.applications WHERE id = $1", app_id))
    finally:
        await conn.close()
    return [service.get("servers") for service in config["services"]]


async def _deployment(
    client: httpx.AsyncClient, headers: dict, dep: str, states: tuple[str, ...], timeout: float
) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = (await client.get(f"/v1/deployments/{dep}", headers=headers)).json()
        if body["state"] in states:
            return body
        assert time.monotonic() < deadline, f"deployment still {body['state']}: {body.get('detail')}"
        await asyncio.sleep(0.3)


async def _announced(announced: Collector, server_id: str, state: str) -> dict[str, Any] | None:
    found = [
        b["data"] for b, _ in announced.items if b["data"]["server_id"] == server_id and b["data"]["state"] == state
    ]
    return found[-1] if found else None


async def _eventually(check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := await check()):
        assert time.monotonic() < deadline, "not within the time"
        await asyncio.sleep(0.3)
    return result


@pytest.mark.slow
async def test_a_server_is_drained_onto_other_servers_then_removed(platform: dict[str, Any]) -> None:
    client, admin, db = platform["client"], platform["admin"], platform["db"]
    announced = await Collector().start(platform["nats"], "evt.server.changed")
    worker = {"kind": "worker", "name": "jobs", "command": ["sleep", "3600"]}
    source = {"kind": "image", "image": busybox_image(), "pull_policy": "if-missing"}

    servers = {}
    for name in ("edge-a", "edge-b"):  # nothing answers at these addresses: placements are all that matters
        r = await client.post(
            "/v1/servers", headers=admin, json={"name": name, "host": "127.0.0.1", "port": free_port()}
        )
        assert r.status_code == 201, r.text
        servers[name] = r.json()["id"]
    a, b = servers["edge-a"], servers["edge-b"]

    shop = await make_app(client, admin, {"name": "shop", "source": source, "services": [{**worker, "servers": [a]}]})
    wiki = await make_app(
        client, admin, {"name": "wiki", "source": source, "services": [{**worker, "servers": ["edge-b"]}]}
    )
    assert await _placement(db, shop["id"]) == [[a]] and await _placement(db, wiki["id"]) == [[b]]  # names -> ids

    # the first deployments, played by the double: their snapshots place the services on the servers
    double = await SchedulerDouble(platform["nats"]).start()
    try:
        for app in (shop, wiki):
            r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=admin, json={})
            assert r.status_code == 202, r.text
            (start,) = [c for c in await double.wait_for("cmd.deployment.start", 2 if app is wiki else 1)
                        if c.data["application_id"] == app["id"]]  # fmt: skip
            assert start.data["spec"]["services"][0]["servers"] == ([a] if app is shop else [b])
            await double.run_to_success(start)
            await _deployment(client, admin, r.json()["id"], ("succeeded",), 20)
    finally:
        for subject in SUBJECTS:  # the real scheduler takes the work queue from here on
            await double.bus.js.delete_consumer(CMD_STREAM, durable(subject))
        await double.stop()

    shown = (await client.get(f"/v1/servers/{a}", headers=admin)).json()
    assert shown["placed"] == [{"application_id": shop["id"], "name": "shop", "services": ["jobs"]}]
    r = await client.delete(f"/v1/servers/{a}", headers=admin)
    assert r.status_code == 409, r.text
    assert "shop (jobs)" in r.json()["detail"] and "wiki" not in r.json()["detail"]
    assert (await client.delete(f"/v1/servers/{a}", headers=platform["other"])).status_code == 404
    assert (await client.post(f"/v1/servers/{a}/drain", headers=platform["other"])).status_code == 404

    scheduler = await Scheduler(
        SchedulerSettings(
            nats_url=platform["nats"],
            database_url=platform["scheduler_db"],
            secret_key=SECRET,
            http_port=0,
            ssh_timeout_s=2,
            readiness_timeout_s=30,
            readiness_interval_s=0.1,
            worker_settle_s=0.5,
            drain_grace_s=0.5,
        )
    ).start()
    try:
        # a target that is not a server of the team, or the drained one itself: refused, nothing changes
        bad = await client.post(f"/v1/servers/{a}/drain", headers=admin, json={"to": ["nowhere"]})
        assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == "/body/to/0", bad.text
        bad = await client.post(f"/v1/servers/{a}/drain", headers=admin, json={"to": ["local", "local", "edge-a"]})
        assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == "/body/to/2", bad.text
        assert (await client.get(f"/v1/servers/{a}", headers=admin)).json()["state"] != "draining"
        assert (await client.post("/v1/servers/local/drain", headers=admin)).status_code == 409

        r = await client.post(f"/v1/servers/{a}/drain", headers=admin)
        assert r.status_code == 202, r.text
        drained = r.json()
        assert drained["state"] == "draining" and len(drained["deployments"]) == 1
        assert drained["volumes_kept"] == []  # the worker mounts no volume
        (dep,) = drained["deployments"]
        assert drained["placed"][0]["name"] == "shop"  # its live deployment still runs there
        change = await _eventually(lambda: _announced(announced, a, "draining"), 10)
        assert change["revision"] > 1

        # nothing new is placed on a draining server
        bad = await client.post(f"/v1/servers/{b}/drain", headers=admin, json={"to": ["edge-a"]})
        assert bad.status_code == 422 and "being drained" in bad.json()["errors"][0]["detail"], bad.text
        services = [{**worker, "servers": ["edge-b", "edge-a"]}]
        bad = await client.patch(f"/v1/applications/{wiki['id']}", headers=admin, json={"services": services})
        assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == "/body/services/0/servers/1", bad.text
        assert (await client.get(f"/v1/servers/{b}", headers=admin)).json()["state"] != "draining"

        moved = await client.get(f"/v1/deployments/{dep}", headers=admin)
        assert moved.json()["application_id"] == shop["id"]
        assert moved.json()["spec"]["services"][0]["servers"] == ["local"]  # no other server: the control plane
        assert await _placement(db, shop["id"]) == [["local"]]  # the desired state follows
        assert await _placement(db, wiki["id"]) == [[b]]

        done = await _deployment(client, admin, dep, ("succeeded", "failed", "cancelled"), 90)
        assert done["state"] == "succeeded", done

        async def nothing_placed() -> bool:
            body = (await client.get(f"/v1/servers/{a}", headers=admin)).json()
            return body["placed"] == [] and body["state"] == "draining"

        await _eventually(nothing_placed, 10)
        r = await client.delete(f"/v1/servers/{a}", headers=admin)
        assert r.status_code == 204, r.text
        assert (await client.get(f"/v1/servers/{a}", headers=admin)).status_code == 404
        await _eventually(lambda: _announced(announced, a, "removed"), 10)
        # the other server keeps its application
        assert (await client.delete(f"/v1/servers/{b}", headers=admin)).status_code == 409

        r = await client.delete(f"/v1/applications/{shop['id']}", headers=admin)  # its containers go
        assert r.status_code in (202, 204), r.text

        async def gone() -> bool:
            return (await client.get(f"/v1/applications/{shop['id']}", headers=admin)).status_code == 404

        await _eventually(gone, 60)
    finally:
        await scheduler.stop()
        await announced.close()
