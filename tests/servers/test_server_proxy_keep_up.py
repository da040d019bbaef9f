"""proxy-sync's keep-up checks what users need of a server's Traefik, not only its API: the web port answers,
the holder runs with its port bound, the Traefik runs in the holder's namespace. A server whose Traefik API
answers while its web port does not (found by the chaos run: a Traefik recreated while the server's disk was
full refused port 80 after the next engine restart, its API ping answering 200 all along) is repaired: what
is wrong is removed and made again, and why is logged; a server with routes is looked after by a proxy-sync
started again before any route of it changes. The checks and the calls are exact data."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from berth_common.bus import Bus
from berth_proxy_sync.domain import proxy_handover as ph
from berth_proxy_sync.domain import server_proxy as sp
from berth_proxy_sync.settings import ProxySyncSettings
from tests.proxy.support import ProxySync, RouteClient, Traefik
from tests.servers.test_remote_routes import _get_or_error, _until, first_route
from tests.support.images import busybox_image
from tests.support.testservers import TestServer, running_servers

IMAGE = "berth/traefik:3.7.15-b2"
HOLDER_ID = "h1"


def _holder(**changes: Any) -> dict[str, Any]:
    body = ph.holder_create(IMAGE, 80).body
    assert body is not None
    info: dict[str, Any] = {
        "Id": HOLDER_ID,
        "HostConfig": body["HostConfig"],
        "State": {"Running": True, "StartedAt": "2026-12-06T20:00:00.5Z"},
        "NetworkSettings": {
            "Networks": {"berth": {"IPAddress": "172.20.0.2", "NetworkID": "n1"}},
            "Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "80"}, {"HostIp": "::", "HostPort": "80"}]},
        },
    }
    info.update(changes)
    return info


def _traefik(**changes: Any) -> dict[str, Any]:
    info: dict[str, Any] = {
        "HostConfig": {"NetworkMode": f"container:{HOLDER_ID}"},
        "State": {"Running": True, "StartedAt": "2026-12-06T20:00:01.25Z"},
    }
    info.update(changes)
    return info


def test_what_keeps_the_web_port_from_being_served_is_exact_data() -> None:
    everything = ("berth-traefik-net", "berth-traefik", "berth-traefik-next")
    assert ph.serving_problem(_holder(), _traefik(), 80) is None
    # the holder: gone, stopped, made otherwise, or running without the binding the engine was asked for
    assert ph.serving_problem(None, _traefik(), 80) == ph.NotServing("berth-traefik-net is gone", everything)
    stopped = _holder(State={"Running": False, "StartedAt": "2026-12-06T20:00:00Z"})
    assert ph.serving_problem(stopped, _traefik(), 80) == ph.NotServing("berth-traefik-net is not running", everything)
    assert ph.serving_problem(_holder(HostConfig={"PortBindings": {}}), _traefik(), 80) == ph.NotServing(
        "berth-traefik-net is not published on port 80", everything
    )
    unbound = _holder(NetworkSettings={**_holder()["NetworkSettings"], "Ports": {"80/tcp": None}})
    assert ph.serving_problem(unbound, _traefik(), 80) == ph.NotServing(
        "berth-traefik-net runs without its binding of port 80", everything
    )
    elsewhere = _holder(NetworkSettings={**_holder()["NetworkSettings"], "Ports": {"80/tcp": [{"HostPort": "8080"}]}})
    assert ph.serving_problem(elsewhere, _traefik(), 80) is not None
    # an engine that does not say (no Ports at all) is not taken for a lost binding
    silent = _holder(NetworkSettings={"Networks": _holder()["NetworkSettings"]["Networks"]})
    assert ph.serving_problem(silent, _traefik(), 80) is None
    # HTTPS: both ports bound
    https_body = ph.holder_create(IMAGE, 80, websecure_port=443).body
    assert https_body is not None
    https = _holder(HostConfig=https_body["HostConfig"])
    assert ph.serving_problem(https, _traefik(), 80, websecure_port=443) == ph.NotServing(
        "berth-traefik-net runs without its binding of port 443", everything
    )
    ports = {**_holder()["NetworkSettings"]["Ports"], "443/tcp": [{"HostIp": "0.0.0.0", "HostPort": "443"}]}
    https["NetworkSettings"] = {**https["NetworkSettings"], "Ports": ports}
    assert ph.serving_problem(https, _traefik(), 80, websecure_port=443) is None
    # the Traefik: gone, stopped, in another namespace, or started before the holder (a namespace gone)
    only = ("berth-traefik",)
    assert ph.serving_problem(_holder(), None, 80) == ph.NotServing("berth-traefik is gone", only)
    down = _traefik(State={"Running": False, "StartedAt": "2026-12-06T20:00:01Z"})
    assert ph.serving_problem(_holder(), down, 80) == ph.NotServing("berth-traefik is not running", only)
    gone = ph.NotServing("berth-traefik is not in the namespace of berth-traefik-net", only)
    assert ph.serving_problem(_holder(), _traefik(HostConfig={"NetworkMode": "container:h0"}), 80) == gone
    assert ph.serving_problem(_holder(), _traefik(HostConfig={"NetworkMode": "bridge"}), 80) == gone
    early = _traefik(State={"Running": True, "StartedAt": "2026-12-06T20:00:00.4Z"})
    assert ph.serving_problem(_holder(), early, 80) == gone
    # the engine shows nothing wrong but the port gives no HTTP answer: both made again
    assert ph.web_unanswered(80, "connecting failed: Connection refused") == ph.NotServing(
        "port 80 gives no HTTP answer (connecting failed: Connection refused)", everything
    )
    # the probe and its answer
    assert ph.WEB_PROBE_HOST == "127.0.0.1"
    assert ph.WEB_PROBE == (
        b"GET / HTTP/1.1\r\nHost: berth-keep-up.invalid\r\nUser-Agent: berth-keep-up\r\nConnection: close\r\n\r\n"
    )
    assert ph.web_answered(b"HTTP/1.1 404 Not Found\r\n") and ph.web_answered(b"HTTP/1.0 400 Bad Request\r\n")
    assert not ph.web_answered(b"") and not ph.web_answered(b"SSH-2.0-OpenSSH\r\n") and not ph.web_answered(b"HTTP/1.")
    # the repair: what is named removed (forced; one already gone is no error)
    assert ph.repair_calls(ph.NotServing("x", only)) == [
        sp.Call("DELETE", "/v1.41/containers/berth-traefik?force=true")
    ]
    assert ph.repair_calls(ph.NotServing("x", everything)) == [
        sp.Call("DELETE", "/v1.41/containers/berth-traefik-net?force=true"),
        sp.Call("DELETE", "/v1.41/containers/berth-traefik?force=true"),
        sp.Call("DELETE", "/v1.41/containers/berth-traefik-next?force=true"),
    ]


# --- end to end ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[TestServer]:
    with running_servers(1) as [one]:
        one.load_image(busybox_image())
        yield one


@pytest.fixture
async def bus(nats_server) -> AsyncIterator[Bus]:  # type: ignore[no-untyped-def]
    api = Bus("api", nats_server.url)
    await api.connect()
    yield api
    await api.close()


async def _check_costs(server: TestServer, keys: Path, times: int = 20) -> list[float]:
    """``server_proxy.serving`` of the healthy server ``times`` times over a connection of its own: each
    answer None; the sorted durations."""
    from berth_common import ssh
    from berth_common.docker import DockerEngines, local_engine
    from berth_common.docker.remote import connect_server
    from berth_proxy_sync.adapters import server_proxy

    target = server.ssh_target()
    pool, engines = ssh.SshPool(keys), DockerEngines(local_engine(None))
    costs = []
    try:
        await connect_server(engines, pool, "srv", target)
        conn = await pool.connection("srv", target)
        for _ in range(times):
            started = time.monotonic()
            assert await server_proxy.serving(engines.api("srv"), conn, 80, 443) is None
            costs.append(time.monotonic() - started)
    finally:
        await engines.close()
        await pool.close()
    return sorted(costs)


def _cmd(server: TestServer, name: str) -> list[str]:
    return list(json.loads(server.docker("inspect", "-f", "{{json .Config.Cmd}}", name)))


async def _local_and_settings(nats_server, database, tmp_root, unique):  # type: ignore[no-untyped-def]
    """The local Traefik (started) and proxy-sync's settings: its keep-up every second, short timeouts."""
    from berth_common.db.provision import provision

    local = Traefik(tmp_root / f"local-traefik-{unique}")
    local.root.mkdir()
    local.start()
    urls = await provision(database, "test-secret", ("proxy-sync",))
    settings = ProxySyncSettings(
        nats_url=nats_server.url,
        database_url=urls["proxy-sync"],
        http_port=0,
        traefik_dynamic_dir=local.dynamic_dir,
        traefik_api_url=local.api_url,
        route_live_timeout_s=10.0,
        server_traefik_root=str(tmp_root / f"servers-{unique}"),
        server_connect_timeout_s=3.0,
        server_watch_interval_s=1.0,
    )
    return local, settings


