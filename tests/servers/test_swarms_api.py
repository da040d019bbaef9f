"""Swarms through the REST API, formed by the real scheduler over SSH on three namespace servers: made of the
team's servers (a manager and two workers), its nodes shown; forming again gives the same Swarm; forgotten,
it keeps running and is adopted back; dissolved on request. The join token is never in an answer, an event,
a log line, or the scheduler's row in clear."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import async_sessionmaker

from berth_api.settings import ApiSettings
from berth_cli.components import free_port
from berth_common import sealing
from berth_common.db import make_engine
from berth_common.db.provision import provision
from berth_scheduler.domain import swarm_overlay
from berth_scheduler.settings import SchedulerSettings
from berth_scheduler.usecases import swarm_placement
from tests.api.conftest import Identities, bearer, start_api
from tests.scheduler.platform import Scheduler
from tests.support.bus_helpers import Collector
from tests.support.images import busybox_image
from tests.support.testservers import TestServer, running_servers

pytestmark = pytest.mark.slow
SECRET = "test-secret"


@pytest.fixture(scope="module")
def three() -> Iterator[list[TestServer]]:
    with running_servers(3) as servers:
        yield servers


@pytest.fixture
async def platform(nats_server, database, tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, dict, dict, str]]:
    urls = await provision(database, SECRET)
    settings = ApiSettings(
        nats_url=nats_server.url,
        database_url=urls["api"],
        http_port=free_port(),
        data_dir=tmp_path / "data",
        secret_key=SECRET,
        shutdown_grace_s=10,
    )
    api = await start_api(settings)
    scheduler = await Scheduler(
        SchedulerSettings(
            nats_url=nats_server.url, database_url=urls["scheduler"], secret_key=SECRET, http_port=0, ssh_timeout_s=5
        )
    ).start()
    ids = Identities(urls["api"])
    other_user = await ids.member("boss@other.example", "admin", team="other")
    other, _ = await ids.token(other_user, team="other")
    viewer_user = await ids.member("view@example.com", "viewer")
    viewer, _ = await ids.token(viewer_user)
    try:
        async with httpx.AsyncClient(base_url=api.url, timeout=10) as client:
            yield (
                client,
                bearer(api.admin_token()),
                {"other": bearer(other), "viewer": bearer(viewer)},
                urls["scheduler"],
            )
    finally:
        await ids.close()
        await scheduler.stop()
        await api.shutdown()


async def _until(
    client: httpx.AsyncClient, headers: dict, path: str, key: str, values: tuple, timeout: float = 90
) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = (await client.get(path, headers=headers)).json()
        if body[key] in values:
            return body
        assert time.monotonic() < deadline, f"{path}: {body}"
        await asyncio.sleep(0.3)


async def _add_server(client: httpx.AsyncClient, admin: dict, server: TestServer) -> str:
    r = await client.post(
        "/v1/servers",
        headers=admin,
        json={
            "name": server.name.replace("_", "-")[-30:].strip("-"),
            "host": server.address,
            "private_key": server.private_key_pem,
        },
    )
    assert r.status_code == 201, r.text
    ready = await _until(client, admin, f"/v1/servers/{r.json()['id']}", "state", ("ready", "unreachable", "invalid"))
    assert ready["state"] == "ready", ready
    return str(ready["id"])


async def _team_of(session, server_id: str) -> str:  # type: ignore[no-untyped-def]
    return str(
        (await session.execute(sa.text("SELECT team_id FROM servers WHERE id = :i"), {"i": server_id})).scalar_one()
    )


def _swarm_state(server: TestServer) -> tuple[str, str]:
    info = json.loads(server.docker("info", "--format", "{{json .Swarm}}"))
    return info["LocalNodeState"], (info.get("Cluster") or {}).get("ID", "")


async def test_a_swarm_is_formed_shown_adopted_and_dissolved(platform, three, nats_server, capfd) -> None:
    client, admin, others, scheduler_db = platform
    events = await Collector().start(nats_server.url, "evt.swarm.>")
    commands = await Collector().start(nats_server.url, "cmd.swarm.>")
    manager, *workers = three
    manager_id, *worker_ids = [await _add_server(client, admin, s) for s in three]

    # bad requests: a server the team does not have, one named twice, a viewer
    r = await client.post("/v1/swarms", headers=admin, json={"name": "x", "manager_server_id": "0" * 32})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == "/body/manager_server_id"
    r = await client.post(
        "/v1/swarms",
        headers=admin,
        json={"name": "x", "manager_server_id": manager_id, "worker_server_ids": [manager_id]},
    )
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == "/body/worker_server_ids/0"
    body = {"name": "edge", "manager_server_id": manager_id, "worker_server_ids": worker_ids}
    assert (await client.post("/v1/swarms", headers=others["viewer"], json=body)).status_code == 403
    # adopting a manager that is in no Swarm: failed, with what to do
    r = await client.post(
        "/v1/swarms", headers=admin, json={"name": "nothing", "manager_server_id": manager_id, "adopt": True}
    )
    assert r.status_code == 201, r.text
    failed = await _until(client, admin, f"/v1/swarms/{r.json()['id']}", "state", ("ready", "failed"))
    assert failed["state"] == "failed" and "not in a Swarm" in failed["reason"], failed
    assert (await client.delete(f"/v1/swarms/{failed['id']}", headers=admin)).status_code == 204
    # a server not validated (no host key pinned): failed, naming it
    r = await client.post("/v1/servers", headers=admin, json={"name": "unvalidated", "host": "192.0.2.30"})
    unvalidated = r.json()["id"]
    r = await client.post("/v1/swarms", headers=admin, json={"name": "early", "manager_server_id": unvalidated})
    early = await _until(client, admin, f"/v1/swarms/{r.json()['id']}", "state", ("ready", "failed"))
    assert early["state"] == "failed" and "unvalidated" in early["reason"], early
    assert (await client.delete(f"/v1/swarms/{early['id']}", headers=admin)).status_code == 204

    r = await client.post("/v1/swarms", headers=admin, json=body)
    assert r.status_code == 201, r.text
    assert r.json()["state"] == "forming" and r.json()["network"] == "berth"
    swarm_id = r.json()["id"]
    ready = await _until(client, admin, f"/v1/swarms/{swarm_id}", "state", ("ready", "failed"))
    assert ready["state"] == "ready", ready
    nodes = ready["nodes"]
    assert [n["role"] for n in nodes] == ["manager", "worker", "worker"]
    assert {n["server_id"] for n in nodes} == {manager_id, *worker_ids}
    assert {n["address"] for n in nodes} == {s.address for s in three}
    assert all(n["state"] == "ready" and n["availability"] == "active" for n in nodes)
    cluster = ready["cluster_id"]
    assert _swarm_state(manager) == ("active", cluster)
    assert all(_swarm_state(w)[0] == "active" for w in workers)  # a worker's own view names no cluster
    overlay = json.loads(manager.docker("network", "inspect", "berth"))[0]
    assert overlay["Driver"] == "overlay" and overlay["Attachable"] is True
    token = manager.docker("swarm", "join-token", "-q", "worker").strip()
    assert token.startswith("SWMTKN-1-")

    # a service placed on the manager runs on this Swarm; the readiness check reaches each node over SSH
    engine = make_engine(scheduler_db, "scheduler")
    try:
        async with async_sessionmaker(engine)() as s:
            team_id = await _team_of(s, manager_id)
            place = await swarm_placement.swarm_of(s, team_id, [manager_id])
            assert place is not None and place.swarm_id == swarm_id and place.network == "berth"
            assert place.manager_server_id == manager_id and len(place.nodes) == 3
            assert await swarm_placement.swarm_of(s, team_id, [worker_ids[0]]) is None
            assert await swarm_placement.swarm_of(s, team_id, [manager_id, worker_ids[0]]) is None
            assert await swarm_placement.swarm_of(s, "another-team", [manager_id]) is None
            targets = await swarm_placement.node_targets(s, place)
            assert {server_id for server_id, _ in targets.values()} == {manager_id, *worker_ids}
            assert {t.host for _, t in targets.values()} == {srv.address for srv in three}
    finally:
        await engine.dispose()

    # seen by the team only; a server is in one Swarm at a time
    assert (await client.get(f"/v1/swarms/{swarm_id}", headers=others["viewer"])).status_code == 200
    assert (await client.get(f"/v1/swarms/{swarm_id}", headers=others["other"])).status_code == 404
    assert (await client.get("/v1/swarms", headers=others["other"])).json() == []
    again = await client.post("/v1/swarms", headers=admin, json={**body, "name": "edge-2"})
    assert again.status_code == 409
    assert (await client.post("/v1/swarms", headers=admin, json=body)).status_code == 409  # the name

    # forming again (a retry, a restart): the same Swarm, the same nodes
    r = await client.post(f"/v1/swarms/{swarm_id}/form", headers=admin)
    assert r.status_code == 202 and r.json()["state"] == "forming"
    reformed = await _until(client, admin, f"/v1/swarms/{swarm_id}", "state", ("ready", "failed"))
    assert reformed["state"] == "ready" and reformed["cluster_id"] == cluster
    assert sorted(n["node_id"] for n in reformed["nodes"]) == sorted(n["node_id"] for n in nodes)

    # forgotten: it keeps running; adopted back through its manager, the same Swarm
    assert (await client.delete(f"/v1/swarms/{swarm_id}", headers=admin)).status_code == 204
    assert (await client.get(f"/v1/swarms/{swarm_id}", headers=admin)).status_code == 404
    assert _swarm_state(manager) == ("active", cluster)
    r = await client.post(
        "/v1/swarms", headers=admin, json={"name": "adopted", "manager_server_id": manager_id, "adopt": True}
    )
    adopted = await _until(client, admin, f"/v1/swarms/{r.json()['id']}", "state", ("ready", "failed"))
    assert adopted["state"] == "ready" and adopted["cluster_id"] == cluster and len(adopted["nodes"]) == 3
    assert {n["server_id"] for n in adopted["nodes"]} == {manager_id, None}  # workers it was not told about

    # the token: sealed in the scheduler's row, never in an answer, an event or a log line
    engine = make_engine(scheduler_db, "scheduler")
    try:
        async with engine.connect() as conn:
            stored = (await conn.execute(sa.text("SELECT worker_token FROM swarms"))).scalars().all()
    finally:
        await engine.dispose()
    assert stored and all(sealing.is_sealed(v) and token not in v for v in stored)
    everything = (await client.get("/v1/swarms", headers=admin)).text
    assert token not in everything and "SWMTKN" not in everything
    await events.close()
    await commands.close()
    sent = json.dumps([b for b, _ in events.items + commands.items])
    assert "evt.swarm.formed" in sent and "evt.swarm.failed" in sent
    assert token not in sent and "SWMTKN" not in sent
    logs = capfd.readouterr()
    assert token not in logs.out + logs.err and "SWMTKN" not in logs.out + logs.err

    # dissolved on request: the nodes Berth knows leave it (here the manager: the workers were not named); the
    # overlay probe the readiness checks used on the manager goes first (another container stays)
    manager.load_image(busybox_image())
    probe = swarm_overlay.probe_name("berth")
    for name, labels in ((probe, [f"{swarm_overlay.PROBE_LABEL}=berth"]), ("not-a-probe", [])):
        manager.docker("run", "-d", "--name", name, *(f"--label={x}" for x in labels), busybox_image(), "sleep", "600")
    r = await client.delete(f"/v1/swarms/{adopted['id']}?dissolve=true", headers=admin)
    assert r.status_code == 204
    deadline = time.monotonic() + 60
    while _swarm_state(manager)[0] != "inactive":
        assert time.monotonic() < deadline, "the manager is still in the Swarm"
        await asyncio.sleep(0.5)
    left = manager.docker("ps", "-a", "--format", "{{.Names}}").split()
    assert probe not in left and "not-a-probe" in left, left
    manager.docker("rm", "-f", "not-a-probe")
