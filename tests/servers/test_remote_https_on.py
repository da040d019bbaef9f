"""HTTPS turned on for a remote server drops no HTTP request: the holder publishes the websecure port from
its first creation (the port is known, Traefik serves HTTP only), so turning HTTPS on changes only Traefik's
static file and Traefik is replaced as for a new version, under steady GETs and POSTs through port 80
(connection per request and kept-alive). The holder stays the same container; HTTPS then answers with the
uploaded certificate. Turning it off again is the same kind of replacement. The holder's and the Traefiks'
bodies are exact data."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import ssl
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

import pytest

from berth_common import image_delivery, ssh
from berth_common import traefik as tr
from berth_common.docker import DockerEngines, local_engine
from berth_common.docker.remote import connect_server
from berth_proxy_sync.adapters import server_proxy
from berth_proxy_sync.adapters.remote_files import RemoteDynamicDir
from berth_proxy_sync.domain import proxy_handover as ph
from berth_proxy_sync.domain.routes import SENTINEL_FILE, render_sentinel
from tests.proxy.acme_support import cert_pair
from tests.proxy.support import API_PASSWORD
from tests.scheduler import apps
from tests.servers.test_placement_e2e import HOST, ServerLoad, _served
from tests.servers.test_remote_proxy import LOCAL, _import_traefik
from tests.support.images import busybox_image
from tests.support.open_loop import OpenLoop
from tests.support.testservers import running_servers

TAG = tr.image_tag("3.7.15")
T = TypeVar("T")
RATE = 50.0  # kept-alive requests per second, open loop (besides the connection-per-request load)


def test_the_holder_publishes_the_websecure_port_while_traefik_serves_http_only() -> None:
    holder = ph.holder_create(TAG, 80, websecure_port=443).body
    assert holder is not None
    assert holder["ExposedPorts"] == {"80/tcp": {}, "443/tcp": {}}
    assert holder["HostConfig"]["PortBindings"] == {
        "80/tcp": [{"HostIp": "", "HostPort": "80"}],
        "443/tcp": [{"HostIp": "", "HostPort": "443"}],
    }
    # the same holder is the wanted one whether Traefik serves HTTPS or not: only the Traefik differs
    info = {"HostConfig": holder["HostConfig"], "NetworkSettings": {"Networks": {"berth": {"NetworkID": "n1"}}}}
    assert ph.holder_problem(info, 80, "n1", websecure_port=443) is None
    plain = ph.traefik_create(ph.NEXT, TAG, "/srv/t/s1", "0a1b").body
    secure = ph.traefik_create(ph.NEXT, TAG, "/srv/t/s1", "0a1b", websecure_port=443).body
    assert plain is not None and secure is not None
    assert plain["HostConfig"]["Binds"] == [
        "/srv/t/s1/traefik.yml:/etc/traefik/traefik.yml:ro",
        "/srv/t/s1/dynamic:/etc/traefik/dynamic:ro",
    ]
    assert secure["HostConfig"]["Binds"] == plain["HostConfig"]["Binds"] + [
        "/srv/t/s1/acme:/etc/traefik/acme",
        "/srv/t/s1/certs:/etc/traefik/certs:ro",
    ]
    assert plain["HostConfig"]["NetworkMode"] == secure["HostConfig"]["NetworkMode"] == "container:berth-traefik-net"
    # a holder made before the websecure port was known publishes port 80 only: it is made again, once
    early = ph.holder_create(TAG, 80).body
    assert early is not None
    info["HostConfig"] = early["HostConfig"]
    assert ph.holder_problem(info, 80, "n1", websecure_port=443) == "is not published on ports 80 and 443"


def _https_get(address: str, ca: str) -> tuple[int, str]:
    """``GET /`` for ``HOST`` on the server's port 443, the certificate checked against ``ca``."""
    context = ssl.create_default_context(cadata=ca)
    try:
        with socket.create_connection((address, 443), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname=HOST) as tls:
                tls.sendall(f"GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
                resp = http.client.HTTPResponse(tls)
                resp.begin()
                return resp.status, resp.read().decode(errors="replace").strip()
    except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
        return -1, f"{type(exc).__name__}: {exc}"


async def _under_load(address: str, change: Awaitable[T]) -> T:
    """``change`` awaited under steady GETs and POSTs through the server's port 80 (a connection per request,
    and kept-alive connections as browsers keep them); asserts that every request was answered by the app."""
    load = ServerLoad(address).start()
    kept = OpenLoop(80, HOST, RATE, address=address)
    kept_run = asyncio.create_task(kept.run())
    try:
        await asyncio.sleep(1)
        started = time.monotonic()
        done = await change
        took = time.monotonic() - started
        await asyncio.sleep(1)
    finally:
        results = await asyncio.to_thread(load.stop)
        kept.stop.set()
        await kept_run
    print(f"changed in {took:.1f}s under {len(results)} + {kept.sent} HTTP requests")
    assert len(results) > 100, len(results)
    assert load.errors == [], load.errors[:10]
    assert kept.sent > 10 * RATE and kept.errors == [], (kept.sent, kept.errors[:10])
    assert {text.strip() for text in kept.seen} == {"v1"}
    return done


def _state(server, name: str) -> str:
    return str(server.docker("inspect", "-f", "{{.Id}} {{.Config.Image}} {{.State.Running}}", name)).strip()


@pytest.mark.slow
async def test_turning_https_on_drops_no_http_request_and_https_answers(tmp_path: Path) -> None:
    await _import_traefik(TAG)
    ca, chain, key = cert_pair([HOST])
    with running_servers(1) as [server]:
        server.load_image(busybox_image())
        target = server.ssh_target()
        pool = ssh.SshPool(tmp_path / "s")
        engines = DockerEngines(local_engine(None))
        try:
            await connect_server(engines, pool, "srv", target)
            await image_delivery.deliver_image(LOCAL, await pool.docker_socket("srv", target), TAG)
            server.docker("network", "create", "--label", "berth.managed=true", "berth")
            server.docker(
                "run", "-d", "--name", "shop-web-1", "--network", "berth", "--network-alias", "web-shop",
                busybox_image(), *apps.web("v1"),
            )  # fmt: skip
            conn = await pool.connection("srv", target)
            root = str(server.root / "traefik")
            shop = {"loadBalancer": {"servers": [{"url": "http://web-shop:8080"}]}}

            async def ensure(https: bool) -> RemoteDynamicDir:
                _, files = await server_proxy.ensure(
                    engines.api("srv"), conn, root=root, server_id="srv", image=TAG, binary=Path("/nonexistent"),
                    web_port=80, api_password=API_PASSWORD, ready_timeout_s=10, websecure_port=443, https=https,
                )  # fmt: skip
                await files.write(SENTINEL_FILE, render_sentinel(API_PASSWORD), sentinel=True)
                route = {"rule": f"Host(`{HOST}`)", "entryPoints": ["web"], "service": "shop"}
                await files.write(
                    "shop.yml", json.dumps({"http": {"routers": {"shop": route}, "services": {"shop": shop}}})
                )
                return files

            await ensure(https=False)  # HTTP only; the holder publishes 443 already
            await _served(server.address, "v1")
            assert "443/tcp" in server.docker("port", ph.HOLDER)
            assert (await asyncio.to_thread(_https_get, server.address, ca))[0] == -1  # nothing serves HTTPS yet
            holder, plain = _state(server, ph.HOLDER), _state(server, "berth-traefik")

            files = await _under_load(server.address, ensure(https=True))  # HTTPS turned on
            assert _state(server, ph.HOLDER) == holder  # the same holder published the ports all along
            secure = _state(server, "berth-traefik")
            assert secure.split()[0] != plain.split()[0] and secure.endswith(" true"), (plain, secure)
            names = server.docker("ps", "-a", "--format", "{{.Names}}").split()
            assert sorted(names) == ["berth-traefik", "berth-traefik-net", "shop-web-1"], names

            # HTTPS answers, with the uploaded certificate (as proxy-sync writes one to the certs folder)
            async with conn.start_sftp_client() as sftp:
                for name, text in (("shop.crt", chain), ("shop.key", key)):
                    async with sftp.open(f"{root}/srv/certs/{name}", "w") as fh:
                        await fh.write(text)
            pair = {"certFile": f"{tr.CERTS_DIR}/shop.crt", "keyFile": f"{tr.CERTS_DIR}/shop.key"}
            route = {"rule": f"Host(`{HOST}`)", "entryPoints": ["websecure"], "service": "shop", "tls": {}}
            tls = {"http": {"routers": {"shop-tls": route}}, "tls": {"certificates": [pair]}}  # shop: in shop.yml
            await files.write("shop-tls.yml", json.dumps(tls))
            deadline = time.monotonic() + 30
            while (got := await asyncio.to_thread(_https_get, server.address, ca)) != (200, "v1"):
                assert time.monotonic() < deadline, got
                await asyncio.sleep(0.2)

            # HTTPS turned off again: the same kind of replacement; port 443 stays published, nothing serves it
            await _under_load(server.address, ensure(https=False))
            assert _state(server, ph.HOLDER) == holder
            assert _state(server, "berth-traefik").split()[0] != secure.split()[0]
            assert (await asyncio.to_thread(_https_get, server.address, ca))[0] == -1
        finally:
            await engines.close()
            await pool.close()