async def _serve_app(server: TestServer, app: str) -> None:
    """The application ``first_route`` routes ``shop.test`` to, run on the server's network: served."""
    server.docker(
        "run", "-d", "--name", app, "--network", "berth", "-e", "BODY=served on the server", busybox_image(),
        "sh", "-c", 'mkdir -p /www && printf %s "$BODY" > /www/index.html && exec httpd -f -p 8080 -h /www',
    )  # fmt: skip
    assert await _until(server.address, "shop.test", 200) == "served on the server"


@pytest.mark.slow
async def test_keep_up_repairs_a_server_whose_api_answers_but_not_its_web_port(  # type: ignore[no-untyped-def]
    server, nats_server, database, tmp_root, unique, bus
) -> None:
    sid = f"srv{unique}"
    local, settings = await _local_and_settings(nats_server, database, tmp_root, unique)
    svc = await ProxySync(settings).start()
    client = await RouteClient(nats_server.url).start()
    app = f"shop-web-{unique}"
    try:
        await first_route(client, bus, server, sid, app)
        await _serve_app(server, app)
        made = _cmd(server, "berth-traefik")
        assert made == ["--configFile=/etc/traefik/traefik.yml"]
        # the check keep-up makes of a server that serves: nothing wrong, and what it costs
        costs = await _check_costs(server, tmp_root / f"ssh-{unique}")
        print(
            f"one check of a serving server: median {costs[len(costs) // 2] * 1000:.1f} ms, max {costs[-1] * 1000:.1f} ms"
        )

        # by hand: a Traefik with the same image and folders in the holder's namespace, started with the
        # server's static configuration less its web entry point, takes the place of the one Berth made (the
        # API answers throughout: both listen on its port until the first is removed); port 80 then refuses
        # every connection while the API's ping answers
        folder = tmp_root / f"servers-{unique}" / sid  # the test server shares this machine's file system
        static = json.loads((folder / "traefik.yml").read_text())
        del static["entryPoints"]["web"]
        (folder / "no-web.yml").write_text(json.dumps(static))
        image = server.docker("inspect", "-f", "{{.Config.Image}}", "berth-traefik").strip()
        binds = json.loads(server.docker("inspect", "-f", "{{json .HostConfig.Binds}}", "berth-traefik"))
        binds.append(f"{folder}/no-web.yml:/no-web.yml:ro")
        server.docker("rename", "berth-traefik", f"berth-traefik-old-{unique}")
        volumes = [arg for bind in binds for arg in ("-v", bind)]
        server.docker(
            "run", "-d", "--name", "berth-traefik", "--network", "container:berth-traefik-net", *volumes, image,
            "--configFile=/no-web.yml",
        )  # fmt: skip
        server.docker("rm", "-f", f"berth-traefik-old-{unique}")
        broken_at = time.monotonic()
        assert (await _get_or_error(server.address, "shop.test"))[0] == 0  # refused: nothing takes port 80

        # keep-up (every second here) finds the web port unanswered while the API answers, removes the
        # holder and the Traefik, and makes them again as Berth makes them: served again
        assert await _until(server.address, "shop.test", 200, timeout=30) == "served on the server"
        repaired_s = time.monotonic() - broken_at
        assert _cmd(server, "berth-traefik") == made
        held = server.docker("inspect", "-f", "{{json .NetworkSettings.Ports}}", "berth-traefik-net")
        assert json.loads(held)["80/tcp"], held
        print(f"web port repaired after {repaired_s:.1f}s")

        # the holder running without its binding is seen by the engine: stopped by hand, keep-up makes it
        # again (its Traefik with it, since its namespace is gone)
        server.docker("stop", "-t", "0", "berth-traefik-net")
        assert (await _get_or_error(server.address, "shop.test"))[0] == 0
        assert await _until(server.address, "shop.test", 200, timeout=30) == "served on the server"

        # proxy-sync started again, and no route of the server changed since: the server's routes in its
        # database are enough for keep-up to look after it (found by the chaos run: a server whose engine
        # restarted after proxy-sync's restart stayed dark until its next deploy)
        await svc.stop()
        svc = await ProxySync(settings).start()
        server.docker("stop", "-t", "0", "berth-traefik-net")
        assert (await _get_or_error(server.address, "shop.test"))[0] == 0
        assert await _until(server.address, "shop.test", 200, timeout=30) == "served on the server"
    except BaseException:
        with contextlib.suppress(Exception):
            print(server.docker("ps", "-a"))
            print(server.docker("logs", "--tail", "30", "berth-traefik"))
        raise
    finally:
        await client.close()
        await svc.stop()
        local.stop()
        server.docker("rm", "-f", app, "berth-traefik", "berth-traefik-net", f"berth-traefik-old-{unique}")


