# ruff: noqa: F811 (the rig and its servers are test_volume_move's fixtures, imported by name)
"""A drain moves only what leaves the drained server, end to end: the api, the real scheduler and proxy-sync,
two namespace test servers (A, B) and the control plane's own engine (``local``, C) with its Traefik.

- An app with a named volume on [A, local] drained from A to B: the data of A's volume goes to B and B serves
  it; local's replica (its own volume, its own note) answers every request through local's Traefik during
  the whole move: only A's part pays the downtime. An app without volumes (``rolling``) on the same servers
  answers every request too. Both keep local's replica untouched (the same container: the drain changes
  only the placement), only A's is replaced by one on B. An app on [A, B, local] keeps B's and local's
  replicas (renumbered 1 and 2 in the new deployment) and makes no container at all.
- A compose TCP echo service publishing a port (issue 14), placed on A: A's address echoes on that port, B's
  and the control plane's do not; a second application asking the port on A is a 409 naming the field; placed
  on B it echoes on B's address and A's port is closed (and free for another application); once the
  application is removed the port is closed everywhere.
- Server B stops answering (the machine dies) and is drained: an app without volumes starts on local (its
  route there; the dead server's cleanup skipped with a note in the deployment's log); an app with a named
  volume (``strategy: recreate``) fails, the reason naming the volume and the server; drained again with
  ``abandon_volume_data`` it starts on local with an empty volume, the log saying so; then the dead server
  is removed."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import socket
import subprocess
import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa

from berth_cli.components import free_port
from berth_common.catalogue import ReplicasQuery, ReplicasReply
from tests.api.conftest import make_app
from tests.servers.test_volume_move import _add_servers, _deployed, _served, _service, rig, servers  # noqa: F401
from tests.support.images import busybox_image

pytestmark = pytest.mark.slow


def _get(port: int, host: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    try:
        conn.request("GET", "/note", headers={"Host": host})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace").strip()
    except Exception as exc:
        return -1, str(exc)
    finally:
        conn.close()


class LocalPoller:
    """GET /note through local's Traefik from a thread, as fast as it answers: (status, body) each."""

    def __init__(self, port: int, host: str) -> None:
        self.port, self.host = port, host
        self.seen: list[tuple[int, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.seen.append(_get(self.port, self.host))
            time.sleep(0.01)

    def start(self) -> LocalPoller:
        self._thread.start()
        return self

    def stop(self) -> list[tuple[int, str]]:
        self._stop.set()
        self._thread.join(10)
        return self.seen


async def _served_locally(port: int, host: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while (got := await asyncio.to_thread(_get, port, host))[0] != 200:
        assert time.monotonic() < deadline, got
        await asyncio.sleep(0.1)
    return got[1]


@pytest.fixture
def local_apps() -> Any:
    """The applications whose containers and volumes the control plane's engine holds: removed at the end."""
    ids: list[str] = []
    yield ids
    for app_id in ids:
        with contextlib.suppress(Exception):
            found = subprocess.run(
                ["docker", "ps", "-aq", "--filter", f"label=berth.app={app_id}"], capture_output=True, text=True
            ).stdout.split()
            if found:
                subprocess.run(["docker", "rm", "-f", *found], capture_output=True)
            subprocess.run(["docker", "volume", "rm", "-f", f"berth-{app_id}-data"], capture_output=True)


def _containers(app_id: str) -> list[str]:
    """The ids of the application's running containers in the control plane's engine."""
    found = subprocess.run(
        ["docker", "ps", "-q", "--no-trunc", "--filter", f"label=berth.app={app_id}"], capture_output=True, text=True
    )
    return sorted(found.stdout.split())


def _started_at(container: str) -> str:
    found = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.StartedAt}}", container], capture_output=True, text=True, check=True
    )
    return found.stdout.strip()


def _lines(platform: Any, dep: str) -> list[str]:
    return [e["data"]["line"] for e in platform.logs if e["data"]["deployment_id"] == dep]


async def _deploy(
    client: Any, admin: dict, name: str, services: list[dict[str, Any]], local: list[str]
) -> tuple[dict, dict]:
    source = {"kind": "image", "image": busybox_image()}
    app = await make_app(client, admin, {"name": name, "source": source, "services": services})
    local.append(app["id"])
    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=admin, json={})
    assert r.status_code == 202, r.text
    done = await _deployed(client, admin, r.json()["id"])
    assert done["state"] == "succeeded", done
    return app, done


