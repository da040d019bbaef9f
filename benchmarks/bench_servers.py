"""One prebuilt image deployed to 1, 2 and 4 servers in the same run: servers are rolled out in parallel.

A platform (``berth up``, split mode) and four namespace test servers (each its own dockerd and sshd, see
``tests/support/testservers.py``), added through the REST API by key (validated over SSH by the scheduler,
host key pinned at first contact). Three applications of the same image (busybox httpd) are placed on the
first server, the first two and all four (one replica per server). Each is deployed once to warm up (each
server's Traefik is made by proxy-sync on first use; the image is already on every server), then
redeployed ``REPS`` times, interleaved; a deployment's time is from the API's 202 to its ``succeeded``
(every server's new replicas ready and routed, the old ones stopped; drain grace 0).

- ``deploy_1_s``, ``deploy_2_s``, ``deploy_4_s``: median redeploy time on 1, 2 and 4 servers.
- ``ratio_4_to_1``: ``deploy_4_s / deploy_1_s``; goal <= 1.3 (four servers take about as long as one).
- ``floor_4_to_1``: the engines' own floor in the same run, without Berth: one plain container started on
  each of 1 and 4 servers at once (``docker run`` against each server's engine) until its first HTTP 200, as
  a ratio of the medians. The test servers share the machine's cores, so four engines starting containers at
  once are slower than one by this much whatever the control plane does; ``ratio_over_floor`` is
  ``ratio_4_to_1 / floor_4_to_1``.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import urllib.request
import uuid
from typing import Any

from benchmarks.support.platform import SERVE_CONTENT, Api, BerthUp, busybox_image
from tests.support.testservers import TestServer, running_servers

NAME = "servers"
GOALS: dict[str, tuple[str, float]] = {"ratio_4_to_1": ("<=", 1.3)}
REPS = 3
SIZES = (1, 2, 4)


async def _add_servers(api: Api, servers: list[TestServer]) -> list[str]:
    """Add each server by key; wait until every validation found it ready. Their names."""
    names = []
    for i, server in enumerate(servers):
        body = {"name": f"bench-{i + 1}", "host": server.address, "port": 22, "user": "root"}
        await api._call("POST", "/v1/servers", 201, {**body, "private_key": server.private_key_pem})
        names.append(body["name"])
    deadline = time.monotonic() + 120
    while True:
        listed = await api._call("GET", "/v1/servers", 200)
        states = {s["name"]: s["state"] for s in listed if s["name"] in names}
        if all(states.get(n) == "ready" for n in names):
            return names
        if time.monotonic() > deadline:
            raise RuntimeError(f"servers not validated: {states}")
        await asyncio.sleep(0.5)


async def _app(api: Api, env_id: str, name: str, servers: list[str]) -> dict[str, Any]:
    body = {
        "name": name,
        "source": {"kind": "image", "image": busybox_image()},
        "services": [
            {
                "kind": "web",
                "name": "web",
                "port": 8080,
                "health_path": "/",
                "replicas": len(servers),
                "command": ["sh", "-c", SERVE_CONTENT],
                "servers": servers,
            }
        ],
        "env": [{"name": "CONTENT", "value": name}],
        "stop_timeout_s": 2,
    }
    app: dict[str, Any] = await api._call("POST", f"/v1/environments/{env_id}/applications", 201, body)
    api.platform.apps.append(app["id"])
    return app


async def _deploy(api: Api, app_id: str, timeout: float = 300) -> float:
    """Seconds from the 202 to ``succeeded`` (raises on any other end)."""
    t0 = time.monotonic()
    dep = await api.deploy(app_id, drain_grace_s=0)
    deadline = t0 + timeout
    while True:
        got = await api.deployment(dep["id"])
        if got["status"] == "succeeded":
            return time.monotonic() - t0
        if got["status"] in ("failed", "cancelled") or time.monotonic() > deadline:
            raise RuntimeError(f"deployment {dep['id']} ended {got['status']}: {got.get('reason') or got}")
        await asyncio.sleep(0.02)


FLOOR_PORT = 18090


def _plain_start(server: TestServer, image: str, timeout: float = 60) -> None:
    """``docker run`` one busybox httpd on ``server``'s engine, published on its address, until a 200."""
    name = f"berth-bench-floor-{uuid.uuid4().hex[:8]}"
    server.docker(
        "run", "-d", "--name", name, "-p", f"{FLOOR_PORT}:8080", "-e", "CONTENT=floor", image, "sh", "-c", SERVE_CONTENT
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"http://{server.address}:{FLOOR_PORT}/", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the plain container on {server.name} did not answer")
            time.sleep(0.02)
    finally:
        server.docker("rm", "-f", name)


async def _floor(servers: list[TestServer], image: str) -> dict[int, float]:
    """Median seconds to start one plain container on each of the first n servers at once."""
    times: dict[int, list[float]] = {n: [] for n in SIZES}
    for _ in range(REPS):
        for n in SIZES:
            t0 = time.monotonic()
            await asyncio.gather(*(asyncio.to_thread(_plain_start, s, image) for s in servers[:n]))
            times[n].append(time.monotonic() - t0)
    return {n: statistics.median(t) for n, t in times.items()}


async def _measure(platform: BerthUp, servers: list[TestServer]) -> dict[str, Any]:
    api = Api(platform)
    try:
        names = await _add_servers(api, servers)
        env_id = await api.environment("bench-servers")
        apps = {n: await _app(api, env_id, f"on-{n}", names[:n]) for n in SIZES}
        warm = {n: round(await _deploy(api, apps[n]["id"]), 2) for n in SIZES}
        times: dict[int, list[float]] = {n: [] for n in SIZES}
        for _ in range(REPS):
            for n in SIZES:
                times[n].append(await _deploy(api, apps[n]["id"]))
    finally:
        await api.close()
    floor = await _floor(servers, busybox_image())
    med = {n: statistics.median(t) for n, t in times.items()}
    ratio, floor_ratio = med[4] / med[1], floor[4] / floor[1]
    return {
        "deploy_1_s": round(med[1], 3),
        "deploy_2_s": round(med[2], 3),
        "deploy_4_s": round(med[4], 3),
        "ratio_4_to_1": round(ratio, 3),
        "floor_s": {str(n): round(t, 3) for n, t in floor.items()},
        "floor_4_to_1": round(floor_ratio, 3),
        "ratio_over_floor": round(ratio / floor_ratio, 3),
        "first_deploy_s": {str(n): w for n, w in warm.items()},
        "runs_s": {str(n): [round(x, 3) for x in t] for n, t in times.items()},
    }


def run() -> dict[str, Any]:
    image = busybox_image()
    with running_servers(max(SIZES)) as servers:
        for server in servers:
            server.load_image(image)
        traefik_root = tempfile.mkdtemp(prefix="berth-bench-servers-")
        with BerthUp(extra_env={"BERTH_SERVER_TRAEFIK_ROOT": traefik_root}) as platform:
            try:
                return asyncio.run(_measure(platform, servers))
            finally:
                for server in servers:  # what the platform made there (the servers go away anyway)
                    ids = server.docker("ps", "-aq", "--filter", "label=berth.managed=true").split()
                    if ids:
                        server.docker("rm", "-f", *ids)
