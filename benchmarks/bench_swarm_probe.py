"""What one readiness check of a Swarm task costs: over SSH on its node, against over the overlay probe.

One namespace test server (its own dockerd and sshd, ``tests/support/testservers.py``) reached as Berth
reaches any server: one pooled SSH connection (``berth_common.ssh.SshPool``), the engine on its forwarded
socket. On it, a busybox httpd on a bridge network (standing for the Swarm's overlay: what differs is the
path to it, not the network) and, on the same network, the overlay probe made by
``adapters/swarm_overlay.OverlayProbe`` on that forwarded socket. Each check is the readiness check's own
GET (``adapters/remote_readiness.get_seen``): through the SSH connection (``direct-tcpip``, how a task on
a node Berth reaches is checked), or through the overlay probe (how a task on a node it does not reach is
checked). ``CHECKS`` of each, interleaved one by one, after a warm-up; then ``LOOKS`` looks of three tasks at
once, as a rollout's look checks a service's tasks.

- ``ssh_check_ms``, ``overlay_check_ms``: the median check, one at a time.
- ``overlay_over_ssh``: their ratio; goal <= 2 (a task on a node Berth does not reach is checked about
  as fast as one on a node it reaches).
- ``exec_check_ms``: the same GET through one ``nc`` Docker exec per check in the same probe container
  (how the overlay probe checked before its relay), interleaved with the others, as the baseline.
- ``overlay_look_3_ms``, ``ssh_look_3_ms``, ``exec_look_3_ms``: the median look at three tasks at once.
- ``overlay_look_3_over_ssh``: their ratio over the overlay probe and over SSH; goal <= 2 (the relay runs a
  look's checks together, as SSH channels do).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.support.platform import busybox_image
from berth_common import ssh
from berth_common.docker import API_VERSION
from berth_scheduler.adapters.engine_exec import EngineExec
from berth_scheduler.adapters.remote_readiness import get_seen
from berth_scheduler.adapters.swarm_overlay import OverlayProbe
from berth_scheduler.domain import swarm_overlay
from tests.support.testservers import TestServer, running_servers

NAME = "swarm"
GOALS: dict[str, tuple[str, float]] = {"overlay_over_ssh": ("<=", 2.0), "overlay_look_3_over_ssh": ("<=", 2.0)}
CHECKS = 20
LOOKS = 20
TIMEOUT_S = 3.0
SERVE = "mkdir -p /www && echo probed > /www/index.html && exec httpd -f -p 8080 -h /www"


class _ExecPerCheck:
    """The baseline: one ``nc`` exec per check in the probe container (``open_connection`` shaped)."""

    def __init__(self, socket: str, container: str) -> None:
        self.socket, self.container = socket, container

    async def open_connection(self, address: str, port: int) -> tuple[asyncio.StreamReader, Any]:
        ex = EngineExec(self.socket, API_VERSION, self.container, ["nc", "-w", "3", address, str(port)], feed=True)
        await ex.__aenter__()
        reader = asyncio.StreamReader()

        async def out() -> None:
            async for chunk in ex.chunks():
                reader.feed_data(chunk)
            reader.feed_eof()

        pump = asyncio.create_task(out())

        class Writer:
            def write(self, data: bytes) -> None:
                assert ex._writer is not None
                ex._writer.write(data)

            def close(self) -> None:
                pump.cancel()

            async def wait_closed(self) -> None:
                await ex.__aexit__(None, None, None)

        return reader, Writer()


def _target(server: TestServer) -> ssh.SshTarget:
    key = server.host_key.export_public_key("openssh").decode().strip()
    return ssh.SshTarget(server.address, 22, "root", server.private_key_pem, key)


async def _timed(connection: Any, address: str) -> float:
    async def conn() -> Any:
        return connection

    t0 = time.perf_counter()
    seen = await get_seen(conn, address, 8080, "/", TIMEOUT_S)
    took = time.perf_counter() - t0
    if not seen.ok:
        raise RuntimeError(f"a check failed: {seen.text}")
    return took * 1000


async def _measure(server: TestServer, network: str, addresses: list[str], root: str) -> dict[str, Any]:
    pool = ssh.SshPool(Path(root))
    target = _target(server)
    try:
        socket = await pool.docker_socket(server.name, target)
        ssh_conn = await pool.connection(server.name, target)

        async def forwarded() -> str:
            return socket

        overlay = OverlayProbe(forwarded, network, timeout_s=TIMEOUT_S)
        await overlay.ensure()
        baseline = _ExecPerCheck(socket, swarm_overlay.probe_name(network))
        ways = {"ssh": ssh_conn, "overlay": overlay, "exec": baseline}
        for conn in ways.values():  # warm-up: connections, the probe's relay
            await _timed(conn, addresses[0])
        times: dict[str, list[float]] = {way: [] for way in ways}
        for _ in range(CHECKS):
            for way, conn in ways.items():
                times[way].append(await _timed(conn, addresses[0]))
        looks: dict[str, list[float]] = {way: [] for way in ways}
        for _ in range(LOOKS):
            for way in looks:
                t0 = time.perf_counter()
                await asyncio.gather(*(_timed(ways[way], a) for a in addresses))
                looks[way].append((time.perf_counter() - t0) * 1000)
        await overlay.aclose()
    finally:
        await pool.close()
    med = {way: statistics.median(t) for way, t in times.items()}
    look = {way: statistics.median(t) for way, t in looks.items()}
    return {
        "ssh_check_ms": round(med["ssh"], 1),
        "overlay_check_ms": round(med["overlay"], 1),
        "exec_check_ms": round(med["exec"], 1),
        "overlay_over_ssh": round(med["overlay"] / med["ssh"], 3),
        "overlay_look_3_ms": round(look["overlay"], 1),
        "ssh_look_3_ms": round(look["ssh"], 1),
        "exec_look_3_ms": round(look["exec"], 1),
        "overlay_look_3_over_ssh": round(look["overlay"] / look["ssh"], 3),
        "checks": CHECKS,
        "looks": LOOKS,
        "runs_ms": {way: [round(x, 1) for x in t] for way, t in times.items()},
        "looks_ms": {way: [round(x, 1) for x in t] for way, t in looks.items()},
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def run() -> dict[str, Any]:
    image = busybox_image()
    network = f"berth-bench-{uuid.uuid4().hex[:8]}"
    with running_servers(1) as (server,):
        server.load_image(image)
        server.docker("network", "create", network)
        addresses = []
        for i in range(3):
            name = f"bench-web-{i}"
            server.docker("run", "-d", "--name", name, "--network", network, image, "sh", "-c", SERVE)
            fmt = '{{(index .NetworkSettings.Networks "' + network + '").IPAddress}}'
            addresses.append(server.docker("inspect", "-f", fmt, name).strip())
        time.sleep(0.5)  # httpd starting
        root = os.path.join(str(server.root), "bench-ssh")
        os.makedirs(root, exist_ok=True)
        return asyncio.run(_measure(server, network, addresses, root))