# --- the local server --------------------------------------------------------------------------------------


def test_the_local_traefik_has_no_such_gap(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The local server's Traefik is one process that listens on every entry point itself (no holder
    publishes its ports): one that cannot listen on its web entry point exits, and the supervisor starts it
    again (``berth_cli.dataplane``); it never runs with its API answering and its web port dark."""
    import socket
    import subprocess

    from berth_cli.components import traefik_static_config
    from berth_common import traefik as tr

    (tmp_path / "dynamic").mkdir()
    with socket.socket() as taken, socket.socket() as free:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        free.bind(("127.0.0.1", 0))
        web_port, api_port = taken.getsockname()[1], free.getsockname()[1]
        free.close()  # the API's port is free
        static = traefik_static_config(tmp_path / "dynamic", "127.0.0.1", web_port, "127.0.0.1", api_port)
        (tmp_path / "traefik.yml").write_text(json.dumps(static))
        done = subprocess.run(
            [str(tr.default_binary()), f"--configFile={tmp_path / 'traefik.yml'}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode != 0
    assert f"listen tcp 127.0.0.1:{web_port}: bind: address already in use" in done.stdout + done.stderr


@pytest.mark.slow
async def test_a_route_file_a_batch_could_not_put_back_is_reconciled_by_the_keep_up(  # type: ignore[no-untyped-def]
    server, nats_server, database, tmp_root, unique, bus, monkeypatch
) -> None:
    """A change Traefik does not confirm gets its previous file back; when that write fails too (the server's
    connection broke between the two), the server's file differs from the database: the server is marked and
    its files reconciled at the keep-up's next pass, so the host is served by its recorded route again instead
    of the refused change's until the route's next change (no change may ever come)."""
    from berth_proxy_sync.adapters.sites import RemoteFiles
    from berth_proxy_sync.adapters.traefik_api import NotLiveError, TraefikApi
    from tests.servers.test_remote_routes import _apply

    sid = f"srv{unique}"
    local, settings = await _local_and_settings(nats_server, database, tmp_root, unique)
    svc = await ProxySync(settings).start()
    client = await RouteClient(nats_server.url).start()
    app = f"shop-web-{unique}"
    broken = {"confirm": False, "restore": False}
    confirm, write = TraefikApi.wait_live, RemoteFiles.write

    async def wait_live(self, route, timeout_s, extra_routers=()):  # type: ignore[no-untyped-def]
        if broken["confirm"] and route.route_id == "shop-web":
            broken["confirm"], broken["restore"] = False, True  # the next write is the one putting it back
            raise NotLiveError("not live (the test's Traefik did not confirm it)")
        return await confirm(self, route, timeout_s, extra_routers)

    async def failing_write(self, name, content, *, durable=True):  # type: ignore[no-untyped-def]
        if broken["restore"]:
            broken["restore"] = False
            raise OSError(f"writing {name} on the server failed: the connection broke (the test)")
        return await write(self, name, content, durable=durable)

    monkeypatch.setattr(TraefikApi, "wait_live", wait_live)
    monkeypatch.setattr(RemoteFiles, "write", failing_write)
    try:
        await first_route(client, bus, server, sid, app)
        await _serve_app(server, app)

        broken["confirm"] = True
        evt = await _apply(client, "shop-web", ["shop.test"], [f"http://nowhere-{unique}:8080"], 2, sid)
        assert evt["type"] == "evt.route.failed" and "not live" in evt["data"]["reason"], evt
        assert not broken["confirm"] and not broken["restore"]  # both faults happened
        route_file = tmp_root / f"servers-{unique}" / sid / "dynamic" / "shop-web.yml"
        assert "nowhere" in route_file.read_text()  # the refused change's file stayed
        # the keep-up (every second here) puts the recorded route back: served by the application again
        deadline = time.monotonic() + 30
        while "nowhere" in (text := route_file.read_text()):
            assert time.monotonic() < deadline, text
            await asyncio.sleep(0.2)
        assert f"http://{app}:8080" in text, text
        assert await _until(server.address, "shop.test", 200, timeout=30) == "served on the server"
    finally:
        await client.close()
        await svc.stop()
        local.stop()
        server.docker("rm", "-f", app, "berth-traefik", "berth-traefik-net")
