"""Ports a compose application publishes on its server, through the real scheduler and the local engine: a TCP
echo service (busybox ``nc``) and a UDP one (python) answer on the server's ports they publish; a changed
definition recreates the service (its old container stops before the new one binds the port: side by side
the new one could not start), and an unchanged one keeps its container, port and all."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess

import pytest

from berth_cli.components import free_port
from tests.support.images import python_image

pytestmark = [pytest.mark.docker, pytest.mark.slow]

UDP_ECHO = (
    "import socket\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "s.bind(('', 7001))\n"
    "while True:\n"
    "    data, peer = s.recvfrom(2048)\n"
    "    s.sendto(data, peer)\n"
)


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spec(busybox: str, tcp: int, udp: int, mode: str = "1") -> dict:
    return {
        "name": "relay",
        "source": {"kind": "image", "image": busybox},
        "private_network": True,
        "services": [
            {
                "kind": "worker",
                "name": "echo",
                "command": ["nc", "-ll", "-p", "7000", "-e", "cat"],
                "entrypoint": ["busybox"],
                "env": [{"name": "MODE", "value": mode}],
                "published_ports": [{"target": 7000, "published": tcp}],
            },
            {
                "kind": "worker",
                "name": "uecho",
                "image": {"kind": "image", "image": python_image()},
                "command": ["python3", "-u", "-c", UDP_ECHO],
                "published_ports": [{"target": 7001, "published": udp, "protocol": "udp"}],
            },
        ],
        "stop_timeout_s": 1,
    }


def _tcp_echo(port: int, text: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        s.sendall(text)
        return s.recv(len(text))


def _udp_echo(port: int, text: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        for _ in range(10):  # the first datagram may come before the service reads
            s.sendto(text, ("127.0.0.1", port))
            try:
                return s.recvfrom(2048)[0]
            except TimeoutError:
                continue
    return b""


async def _echoes(tcp: int, udp: int, text: bytes) -> None:
    for _ in range(50):
        try:
            if await asyncio.to_thread(_tcp_echo, tcp, text) == text:
                break
        except OSError:
            pass
        await asyncio.sleep(0.1)
    assert await asyncio.to_thread(_tcp_echo, tcp, text) == text
    assert await asyncio.to_thread(_udp_echo, udp, text) == text


def _containers(app_id: str, service: str) -> list[str]:
    out = subprocess.run(
        [
            "docker",
            "ps",
            "-q",
            "--no-trunc",
            "--filter",
            f"label=berth.app={app_id}",
            "--filter",
            f"label=berth.service={service}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return sorted(out)


async def test_published_ports_answer_and_a_changed_service_is_recreated(platform, busybox, app_id):
    tcp, udp = free_port(), _free_udp_port()
    dep = await platform.deploy(app_id, _spec(busybox, tcp, udp), drain_grace_s=0.2)
    assert (await platform.wait(dep, timeout=90))["type"] == "evt.deployment.succeeded", platform.steps(dep)
    await _echoes(tcp, udp, b"hello berth\n")
    (first,) = _containers(app_id, "echo")
    info = json.loads(subprocess.run(["docker", "inspect", first], capture_output=True, text=True).stdout)[0]
    assert info["HostConfig"]["PortBindings"] == {"7000/tcp": [{"HostIp": "", "HostPort": str(tcp)}]}

    # a changed definition: the old container stops first, so the new one binds the port
    dep = await platform.deploy(app_id, _spec(busybox, tcp, udp, mode="2"), drain_grace_s=0.2)
    assert (await platform.wait(dep, timeout=90))["type"] == "evt.deployment.succeeded", platform.steps(dep)
    (second,) = _containers(app_id, "echo")
    assert second != first
    await _echoes(tcp, udp, b"again\n")

    # the same definition: the running container is kept, the port never closes
    (kept,) = _containers(app_id, "uecho")
    dep = await platform.deploy(app_id, _spec(busybox, tcp, udp, mode="2"), drain_grace_s=0.2)
    assert (await platform.wait(dep, timeout=90))["type"] == "evt.deployment.succeeded", platform.steps(dep)
    assert (_containers(app_id, "echo"), _containers(app_id, "uecho")) == ([second], [kept])
    await _echoes(tcp, udp, b"kept\n")


async def test_a_port_taken_on_the_server_fails_the_deployment_naming_it(platform, busybox, app_id):
    with socket.socket() as held:
        held.bind(("0.0.0.0", 0))
        held.listen()
        tcp = held.getsockname()[1]
        spec = _spec(busybox, tcp, _free_udp_port())
        spec["services"] = spec["services"][:1]
        dep = await platform.deploy(app_id, spec, drain_grace_s=0.2)
        done = await platform.wait(dep, timeout=60)
    assert done["type"] == "evt.deployment.failed", done
    assert f"service echo: a port it publishes ({tcp}/tcp) is taken on server local" in done["data"]["reason"], done
