"""Compose applications: a 4-service compose file of local images deployed by Berth until its web host
answers 200 through Traefik, against ``docker compose up -d --wait`` of the same file in the same run.

The file (``support/compose_stack.py``): a db-like service with a named volume and a Docker healthcheck
(every 500 ms), a one-shot migration that waits for it to be healthy (``service_completed_successfully``
for the web), the web service (busybox httpd, its own image) and a worker that starts after the web.

Each Berth sample is a new application (so its first 200 can only come from this deployment, and its db
starts from an empty volume as compose's does): the clock runs from ``POST
/v1/applications/{id}/deployments`` until a GET through Traefik with the generated Host header answers 200
with the application's content (polled every 5 ms on a new connection). Each compose sample is ``docker
compose -p <project> up -d --wait`` of the same file, timed until the command returns (every container
running, the db healthy, the migration exited 0), then ``down -v``. The two are interleaved after one
warm-up of each; medians are compared. Berth does more on the way: its own readiness check of every
service (a worker counts as ready after running for a second) and the route written for Traefik.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.support.compose_stack import SERVICES, compose_file
from benchmarks.support.http import wait_status
from benchmarks.support.platform import DOCKER, Api, BerthUp, busybox_image, host_of
from berth_common.binaries import compose_binary

NAME = "compose"
GOALS = {"ratio": ("<=", 1.3)}
REPS = 5


def _compose(workdir: Path, project: str, *args: str) -> None:
    argv = [compose_binary(), "-p", project, "-f", str(workdir / "compose.yml"), *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False, cwd=workdir)
    if proc.returncode != 0:
        raise RuntimeError(f"docker compose {args[0]} failed: {proc.stderr.strip()[-1500:]}")


def compose_once(workdir: Path, project: str) -> float:
    """``docker compose up -d --wait`` of the file: seconds until it returned (then taken down)."""
    t0 = time.monotonic()
    try:
        _compose(workdir, project, "up", "-d", "--wait", "--quiet-pull")
        return time.monotonic() - t0
    finally:
        _compose(workdir, project, "down", "-v", "-t", "1")


async def berth_once(platform: BerthUp, api: Api, env_id: str, name: str, text: str) -> float:
    """A new compose application deployed: seconds from the deploy request to the first 200."""
    body = {"name": name, "compose": {"inline": text}, "hosts": [{"service": "web", "port": 8080}], "stop_timeout_s": 1}
    app = await api._call("POST", f"/v1/environments/{env_id}/applications", 201, body)
    platform.apps.append(app["id"])
    host = host_of(app)
    t0 = time.monotonic()
    first = asyncio.create_task(
        wait_status(platform.proxy_port, host, ok=lambda a: a.status == 200 and a.body.strip() == b"bench")
    )
    dep = await api.deploy(app["id"])
    try:
        took = await asyncio.wait_for(first, 120) - t0
    except TimeoutError:
        raise RuntimeError(f"no 200 within 120 s: {await api.deployment(dep['id'])}") from None
    return took


def _tag(base: str, tag: str) -> None:
    subprocess.run([DOCKER, "tag", base, tag], capture_output=True, check=True, timeout=60)


def _cleanup(apps: list[str], tag: str) -> None:
    """What the benchmark's applications leave once their containers are gone: networks, volumes, the tag."""
    for app in apps:
        subprocess.run([DOCKER, "network", "rm", f"berth-app-{app}"], capture_output=True, check=False, timeout=60)
        subprocess.run([DOCKER, "volume", "rm", f"berth-{app}-db-data"], capture_output=True, check=False, timeout=60)
    subprocess.run([DOCKER, "rmi", tag], capture_output=True, check=False, timeout=60)


async def measure(platform: BerthUp, base: str, web_image: str, reps: int = REPS) -> dict[str, Any]:
    pid = os.getpid()
    text = compose_file(web_image, base, "bench")
    api = Api(platform)
    workdir = Path(tempfile.mkdtemp(prefix="berth-bench-compose-"))
    (workdir / "compose.yml").write_text(text)
    try:
        env_id = await api.environment(f"bench-compose-{pid}")
        await berth_once(platform, api, env_id, "warmup", text)
        await asyncio.to_thread(compose_once, workdir, f"bench-compose-{pid}-warmup")
        berth_s, compose_s = [], []
        for i in range(reps):
            compose_s.append(round(await asyncio.to_thread(compose_once, workdir, f"bench-compose-{pid}-{i}"), 3))
            berth_s.append(round(await berth_once(platform, api, env_id, f"stack{i}", text), 3))
            await asyncio.sleep(0.5)  # the deployment's last steps finish before the next sample
    finally:
        await api.close()
        shutil.rmtree(workdir, ignore_errors=True)
    b_med, c_med = statistics.median(berth_s), statistics.median(compose_s)
    return {
        "services": SERVICES,
        "berth_s": round(b_med, 3),
        "compose_up_s": round(c_med, 3),
        "ratio": round(b_med / c_med, 3),
        "berth_samples_s": berth_s,
        "compose_samples_s": compose_s,
    }


async def run() -> dict[str, Any]:
    base = busybox_image()
    web_image = f"berth/bench-compose-{os.getpid()}:web"
    _tag(base, web_image)
    platform = await asyncio.to_thread(BerthUp().start)
    try:
        return await measure(platform, base, web_image)
    finally:
        await asyncio.to_thread(platform.stop)
        _cleanup(platform.apps, web_image)
