"""proxy-sync routes on a remote server: the real service, a namespace test server announced by
``evt.server.changed``, the server's own Traefik made, delivered and run by proxy-sync, its files written
over SFTP and every change confirmed through its API over SSH."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from berth_common import fleet
from berth_common import traefik as tr
from berth_common.bus import Bus
from berth_common.catalogue import ApplyRoutes, RemoveRoute, ServerChanged
from berth_common.db.provision import provision, schema_for
from berth_proxy_sync.domain import proxy_handover as ph
from berth_proxy_sync.domain import server_proxy as sp
from berth_proxy_sync.domain.routes import Route, render
from berth_proxy_sync.settings import ProxySyncSettings
from berth_proxy_sync.usecases.sites import RECHECK_S
from tests.proxy.support import ProxySync, RouteClient, Traefik
from tests.support.images import busybox_image
from tests.support.testservers import TestServer, running_servers, server_changed

IMAGE = "berth/traefik:3.7.15"
# a file an operator put in the server's dynamic directory (no managed marker): proxy-sync leaves it alone
OPERATOR = {"http": {"middlewares": {"operator-headers": {"headers": {"customResponseHeaders": {"X-Op": "1"}}}}}}


# --- the Docker calls, as data ---------------------------------------------------------------------------


def test_the_server_traefik_calls_are_exact_data() -> None:
    assert sp.network_inspect() == sp.Call("GET", "/v1.41/networks/berth")
    assert sp.network_create() == sp.Call(
        "POST",
        "/v1.41/networks/create",
        {"Name": "berth", "Driver": "bridge", "CheckDuplicate": True, "Labels": {"berth.managed": "true"}},
    )
    assert sp.image_inspect(IMAGE) == sp.Call("GET", "/v1.41/images/berth%2Ftraefik%3A3.7.15/json")
    assert sp.container_inspect("berth-traefik") == sp.Call("GET", "/v1.41/containers/berth-traefik/json")
    assert sp.container_start("berth-traefik") == sp.Call("POST", "/v1.41/containers/berth-traefik/start")
    assert sp.container_remove("berth-traefik") == sp.Call("DELETE", "/v1.41/containers/berth-traefik?force=true")
    create = ph.traefik_create("berth-traefik", IMAGE, "/var/lib/berth/traefik/srv1", "1f")
    assert create == sp.Call(
        "POST",
        "/v1.41/containers/create?name=berth-traefik",
        {
            "Image": IMAGE,
            "Labels": {"berth.managed": "true", "berth.kind": "proxy"},
            "Env": ["BERTH_TRAEFIK_INSTANCE=1f"],
            "HostConfig": {
                "RestartPolicy": {"Name": "unless-stopped"},
                "Binds": [
                    "/var/lib/berth/traefik/srv1/traefik.yml:/etc/traefik/traefik.yml:ro",
                    "/var/lib/berth/traefik/srv1/dynamic:/etc/traefik/dynamic:ro",
                ],
                "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}},
                "NetworkMode": "container:berth-traefik-net",  # the holder publishes port 80, on the network
            },
        },
    )
    holder = ph.holder_create(IMAGE, 80).body
    assert holder is not None and holder["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": "80"}]}
    assert holder["NetworkingConfig"] == {"EndpointsConfig": {"berth": {"Aliases": ["traefik"]}}}
    assert fleet.SERVER_NETWORK == "berth"


def test_the_server_folder_and_the_container_found_are_checked() -> None:
    assert sp.server_dir("/var/lib/berth/traefik", "srv_1-a") == "/var/lib/berth/traefik/srv_1-a"
    for root, server_id in (("relative", "s"), ("/a/../b", "s"), ("/a", "../s"), ("/a", "s/t"), ("/a", "")):
        with pytest.raises(ValueError):
            sp.server_dir(root, server_id)
    body = ph.holder_create(IMAGE, 80).body
    assert body is not None
    info: dict[str, Any] = {
        "Config": {"Image": IMAGE},
        "HostConfig": body["HostConfig"],
        "State": {"Running": True},
        "NetworkSettings": {"Networks": {"berth": {"IPAddress": "172.20.0.2", "NetworkID": "n1"}}},
    }
    assert ph.holder_problem(info, 80) is None
    assert ph.holder_problem(info, 80, "n1") is None
    assert ph.holder_problem(info, 80, "n2") == "is on an earlier berth network"
    assert sp.running(info) and sp.api_address(info) == "172.20.0.2"
    assert ph.holder_problem(info, 8080) == "is not published on port 8080"
    assert ph.holder_problem(info, 80, websecure_port=443) == "is not published on ports 80 and 443"
    traefik = ph.traefik_body(IMAGE, "/d")
    holder = {"Id": "h1", "State": {"StartedAt": "2026-12-06T20:00:00Z"}}
    found = {
        "Config": {"Image": IMAGE, "Env": ["BERTH_TRAEFIK_INSTANCE=1f"]},
        "HostConfig": {**traefik["HostConfig"], "NetworkMode": "container:h1"},
        "State": {"Running": True, "StartedAt": "2026-12-06T20:00:01Z"},
    }
    assert ph.traefik_problem(found, holder, IMAGE, "/d") is None
    assert (
        ph.traefik_problem(found, holder, "berth/traefik:3.8.0", "/d")
        == f"runs image {IMAGE!r}, not 'berth/traefik:3.8.0'"
    )
    assert ph.traefik_problem(found, holder, IMAGE, "/elsewhere") == "its folders are not the server's Berth folders"
    assert ph.traefik_problem(found, {**holder, "Id": "h2"}, IMAGE, "/d") == (
        "is not in the namespace of berth-traefik-net"
    )
    info["HostConfig"] = {**info["HostConfig"], "Sysctls": {}}  # made on a kernel without it: kept
    assert ph.holder_problem(info, 80) is None
    assert "Sysctls" not in (ph.holder_create(IMAGE, 80, migrate=False).body or {})["HostConfig"]
    refused = (
        "POST /v1.41/containers/berth-traefik-net/start: Docker answered 500: OCI runtime create failed: "
        "open /proc/sys/net/ipv4/tcp_migrate_req: no such file or directory"
    )
    assert ph.migrate_refused(refused) and not ph.migrate_refused("Docker answered 500: port is already allocated")
    info["NetworkSettings"] = {"Networks": {"bridge": {"IPAddress": "172.17.0.2"}}}
    assert ph.holder_problem(info, 80) == "is not on the berth network"
    with pytest.raises(sp.ServerProxyError):
        sp.api_address(info)


# --- the schema: routes of one installation before servers keep being routed locally ----------------------


async def test_routes_stored_before_servers_are_local_routes(empty_database) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from berth_common.db import make_engine, run_migrations
    from berth_proxy_sync.adapters import repo
    from berth_proxy_sync.bootstrap import VERSIONS

    urls = await provision(empty_database, "test-secret", ("proxy-sync",))
    schema = schema_for("proxy-sync")
    engine = make_engine(urls["proxy-sync"], schema)
    try:
        await run_migrations(engine, schema, VERSIONS, "proxy_0002")
        async with engine.begin() as conn:
            await conn.exec_driver_sql(
                "INSERT INTO routes (route_id, hosts, upstreams, generation) "
                """VALUES ('web', '["a.test"]', '["http://10.0.0.1:80"]', 4)"""
            )
            await conn.exec_driver_sql("INSERT INTO route_hosts (host, route_id) VALUES ('a.test', 'web')")
        await run_migrations(engine, schema, VERSIONS)
        async with async_sessionmaker(engine)() as session:
            stored = await repo.load(session, "web")
            assert stored is not None and stored.generation == 4 and stored.route.hosts == ("a.test",)
            assert await repo.load(session, "web", "srv1") is None
            assert [r.route_id for r in await repo.active_routes(session)] == ["web"]
            assert await repo.active_routes(session, "srv1") == []
            assert await repo.host_owners(session, ("a.test",), "other") == {"a.test": "web"}
            assert await repo.host_owners(session, ("a.test",), "web") == {}
            # the same route id on another server, then that server removed: its routes and hosts go
            await repo.save(session, Route.create("web", ["a.test"], ["http://10.0.0.2:80"], "web", 1), 1.0, "srv1")
            assert [r.upstreams for r in await repo.active_routes(session, "srv1")] == [("http://10.0.0.2:80",)]
            assert await repo.forget_server(session, "srv1") == 1
            assert await repo.active_routes(session, "srv1") == []
            assert [r.route_id for r in await repo.active_routes(session)] == ["web"]
            await session.commit()
    finally:
        await engine.dispose()


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


def _changed(server: TestServer, server_id: str, revision: int, state: str = "ready") -> ServerChanged:
    return server_changed(server, server_id, team_id="team1", name="edge-1", revision=revision, state=state)


async def _get(address: str, host: str) -> tuple[int, str]:
    async with httpx.AsyncClient(timeout=3) as client:
        r = await client.get(f"http://{address}/", headers={"Host": host})
        return r.status_code, r.text


async def _get_or_error(address: str, host: str) -> tuple[int, str]:
    try:
        return await _get(address, host)
    except httpx.TransportError as exc:
        return 0, str(exc)


async def _until(address: str, host: str, status: int, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            got, text = await _get(address, host)
            if got == status:
                return text
            last = got
        except httpx.TransportError as exc:
            last = exc
        assert time.monotonic() < deadline, f"{host} on {address}: not {status} after {timeout}s (last: {last})"
        await asyncio.sleep(0.1)


async def _apply(client: RouteClient, route_id: str, hosts: list[str], upstreams: list[str], gen: int, server_id: str):  # type: ignore[no-untyped-def]
    assert client.bus is not None
    msg = ApplyRoutes(route_id=route_id, hosts=hosts, upstreams=upstreams, generation=gen, server_id=server_id)
    await client.bus.publish(msg)
    return await client.wait(route_id, gen, timeout=240, server_id=server_id)


async def first_route(client: RouteClient, bus: Bus, server: TestServer, sid: str, app: str) -> dict[str, Any]:
    """The server made known to proxy-sync, then ``shop.test`` routed to ``app`` on it; its applied event."""
    await bus.publish(_changed(server, sid, 1))
    evt = None
    for _ in range(50):  # the directory is kept from the event: wait until proxy-sync has it
        evt = await _apply(client, "shop-web", ["shop.test"], [f"http://{app}:8080"], 1, sid)
        if evt["type"] != "evt.route.failed" or "not known" not in evt["data"]["reason"]:
            break
        client.events.clear()
        await asyncio.sleep(0.2)
    assert evt is not None and evt["type"] == "evt.route.applied", evt
    return dict(evt)


@pytest.mark.slow
async def test_routes_on_a_remote_server(server, nats_server, database, tmp_root, unique, bus) -> None:  # type: ignore[no-untyped-def]
    sid = f"srv{unique}"
    local = Traefik(tmp_root / f"local-traefik-{unique}")
    local.root.mkdir()
    local.start()
    remote_root = tmp_root / f"servers-{unique}"
    urls = await provision(database, "test-secret", ("proxy-sync",))
    settings = ProxySyncSettings(
        nats_url=nats_server.url,
        database_url=urls["proxy-sync"],
        http_port=0,
        traefik_dynamic_dir=local.dynamic_dir,
        traefik_api_url=local.api_url,
        route_live_timeout_s=10.0,
        server_traefik_root=str(remote_root),
        server_connect_timeout_s=3.0,
        server_watch_interval_s=1.0,
    )
    svc = await ProxySync(settings).start()
    client = await RouteClient(nats_server.url).start()
    app = f"shop-web-{unique}"
    try:
        # the first route on the server: its network, Traefik image and container are made by proxy-sync
        evt = await first_route(client, bus, server, sid, app)
        assert evt["data"]["server_id"] == sid and evt["data"]["upstreams"] == [f"http://{app}:8080"]
        assert "berth" in server.docker("network", "ls", "--format", "{{.Name}}").split()
        assert server.docker("inspect", "-f", "{{.Config.Image}}", "berth-traefik").strip() == tr.image_tag("3.7.15")
        # the application on the server's Berth network, reached by its container name
        server.docker(
            "run", "-d", "--name", app, "--network", "berth", "-e", "BODY=served on the server", busybox_image(),
            "sh", "-c", 'mkdir -p /www && printf %s "$BODY" > /www/index.html && exec httpd -f -p 8080 -h /www',
        )  # fmt: skip
        assert await _until(server.address, "shop.test", 200) == "served on the server"
        with socket.socket() as s:  # Traefik's API is never published on the server
            s.settimeout(2)
            assert s.connect_ex((server.address, tr.API_PORT)) != 0
        dynamic = remote_root / sid / "dynamic"
        assert (dynamic / "shop-web.yml").exists() and (dynamic / "000-berth-sentinel.yml").exists()

        # the same route id may route the host on several servers; another route id may not claim it
        evt = await _apply(client, "shop-web", ["shop.test"], ["http://127.0.0.1:9"], 1, "local")
        assert evt["type"] == "evt.route.applied" and evt["data"]["server_id"] == "local", evt
        evt = await _apply(client, "shop-other", ["shop.test"], [f"http://{app}:8080"], 1, sid)
        assert evt["type"] == "evt.route.failed" and "shop.test (route shop-web)" in evt["data"]["reason"], evt

        # remove: the host answers 404 on the server
        await client.bus.publish(RemoveRoute(route_id="shop-web", generation=2, server_id=sid))  # type: ignore[union-attr]
        evt = await client.wait("shop-web", 2, timeout=30, server_id=sid)
        assert evt["type"] == "evt.route.removed" and evt["data"]["server_id"] == sid, evt
        await _until(server.address, "shop.test", 404)
        assert not (dynamic / "shop-web.yml").exists()
        evt = await _apply(client, "shop-web", ["shop.test"], [f"http://{app}:8080"], 3, sid)
        assert evt["type"] == "evt.route.applied", evt
        assert await _until(server.address, "shop.test", 200) == "served on the server"

        # proxy-sync restarts: the server keeps serving; the server's files are reconciled on first use
        await svc.stop()
        stale = Route.create("gone-route", ["gone.test"], [f"http://{app}:8080"], "web", 1)
        for name, text in ((stale.file_name, render(stale)), ("operator.yml", json.dumps(OPERATOR))):
            (remote_root / name).write_text(text)  # then renamed in, as proxy-sync writes (operator.yml: not ours)
            (remote_root / name).rename(dynamic / name)
        await _until(server.address, "gone.test", 200)
        svc = await ProxySync(settings).start()
        assert await _until(server.address, "shop.test", 200) == "served on the server"
        evt = await _apply(client, "shop-api", ["api.shop.test"], [f"http://{app}:8080"], 1, sid)
        assert evt["type"] == "evt.route.applied", evt
        assert not (dynamic / stale.file_name).exists() and (dynamic / "operator.yml").exists()
        await _until(server.address, "gone.test", 404)
        assert await _until(server.address, "api.shop.test", 200) == "served on the server"
        assert await _until(server.address, "shop.test", 200) == "served on the server"

        # the server's Traefik container is gone: the next command finds its API silent and sets it up again
        server.docker("rm", "-f", "berth-traefik")
        await asyncio.sleep(RECHECK_S + 0.5)
        evt = await _apply(client, "shop-api", ["api.shop.test"], [f"http://{app}:8080"], 2, sid)
        assert evt["type"] == "evt.route.applied", evt
        assert await _until(server.address, "shop.test", 200) == "served on the server"

        # the server's Traefik stopped (as its engine leaves it after a crash): with no command, proxy-sync's
        # watch finds its API silent and starts it again
        server.docker("stop", "-t", "0", "berth-traefik")
        assert (await _get_or_error(server.address, "shop.test")) != (200, "served on the server")
        assert await _until(server.address, "shop.test", 200, timeout=30) == "served on the server"

        # a server proxy-sync never heard of
        evt = await _apply(client, "shop-web", ["shop.test"], ["http://x:1"], 9, "nosuchserver")
        assert evt["type"] == "evt.route.failed" and "nosuchserver" in evt["data"]["reason"], evt
        # a server not validated yet: nothing connects to it
        fresh = _changed(server, "fresh", 1, state="validating").model_copy(update={"host_key": None})
        await bus.publish(fresh)
        for _ in range(50):
            evt = await _apply(client, "shop-web", ["shop.test"], [f"http://{app}:8080"], 12, "fresh")
            if "not known" not in evt["data"]["reason"]:
                break
            client.events.clear()
            await asyncio.sleep(0.2)
        assert evt["type"] == "evt.route.failed" and "edge-1 (fresh) is validating" in evt["data"]["reason"], evt
        # a server that does not answer (nobody has its address)
        far = replace(server, host=250)
        await bus.publish(_changed(far, "far", 1))
        for _ in range(50):
            evt = await _apply(client, "shop-web", ["shop.test"], [f"http://{app}:8080"], 11, "far")
            if "not known" not in evt["data"]["reason"]:
                break
            client.events.clear()
            await asyncio.sleep(0.2)
        assert evt["type"] == "evt.route.failed" and "edge-1 (far) is not reachable" in evt["data"]["reason"], evt
        assert await _until(server.address, "shop.test", 200) == "served on the server"  # the others are as they were

        # removed: its routes are forgotten (the hosts are free for another route id), commands refused
        await bus.publish(_changed(server, sid, 2, state="removed"))
        deadline = time.monotonic() + 20
        while True:
            evt = await _apply(client, "other-web", ["api.shop.test"], ["http://127.0.0.1:9"], 1, "local")
            if evt["type"] == "evt.route.applied":
                break
            assert "already routed" in evt["data"]["reason"] and time.monotonic() < deadline, evt
            client.events.clear()
            await asyncio.sleep(0.2)
        evt = await _apply(client, "shop-web", ["shop.test"], [f"http://{app}:8080"], 10, sid)
        assert evt["type"] == "evt.route.failed" and "has been removed" in evt["data"]["reason"], evt
    except BaseException:
        with contextlib.suppress(Exception):  # what the server's Traefik said, for the failure's report
            print(server.docker("logs", "--tail", "50", "berth-traefik"))
        raise
    finally:
        await client.close()
        await svc.stop()
        local.stop()
        server.docker("rm", "-f", app, "berth-traefik", "berth-traefik-net")
