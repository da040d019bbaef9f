"""Draining a server moves its applications' volume data, end to end: the api, the real scheduler and
proxy-sync, two namespace test servers (each its own dockerd, sshd and Traefik made by proxy-sync). An app
writes a note and a 32 MiB file (owned by uid 1234, mode 640) into its named volume on server A and serves
the note through A's Traefik.

- A placement change onto B whose volume cannot take the data (a 64 KiB tmpfs volume there) fails naming the
  volume; the old replica on A is started again and serves the same note.
- Draining A: the app stops on A, its volume's data is copied to B, the app starts on B and serves the same
  note, the file arrives byte for byte with its owner and mode; the volume stays on A (the drain's answer and
  the deployment's log say so) and is still there after A is removed. The downtime (last answer from A to
  first answer from B) is measured and printed.
- A scheduler restart mid-copy: the copy is made again from an emptied target (two attempts recorded) and the
  data on B is whole. Moving back onto A, where the old volume stayed, is refused before anything stops (its
  files would be overwritten); B keeps serving.
- Two volumes moving with an app: a copy that outlasts the scheduler's ``volume_move_timeout_s`` fails naming
  the volume and the setting, A serves again; with the limit back, both volumes are copied at once (both
  ``copying`` at the same moment), each writing the bytes copied so far into the deployment's log, at most one
  line per ``volume_move_progress_s``, and arrive whole."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from berth_common.db import make_engine
from berth_common.db.provision import provision
from berth_proxy_sync.settings import ProxySyncSettings
from berth_scheduler.settings import SchedulerSettings
from tests.api.conftest import bearer, make_app
from tests.proxy.support import ProxySync
from tests.scheduler.platform import Platform, Scheduler
from tests.support.fleet_platform import api_on
from tests.support.images import busybox_image, traefik_image
from tests.support.testservers import TestServer, load_images, running_servers

pytestmark = pytest.mark.slow
SECRET = "test-secret"
PROGRESS_S = 0.2  # a copy's progress line in the deployment's log, at most this often
# The note and the file are written once, by the first replica that finds the volume empty; SIGTERM ends it
# at once (the gap measured is the move's, not a stop timeout's).
SCRIPT = (
    "mkdir -p /data/www; if [ ! -f /data/www/note ]; then "
    'echo "written on $(hostname) $RANDOM$RANDOM" > /data/www/note; '
    "dd if=/dev/urandom of=/data/blob bs=1M count=$BLOB_MB 2>/dev/null; chown 1234:1234 /data/blob; "
    "chmod 640 /data/blob; fi; "
    "trap 'kill $p; exit 0' TERM; httpd -f -p 8080 -h /data/www & p=$!; wait"
)


@pytest.fixture(scope="module")
def servers() -> Iterator[list[TestServer]]:
    """Two servers, each with Berth's Traefik image already: proxy-sync's import of it over SSH (checked in
    test_remote_routes.py) would otherwise fall into the first move onto B, inside the downtime measured."""
    busybox_image()
    with running_servers(2) as two:
        load_images(two, traefik_image())
        yield two


@pytest.fixture
async def rig(
    servers, nats_server, database, traefik_spares, tmp_root, tmp_path, unique
) -> AsyncIterator[dict[str, Any]]:
    urls = await provision(database, SECRET)
    traefik = traefik_spares.take()  # started while the test before ran
    proxy = ProxySync(
        ProxySyncSettings(
            nats_url=nats_server.url,
            database_url=urls["proxy-sync"],
            http_port=0,
            traefik_dynamic_dir=traefik.dynamic_dir,
            traefik_api_url=traefik.api_url,
            server_traefik_root=str(tmp_root / f"servers-{unique}"),
            server_connect_timeout_s=3.0,
            server_setup_timeout_s=60.0,
        )
    )
    scheduler = Scheduler(
        SchedulerSettings(
            nats_url=nats_server.url,
            database_url=urls["scheduler"],
            secret_key=SECRET,
            http_port=0,
            drain_grace_s=0.5,
            readiness_timeout_s=60,
            route_timeout_s=60,
            readiness_interval_s=0.05,
            ssh_timeout_s=3,
            volume_move_progress_s=PROGRESS_S,
        )
    )
    platform = await Platform(nats_server.url, traefik, scheduler, proxy).start()
    # published ports allowed (no volume move publishes one; test_drain_moves' published port does)
    api = await api_on(nats_server.url, urls["api"], tmp_path / "data", SECRET, ("1024-65535",))
    engine = make_engine(urls["scheduler"], "scheduler")
    try:
        async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
            yield {"client": client, "admin": bearer(api.admin_token()), "platform": platform, "engine": engine}
    finally:
        await engine.dispose()
        await api.shutdown()
        await platform.close()
        traefik.kill()
        for server in servers:
            with contextlib.suppress(Exception):
                names = server.docker("ps", "-aq", "--filter", "label=berth.managed=true").split()
                if names:
                    server.docker("rm", "-f", *names)
            with contextlib.suppress(Exception):
                vols = server.docker("volume", "ls", "-q", "--filter", "label=berth.managed=true").split()
                vols += [v for v in server.docker("volume", "ls", "-q").split() if v.startswith("berth-")]
                if vols:
                    server.docker("volume", "rm", "-f", *sorted(set(vols)))


async def _add_servers(client: httpx.AsyncClient, admin: dict, servers: list[TestServer]) -> list[str]:
    ids = []
    for name, server in zip(("edge-a", "edge-b"), servers, strict=True):
        body = {"name": name, "host": server.address, "private_key": server.private_key_pem}
        r = await client.post("/v1/servers", headers=admin, json=body)
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    for sid in ids:
        deadline = time.monotonic() + 60
        while (state := (await client.get(f"/v1/servers/{sid}", headers=admin)).json())["state"] == "validating":
            assert time.monotonic() < deadline, state
            await asyncio.sleep(0.2)
        assert state["state"] == "ready", state
    return ids


def _service(server: str, blob_mb: int) -> dict[str, Any]:
    return {
        "kind": "web",
        "name": "web",
        "port": 8080,
        "health_path": "/note",
        "command": ["env", f"BLOB_MB={blob_mb}", "sh", "-c", SCRIPT],
        "servers": [server],
        "volumes": [{"name": "data", "path": "/data"}],
    }


async def _deployed(client: httpx.AsyncClient, admin: dict, dep: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = (await client.get(f"/v1/deployments/{dep}", headers=admin)).json()
        if body["state"] in ("succeeded", "failed", "cancelled"):
            return body
        assert time.monotonic() < deadline, f"deployment still {body['state']}"
        await asyncio.sleep(0.2)


def _get(address: str, host: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection(address, 80, timeout=3)
    try:
        conn.request("GET", "/note", headers={"Host": host})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace").strip()
    except Exception as exc:
        return -1, str(exc)
    finally:
        conn.close()


async def _served(address: str, host: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while (got := await asyncio.to_thread(_get, address, host))[0] != 200:
        assert time.monotonic() < deadline, f"{address}: {got}"
        await asyncio.sleep(0.1)
    return got[1]


@contextlib.contextmanager
def _slow_link(server: TestServer, rate: str = "40mbit") -> Iterator[None]:
    """What reaches ``server`` goes at ``rate`` (a token bucket on the main namespace's end of its link), so a
    copy onto it lasts long enough to be interrupted whatever the machine's speed; lifted on leaving."""
    veth = f"bt{server.subnet}x{server.host}"
    subprocess.run(
        ["tc", "qdisc", "add", "dev", veth, "root", "tbf", "rate", rate, "burst", "64kb", "latency", "1s"], check=True
    )
    try:
        yield
    finally:
        subprocess.run(["tc", "qdisc", "del", "dev", veth, "root"], check=False)


def _volume(server: TestServer, name: str) -> str:
    """The note, the file's hash, owner and mode in the volume, read by a container on that server."""
    script = "cat /v/www/note; sha256sum /v/blob | cut -d' ' -f1; stat -c '%u:%g %a' /v/blob"
    return server.docker("run", "--rm", "-v", f"{name}:/v", busybox_image(), "sh", "-c", script).strip()


class Poller:
    """GET /note through both servers' Traefiks, one after the other, from a thread: (time, server, status)."""

    def __init__(self, host: str, addresses: dict[str, str]) -> None:
        self.host, self.addresses = host, addresses
        self.seen: list[tuple[float, str, int, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            for name, address in self.addresses.items():
                status, body = _get(address, self.host)
                self.seen.append((time.monotonic(), name, status, body))
            time.sleep(0.01)

    def start(self) -> Poller:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def downtime(self, old: str, new: str) -> float:
        """Seconds from the last 200 of ``old`` (before the first 200 of ``new``) to the first 200 of ``new``."""
        first_new = next(t for t, name, status, _ in self.seen if name == new and status == 200)
        last_old = max(t for t, name, status, _ in self.seen if name == old and status == 200 and t < first_new)
        return first_new - last_old


async def test_draining_a_server_moves_its_volume_data_and_keeps_the_volume(rig, servers) -> None:
    client, admin, platform = rig["client"], rig["admin"], rig["platform"]
    a, b = servers
    a_id, b_id = await _add_servers(client, admin, servers)
    source = {"kind": "image", "image": busybox_image()}
    app = await make_app(client, admin, {"name": "notes", "source": source, "services": [_service("edge-a", 32)]})
    volume = f"berth-{app['id']}-data"
    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=admin, json={})
    assert r.status_code == 202, r.text
    first = await _deployed(client, admin, r.json()["id"])
    assert first["state"] == "succeeded", first
    host = first["spec"]["services"][0]["hosts"][0]
    note = await _served(a.address, host)
    assert note.startswith("written on "), note
    written = _volume(a, volume)
    assert written.startswith(note) and written.endswith("1234:1234 640"), written

    # a target that cannot take the data: the deployment fails naming the volume, A serves again
    b.docker("volume", "create", "--opt", "type=tmpfs", "--opt", "device=tmpfs", "--opt", "o=size=64k", volume)
    services = [_service("edge-b", 32)]
    assert (await client.patch(f"/v1/applications/{app['id']}", headers=admin, json={"services": services})).is_success
    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=admin, json={})
    failed = await _deployed(client, admin, r.json()["id"])
    assert failed["state"] == "failed", failed
    reason = failed["reason"]
    assert "volume data" in reason and "could not be copied" in reason and "space" in reason, reason
    steps = [step for _, step in platform.steps(r.json()["id"])]
    assert "expected downtime" in steps and "volume data moved" not in steps, steps
    assert await _served(a.address, host) == note  # the old replica started again and routed
    assert _volume(a, volume) == written
    b.docker("volume", "rm", volume)  # the tmpfs was the user's: the failed move did not remove it
    services = [_service("edge-a", 32)]
    assert (await client.patch(f"/v1/applications/{app['id']}", headers=admin, json={"services": services})).is_success

    # B already serves another application (its Traefik runs: the gap measured is the move's)
    other = {"kind": "web", "name": "web", "port": 8080, "health_path": "/note", "servers": ["edge-b"]}
    other["command"] = ["sh", "-c", "mkdir -p /w; echo other > /w/note; exec httpd -f -p 8080 -h /w"]
    neighbour = await make_app(client, admin, {"name": "other", "source": source, "services": [other]})
    r = await client.post(f"/v1/applications/{neighbour['id']}/deployments", headers=admin, json={})
    deployed = await _deployed(client, admin, r.json()["id"])
    assert deployed["state"] == "succeeded", deployed
    neighbour_host = deployed["spec"]["services"][0]["hosts"][0]
    assert await _served(b.address, neighbour_host) == "other"

    # drain A: the data goes to B with the app; the volume stays on A
    poller = Poller(host, {"a": a.address, "b": b.address}).start()
    try:
        r = await client.post(f"/v1/servers/{a_id}/drain", headers=admin, json={"to": ["edge-b"]})
        assert r.status_code == 202, r.text
        assert r.json()["volumes_kept"] == [
            {"application_id": app["id"], "name": "notes", "volume": "data", "docker_name": volume}
        ]
        (dep,) = r.json()["deployments"]
        moved = await _deployed(client, admin, dep)
        assert moved["state"] == "succeeded", (moved, platform.steps(dep))
        assert await _served(b.address, host) == note
        await asyncio.sleep(0.5)
    finally:
        poller.stop()
    downtime = poller.downtime("a", "b")
    assert all(body == note for _, _, status, body in poller.seen if status == 200)  # never another note
    progress = {e["data"]["step"]: e["data"]["detail"] for e in platform.of(dep, "evt.deployment.progressed")}
    assert "volume data moves to another server" in progress["expected downtime"], progress
    assert f"copied from server {a_id} to server {b_id}" in progress["volume data moved"], progress
    assert f"volume data stays on server {a_id}" in progress["volume data moved"], progress
    stopped_at = next(e["_at"] for e in platform.events if e["data"].get("step") == "expected downtime"
                      and e["data"]["deployment_id"] == dep)  # fmt: skip
    live_at = next(e["_at"] for e in platform.events if e["data"].get("step") == "new version live"
                   and e["data"]["deployment_id"] == dep)  # fmt: skip
    print(
        f"\nmove downtime: {downtime:.3f}s between the last answer from A and the first from B "
        f"(the deployment: old stopped -> new version live {live_at - stopped_at:.3f}s; "
        f"{progress['volume data moved']})"
    )
    # what clients saw is the gap the deployment reports (the poll and the events' delivery aside), and below
    # the incumbents' redeploy gap (10-30 s) for 32 MiB
    assert downtime <= live_at - stopped_at + 2.0 and downtime < 30, (downtime, live_at - stopped_at)
    assert await _served(b.address, neighbour_host) == "other"  # the neighbour is untouched
    assert _volume(b, volume) == written  # byte for byte, owner and mode kept
    assert _volume(a, volume) == written  # the volume stays on A
    assert not a.docker("ps", "-aq", "--filter", f"label=berth.app={app['id']}").split()  # no container left
    assert not b.docker("ps", "-aq", "--filter", "label=berth.volume-move").split()  # helpers removed

    r = await client.delete(f"/v1/servers/{a_id}", headers=admin)  # nothing runs there: forgotten
    assert r.status_code == 204, r.text
    assert volume in a.docker("volume", "ls", "-q").split()  # its data is still on the machine


async def test_a_scheduler_restart_mid_copy_copies_again_onto_an_emptied_target(rig, servers) -> None:
    client, admin, platform = rig["client"], rig["admin"], rig["platform"]
    a, b = servers
    await _add_servers(client, admin, servers)
    source = {"kind": "image", "image": busybox_image()}
    app = await make_app(client, admin, {"name": "big", "source": source, "services": [_service("edge-a", 96)]})
    volume = f"berth-{app['id']}-data"
    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=admin, json={})
    first = await _deployed(client, admin, r.json()["id"], 240)
    assert first["state"] == "succeeded", first
    host = first["spec"]["services"][0]["hosts"][0]
    note = await _served(a.address, host)
    written = _volume(a, volume)

    services = [_service("edge-b", 96)]
    assert (await client.patch(f"/v1/applications/{app['id']}", headers=admin, json={"services": services})).is_success
    dep = ""

    async def move() -> Any:
        async with rig["engine"].connect() as conn:
            q = sa.text("SELECT state, attempts FROM scheduler.volume_moves WHERE deployment_id = :d")
            return (await conn.execute(q, {"d": dep})).first()

    with _slow_link(b):  # 96 MB onto B take seconds, not the few hundred ms of a fast machine
        r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=admin, json={})
        dep = r.json()["id"]
        deadline = time.monotonic() + 120
        while (row := await move()) is None or row.state != "copying":
            assert time.monotonic() < deadline and (row is None or row.state == "planned"), row
            await asyncio.sleep(0.02)
        await platform.scheduler.stop()  # mid-copy: the copy is cancelled, half the data on B
        assert (await move()).state == "copying"
    await platform.scheduler.start()
    moved = await _deployed(client, admin, dep, 240)
    assert moved["state"] == "succeeded", (moved, platform.steps(dep))
    assert tuple(await move()) == ("copied", 2)
    assert await _served(b.address, host) == note
    assert _volume(b, volume) == written

    # back onto A, where the volume stayed with the old data: refused before anything stops, B keeps serving
    services = [_service("edge-a", 96)]
    assert (await client.patch(f"/v1/applications/{app['id']}", headers=admin, json={"services": services})).is_success
    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=admin, json={})
    refused = await _deployed(client, admin, r.json()["id"], 120)
    assert refused["state"] == "failed", refused
    assert f"volume data cannot move from server {moved['spec']['services'][0]['servers'][0]}" in refused["reason"]
    assert f"the volume {volume} there already holds files" in refused["reason"], refused["reason"]
    assert "expected downtime" not in [step for _, step in platform.steps(r.json()["id"])]
    assert await _served(b.address, host) == note
    assert _volume(a, volume) == written  # neither copy was touched