async def test_a_drain_moves_only_the_part_on_the_drained_server(rig, servers, local_apps) -> None:
    client, admin, platform = rig["client"], rig["admin"], rig["platform"]
    a, b = servers
    a_id, b_id = await _add_servers(client, admin, servers)
    web = {**_service("edge-a", 1), "servers": ["edge-a", "local"], "replicas": 2}
    app, first = await _deploy(client, admin, "notes", [web], local_apps)
    host = first["spec"]["services"][0]["hosts"][0]
    port = platform.traefik.web_port
    # and one without volumes (the rolling strategy), on the same servers, drained with it
    plain = {"kind": "web", "name": "web", "port": 8080, "health_path": "/note", "replicas": 2}
    plain["command"] = ["sh", "-c", "mkdir -p /w; echo plain > /w/note; exec httpd -f -p 8080 -h /w"]
    _, rolling = await _deploy(client, admin, "plain", [{**plain, "servers": ["edge-a", "local"]}], local_apps)
    rolling_host = rolling["spec"]["services"][0]["hosts"][0]
    assert await _served_locally(port, rolling_host) == "plain"
    # and one on A, B and local: its replicas on B and local (numbers 2 and 3) become numbers 1 and 2
    spread, spread_first = await _deploy(
        client, admin, "spread", [{**plain, "replicas": 1, "servers": ["edge-a", "edge-b", "local"]}], local_apps
    )
    spread_host = spread_first["spec"]["services"][0]["hosts"][0]
    on_b = b.docker("ps", "-q", "--no-trunc", "--filter", f"label=berth.app={spread['id']}").split()
    assert len(on_b) == 1, on_b
    note_a = await _served(a.address, host)
    note_local = await _served_locally(port, host)
    assert note_a.startswith("written on ") and note_local.startswith("written on ") and note_a != note_local

    on_local = {app_id: _containers(app_id) for app_id in local_apps}
    assert all(len(ids) == 1 for ids in on_local.values()), on_local
    on_local_started = {c: _started_at(c) for (c,) in on_local.values()}

    poller, rolled = LocalPoller(port, host).start(), LocalPoller(port, rolling_host).start()
    spread_seen = LocalPoller(port, spread_host).start()
    try:
        r = await client.post(f"/v1/servers/{a_id}/drain", headers=admin, json={"to": ["edge-b"]})
        assert r.status_code == 202, r.text
        deps = r.json()["deployments"]
        assert len(deps) == 3, r.json()
        ended = [await _deployed(client, admin, d) for d in deps]
        assert all(d["state"] == "succeeded" for d in ended), [(d["state"], d.get("reason")) for d in ended]
        (dep,) = [d["id"] for d in ended if d["application_id"] == app["id"]]
        moved = await _deployed(client, admin, dep)
        assert moved["state"] == "succeeded", (moved, platform.steps(dep))
        assert moved["spec"]["services"][0]["servers"] == [b_id, "local"]
        assert await _served(b.address, host) == note_a  # A's data went to B
        await asyncio.sleep(0.3)
        assert await _served(b.address, rolling_host) == "plain"
    finally:
        seen, rolled_seen, spread_seen_all = poller.stop(), rolled.stop(), spread_seen.stop()
    assert len(rolled_seen) > 20 and rolled_seen == [(200, "plain")] * len(rolled_seen), rolled_seen[:5]
    assert len(spread_seen_all) > 20 and set(spread_seen_all) == {(200, "plain")}, spread_seen_all[:5]
    print(f"\nlocal answered {len(seen)} (stateful) and {len(rolled_seen)} (rolling) requests during the move, all 200")
    # local's replica answered every request of the move, from its own volume
    assert len(seen) > 20, len(seen)
    assert seen == [(200, note_local)] * len(seen), [s for s in seen if s != (200, note_local)][:5]
    progress = {e["data"]["step"]: e["data"]["detail"] for e in platform.of(dep, "evt.deployment.progressed")}
    assert f"copied from server {a_id} to server {b_id}" in progress["volume data moved"], progress
    assert "of web left 1 route(s) and 1 stopped" in progress["expected downtime"], progress  # A's only
    assert not a.docker("ps", "-aq", "--filter", f"label=berth.app={app['id']}").split()
    # local's replicas were kept, not replaced (the same containers, never restarted); B runs new ones
    assert {app_id: _containers(app_id) for app_id in local_apps} == on_local
    for app_id, (container,) in on_local.items():
        assert _started_at(container) == on_local_started[container], app_id
        assert len(b.docker("ps", "-q", "--filter", f"label=berth.app={app_id}").split()) == 1, app_id
    # the spread app made no container at all: B's and local's kept, renumbered as the new deployment's own
    assert b.docker("ps", "-q", "--no-trunc", "--filter", f"label=berth.app={spread['id']}").split() == on_b
    (spread_dep,) = [d for d in ended if d["application_id"] == spread["id"]]
    async with rig["engine"].connect() as conn:
        q = sa.text("SELECT deployment_id, replica, server_id FROM scheduler.containers WHERE application_id = :a")
        records = sorted(tuple(row) for row in await conn.execute(q, {"a": spread["id"]}))
    assert records == [(spread_dep["id"], 1, b_id), (spread_dep["id"], 2, "local")], records
    # and shown so (the containers keep the labels of the deployment that made them: the records say)
    query = ReplicasQuery(application_id=spread["id"])
    reply = await platform.api.request("scheduler", "replicas", query, ReplicasReply, timeout=20)
    shown = sorted((r.deployment_id, r.replica, r.server) for r in reply.replicas)
    assert shown == [(spread_dep["id"], 1, b_id), (spread_dep["id"], 2, "local")], shown


