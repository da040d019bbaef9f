"""A compose application publishing ports, through the REST API and the real processes of `berth up` (issue 14):
for a platform whose administrator allows published ports (BERTH_PUBLISHED_PORTS_ALLOW), a TCP echo service
(busybox ``nc``) with ``ports: ["<port>:7000"]`` answers on the server's port once deployed; a second
application asking the same port is refused naming it; once the application is removed, the port is closed and
free for another application."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import httpx
import pytest

from berth_cli.components import free_port
from tests.e2e.conftest import make_platform
from tests.e2e.test_deploy_flow import wait_deployment
from tests.support.images import busybox_image

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def platform(tmp_root: Path):
    gen = make_platform(tmp_root / "platform-published-ports")
    p = next(gen)
    p.env["BERTH_PUBLISHED_PORTS_ALLOW"] = '["1024-65535"]'
    p.up()
    yield p
    gen.close()


def _compose(image: str, port: int) -> str:
    return (
        "services:\n  echo:\n"
        f"    image: {image}\n"
        "    entrypoint: [busybox]\n"
        "    command: [nc, -ll, -p, '7000', -e, cat]\n"
        f"    ports: ['{port}:7000']\n"
    )


def _echo(port: int, text: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        s.sendall(text)
        return s.recv(len(text))


async def test_a_published_tcp_port_echoes_and_is_one_applications(platform, unique: str):
    base, port = busybox_image(), free_port()
    token = platform.paths.admin_token.read_text().strip()
    api = httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{platform.ports['api']}", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    try:
        r = await api.post("/v1/projects", json={"name": f"relay-{unique}"})
        assert r.status_code == 201, r.text
        env_id = r.json()["environments"][0]["id"]
        body = {"name": "relay", "compose": {"inline": _compose(base, port)}, "stop_timeout_s": 1}
        r = await api.post(f"/v1/environments/{env_id}/applications", json=body)
        assert r.status_code == 201, r.text
        app_id = r.json()["id"]
        (echo,) = r.json()["compose"]["translated"]["services"]
        assert echo["published_ports"] == [{"target": 7000, "published": port, "protocol": "tcp"}]

        r = await api.post(f"/v1/applications/{app_id}/deployments", json={"options": {"drain_grace_s": 0.2}})
        assert r.status_code == 202, r.text
        dep = await wait_deployment(api, r.json()["id"])
        assert dep["status"] == "succeeded", dep
        assert await asyncio.to_thread(_echo, port, b"hello berth\n") == b"hello berth\n"

        r = await api.post(f"/v1/environments/{env_id}/applications", json={**body, "name": "relay-2"})
        assert r.status_code == 409, r.text
        assert f"the port {port}/tcp of server local is published by the application relay" in r.text

        r = await api.delete(f"/v1/applications/{app_id}", params={"drain_grace_s": 0.2})
        assert r.status_code == 202, r.text
        deadline = time.monotonic() + 60
        while (await api.get(f"/v1/applications/{app_id}")).status_code != 404:
            assert time.monotonic() < deadline, "the application was not removed in 60 s"
            await asyncio.sleep(0.3)
        with pytest.raises(OSError):
            await asyncio.to_thread(_echo, port, b"gone\n")
        r = await api.post(f"/v1/environments/{env_id}/applications", json={**body, "name": "relay-2"})
        assert r.status_code == 201, r.text
    finally:
        await api.aclose()