# the note and a blob in /data, another blob in /more: two volumes whose data moves
TWO_VOLUMES = SCRIPT.replace(
    "chmod 640 /data/blob; fi; ",
    "chmod 640 /data/blob; dd if=/dev/urandom of=/more/blob bs=1M count=$BLOB_MB 2>/dev/null; fi; ",
)


def _two_volumes(server: str, blob_mb: int) -> dict[str, Any]:
    return {
        **_service(server, blob_mb),
        "command": ["env", f"BLOB_MB={blob_mb}", "sh", "-c", TWO_VOLUMES],
        "volumes": [{"name": "data", "path": "/data"}, {"name": "more", "path": "/more"}],
    }


def _size(text: str) -> float:
    """The bytes of ``12.5 MiB ...`` (``domain.volume_moves.size_text``)."""
    value, unit = text.split()[:2]
    return float(value) * {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}[unit]


def _blob(server: TestServer, name: str) -> str:
    return server.docker("run", "--rm", "-v", f"{name}:/v", busybox_image(), "sha256sum", "/v/blob").split()[0]


async def test_two_volumes_are_copied_at_once_with_their_progress_and_the_time_limit(rig, servers) -> None:
    client, admin, platform = rig["client"], rig["admin"], rig["platform"]
    a, b = servers
    await _add_servers(client, admin, servers)
    source = {"kind": "image", "image": busybox_image()}
    app = await make_app(client, admin, {"name": "pair", "source": source, "services": [_two_volumes("edge-a", 64)]})
    vols = {v: f"berth-{app['id']}-{v}" for v in ("data", "more")}
    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=admin, json={})
    first = await _deployed(client, admin, r.json()["id"], 240)
    assert first["state"] == "succeeded", first
    host = first["spec"]["services"][0]["hosts"][0]
    note = await _served(a.address, host)
    written = {v: _blob(a, name) for v, name in vols.items()}
    services = [_two_volumes("edge-b", 64)]
    assert (await client.patch(f"/v1/applications/{app['id']}", headers=admin, json={"services": services})).is_success

    # the limit is the scheduler's setting: a copy that outlasts it fails naming the volume; A serves again
    settings = platform.scheduler.settings
    settings.volume_move_timeout_s = 0.05
    try:
        r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=admin, json={})
        failed = await _deployed(client, admin, r.json()["id"], 120)
    finally:
        settings.volume_move_timeout_s = 6 * 3600.0
    assert failed["state"] == "failed", failed
    assert "the copy did not finish within 0.05s (the scheduler's BERTH_VOLUME_MOVE_TIMEOUT_S)" in failed["reason"]
    assert "the data of volume data" in failed["reason"] or "the data of volume more" in failed["reason"]
    assert await _served(a.address, host) == note
    # both volumes were made on B by this move (the first one's preparation made the second's too): the undo
    # removes both copies, so the next move does not find one holding part of the data
    assert not set(b.docker("volume", "ls", "-q").split()) & set(vols.values()), failed["reason"]

    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=admin, json={})
    dep = r.json()["id"]

    async def states() -> list[Any]:
        async with rig["engine"].connect() as conn:
            q = sa.text("SELECT volume, state, seconds FROM scheduler.volume_moves WHERE deployment_id = :d")
            return list((await conn.execute(q, {"d": dep})).all())

    together = False
    deadline = time.monotonic() + 240
    while True:
        found = [row.state for row in await states()]
        together = together or found == ["copying", "copying"]
        if found and all(state == "copied" for state in found):
            break
        if not found:  # a deployment that ends before its moves are recorded says why
            body = (await client.get(f"/v1/deployments/{dep}", headers=admin)).json()
            undone = [e["data"]["detail"] for e in platform.of(failed["id"], "evt.deployment.progressed")][-1:]
            assert body["state"] not in ("succeeded", "failed", "cancelled"), (undone, body.get("reason"))
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.02)
    moved = await _deployed(client, admin, dep, 240)
    assert moved["state"] == "succeeded", (moved, platform.steps(dep))
    assert together, "the two volumes were never copied at the same time"
    assert await _served(b.address, host) == note
    assert {v: _blob(b, name) for v, name in vols.items()} == written

    took = {row.volume: row.seconds for row in await states()}
    # in the log's order (``seq``): lines committed one after another may reach the stream out of order (a
    # publish after its commit that fails is the outbox relay's, later), and the api serves them by seq
    deploy = [e["data"] for e in platform.logs if e["data"]["deployment_id"] == dep and e["data"]["stream"] == "deploy"]
    lines = [d["line"] for d in sorted(deploy, key=lambda d: d["seq"])]
    for volume in ("data", "more"):
        said = [line for line in lines if line.startswith(f"[starting] volume {volume}: ")]
        assert said, lines
        copied = [_size(line.split(": ")[1]) for line in said]
        assert copied == sorted(copied) and copied[-1] <= 65 << 20, said  # the bytes so far, growing
        assert all("copied so far from server" in line for line in said), said
        assert len(said) <= took[volume] / PROGRESS_S + 1, (len(said), took[volume])  # one per interval at most
        print(f"\nvolume {volume}: {took[volume]:.2f}s, {len(said)} progress line(s): {said[-1]}")