def _echo_compose(port: int) -> str:
    """A TCP echo service (busybox ``nc``, as tests/e2e/test_compose_published_ports.py) publishing ``port``."""
    return (
        "services:\n  echo:\n"
        f"    image: {busybox_image()}\n"
        "    entrypoint: [busybox]\n"
        "    command: [nc, -ll, -p, '7000', -e, cat]\n"
        f"    ports: ['{port}:7000']\n"
    )


def _echo(address: str, port: int, text: bytes) -> bytes:
    with socket.create_connection((address, port), timeout=3) as s:
        s.sendall(text)
        return s.recv(len(text))


async def _echoes(address: str, port: int, timeout: float = 15) -> None:
    """``address:port`` echoes a line within ``timeout`` (the engine binds the port as the container starts)."""
    deadline = time.monotonic() + timeout
    while True:
        text = f"hello {address}\n".encode()
        try:
            if await asyncio.to_thread(_echo, address, port, text) == text:
                return
            got = "another answer"
        except OSError as exc:
            got = repr(exc)
        assert time.monotonic() < deadline, f"{address}:{port} did not echo: {got}"
        await asyncio.sleep(0.1)


async def _closed(address: str, port: int) -> bool:
    """Nothing takes a connection at ``address:port``."""
    try:
        await asyncio.to_thread(_echo, address, port, b"anyone?\n")
    except OSError:
        return True
    return False


# before the next test, whose server B dies: this one moves the port onto B
async def test_a_port_published_on_a_server_moves_with_the_placement(rig, servers, local_apps) -> None:
    client, admin, platform = rig["client"], rig["admin"], rig["platform"]
    a, b = servers
    a_id, b_id = await _add_servers(client, admin, servers)
    port, local = free_port(), "127.0.0.1"
    placement = [{"service": "echo", "servers": ["edge-a"]}]
    body = {"name": "relay", "compose": {"inline": _echo_compose(port)}, "placement": placement, "stop_timeout_s": 1}
    app = await make_app(client, admin, body)
    local_apps.append(app["id"])
    (echo,) = app["compose"]["translated"]["services"]
    assert echo["published_ports"] == [{"target": 7000, "published": port, "protocol": "tcp"}]
    assert app["compose"]["placement"] == [{"service": "echo", "servers": [a_id]}]

    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=admin, json={})
    assert r.status_code == 202, r.text
    done = await _deployed(client, admin, r.json()["id"])
    assert done["state"] == "succeeded", (done, platform.steps(done["id"]))
    await _echoes(a.address, port)  # on A's address, A's engine binding it
    assert await _closed(b.address, port) and await _closed(local, port)
    assert _containers(app["id"]) == []  # nothing of it on the control plane's engine

    # the same port on the same server is another application's: refused, naming the field and the holder
    env = app["environment_id"]
    r = await client.post(f"/v1/environments/{env}/applications", headers=admin, json={**body, "name": "relay-2"})
    assert r.status_code == 409, r.text
    (err,) = r.json()["errors"]
    assert err["loc"] == "/body/compose/services/echo/ports", err
    assert err["detail"].startswith(f"the port {port}/tcp of server {a_id} is published by the application relay ")

    # placed on B: it answers there, A's port is closed (the claim on A released), local's stays closed
    moved = [{"service": "echo", "servers": ["edge-b"]}]
    r = await client.patch(f"/v1/applications/{app['id']}", headers=admin, json={"placement": moved})
    assert r.status_code == 200, r.text
    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=admin, json={})
    assert r.status_code == 202, r.text
    done = await _deployed(client, admin, r.json()["id"])
    assert done["state"] == "succeeded", (done, platform.steps(done["id"]))
    assert [s.get("servers") for s in done["spec"]["services"]] == [[b_id]]
    await _echoes(b.address, port)
    assert await _closed(a.address, port) and await _closed(local, port)
    assert not a.docker("ps", "-aq", "--filter", f"label=berth.app={app['id']}").split()
    r = await client.post(f"/v1/environments/{env}/applications", headers=admin, json={**body, "name": "relay-a"})
    assert r.status_code == 201, r.text  # A's port is free for another application now

    # removed: the port is closed everywhere
    r = await client.delete(f"/v1/applications/{app['id']}", headers=admin, params={"drain_grace_s": 0.2})
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 60
    while (await client.get(f"/v1/applications/{app['id']}", headers=admin)).status_code != 404:
        assert time.monotonic() < deadline, "the application was not removed in 60 s"
        await asyncio.sleep(0.2)
    for address in (b.address, a.address, local):
        assert await _closed(address, port), address
    assert not b.docker("ps", "-aq", "--filter", f"label=berth.app={app['id']}").split()


