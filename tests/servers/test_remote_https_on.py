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
from pathlib import Path

import pytest

from berth_common import traefik as tr
from berth_proxy_sync.domain import proxy_handover as ph
from tests.proxy.acme_support import cert_pair
from tests.servers.test_placement_e2e import HOST, _served
from tests.support.server_traefik import shop_server, under_load

TAG = tr.default_image()  # the one tests.support.images.traefik_image makes


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


@pytest.mark.slow
async def test_turning_https_on_drops_no_http_request_and_https_answers(tmp_path: Path) -> None:
    ca, chain, key = cert_pair([HOST])
    async with shop_server(tmp_path) as shop:
        server, root = shop.server, shop.root
        await shop.ensure(TAG, websecure_port=443, https=False)  # HTTP only; the holder publishes 443 already
        await _served(server.address, "v1")
        assert "443/tcp" in server.docker("port", ph.HOLDER)
        assert (await asyncio.to_thread(_https_get, server.address, ca))[0] == -1  # nothing serves HTTPS yet
        holder, plain = shop.state(ph.HOLDER), shop.state("berth-traefik")

        # HTTPS turned on
        files = await under_load(
            server.address, shop.ensure(TAG, websecure_port=443, https=True), requests=100, kept_seconds=10
        )
        assert shop.state(ph.HOLDER) == holder  # the same holder published the ports all along
        secure = shop.state("berth-traefik")
        assert secure.split()[0] != plain.split()[0] and secure.endswith(" true"), (plain, secure)
        names = server.docker("ps", "-a", "--format", "{{.Names}}").split()
        assert sorted(names) == ["berth-traefik", "berth-traefik-net", "shop-web-1"], names

        # HTTPS answers, with the uploaded certificate (as proxy-sync writes one to the certs folder)
        async with shop.conn.start_sftp_client() as sftp:
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
        await under_load(
            server.address, shop.ensure(TAG, websecure_port=443, https=False), requests=100, kept_seconds=10
        )
        assert shop.state(ph.HOLDER) == holder
        assert shop.state("berth-traefik").split()[0] != secure.split()[0]
        assert (await asyncio.to_thread(_https_get, server.address, ca))[0] == -1