async def test_draining_a_server_that_does_not_answer(rig, servers, local_apps) -> None:
    client, admin, platform = rig["client"], rig["admin"], rig["platform"]
    b = servers[1]
    _, b_id = await _add_servers(client, admin, servers)
    plain = {"kind": "web", "name": "web", "port": 8080, "health_path": "/note", "servers": ["edge-b"]}
    plain["command"] = ["sh", "-c", "mkdir -p /w; echo plain > /w/note; exec httpd -f -p 8080 -h /w"]
    stateful = {**_service("edge-b", 1), "strategy": "recreate"}  # its route on B is removed before it stops
    plain_app, plain_first = await _deploy(client, admin, "plain", [plain], local_apps)
    store_app, store_first = await _deploy(client, admin, "store", [stateful], local_apps)
    plain_host = plain_first["spec"]["services"][0]["hosts"][0]
    store_host = store_first["spec"]["services"][0]["hosts"][0]
    assert await _served(b.address, plain_host) == "plain"
    assert (await _served(b.address, store_host)).startswith("written on ")

    await asyncio.to_thread(b.crash)  # the machine dies: its engine, containers and sshd
    r = await client.post(f"/v1/servers/{b_id}/drain", headers=admin, json={})
    assert r.status_code == 202, r.text
    deps = r.json()["deployments"]
    assert len(deps) == 2, r.json()
    ended = {d["application_id"]: d for d in [await _deployed(client, admin, dep, 120) for dep in deps]}

    # without volumes: started on local, routed there; the dead server's cleanup skipped, in the log
    moved = ended[plain_app["id"]]
    assert moved["state"] == "succeeded", (moved, platform.steps(moved["id"]))
    port = platform.traefik.web_port
    assert await _served_locally(port, plain_host) == "plain"
    lines = _lines(platform, moved["id"])
    assert any(f"server {b_id} does not answer: route(s)" in line and "cleanup is skipped" in line for line in lines)
    assert any(f"server {b_id} does not answer: its old containers were not stopped" in line for line in lines)

    # with a named volume: refused, naming the volume and the server; nothing started elsewhere
    refused = ended[store_app["id"]]
    assert refused["state"] == "failed", refused
    volume = f"berth-{store_app['id']}-data"
    assert f"server {b_id} does not answer" in refused["reason"], refused["reason"]
    assert f"volume data ({volume}) from server {b_id} to server local" in refused["reason"], refused["reason"]
    assert "abandon_volume_data" in refused["reason"]

    # drained again without the data: the volume starts empty on local, the log says so
    bad = await client.post(f"/v1/servers/{b_id}/drain", headers=admin, json={"abandon_volume_data": "maybe"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == "/body/abandon_volume_data", bad.text
    r = await client.post(f"/v1/servers/{b_id}/drain", headers=admin, json={"abandon_volume_data": True})
    assert r.status_code == 202, r.text
    (dep,) = r.json()["deployments"]
    done = await _deployed(client, admin, dep, 120)
    assert done["state"] == "succeeded", (done, platform.steps(dep))
    assert any(f"[starting] server {b_id} does not answer: route(s)" in line for line in _lines(platform, dep))
    fresh = await _served_locally(port, store_host)
    assert fresh.startswith("written on ") and fresh != "plain"
    assert any(
        f"volume data starts empty on server local (abandon_volume_data: its data on server {b_id} is not copied)"
        in line
        for line in _lines(platform, dep)
    ), _lines(platform, dep)
    r = await client.delete(f"/v1/servers/{b_id}", headers=admin)  # nothing is placed there any more
    assert r.status_code == 204, r.text
