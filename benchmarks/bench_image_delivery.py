"""Image delivery to a server: over SSH without a registry, and through a registry, against a plain local
``docker save | docker load`` in the same run.

One image (the locally made Debian + Python base, about 260 MB) goes to a namespace test server (its own
dockerd and sshd, see ``tests/support/testservers.py``):

- ``save_load_ssh_s``: Berth's way without a registry (``berth_common.image_delivery``): the control
  plane's engine's save stream loaded into the server's engine through its SSH-forwarded socket.
- ``registry_push_pull_s``: pushed from the control plane's engine to a ``docker-registry`` on loopback,
  then pulled by the server's engine from the same registry storage served on the test network's address.
- ``docker_save_load_local_s``: the baseline: the same save stream loaded back into the same local engine
  under another tag (no network, no SSH).

Each is the median of ``REPS`` runs; the image is removed from the target before each run.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from berth_cli import baseimages
from berth_common import image_delivery, ssh
from tests.support.registry import Registry
from tests.support.testservers import make_net, remove_net, start_server, stop_server

NAME = "image_delivery"
GOALS: dict[str, tuple[str, float]] = {}
REPS = 3
LOCAL_SOCKET = "/var/run/docker.sock"


def _docker(*args: str, host: str | None = None, timeout: float = 600) -> str:
    argv = ["docker", *(["-H", host] if host else []), *args]
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=timeout).stdout


def _rmi(ref: str, host: str | None = None) -> None:
    subprocess.run(["docker", *(["-H", host] if host else []), "rmi", "-f", ref], capture_output=True, check=False)


def _local_save_load(image: str) -> float:
    """``docker save IMAGE | docker load`` into the same engine (the baseline)."""
    _rmi(image + "-copy")
    t0 = time.monotonic()
    save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
    subprocess.run(["docker", "load", "-q"], stdin=save.stdout, capture_output=True, check=True)
    save.wait()
    return time.monotonic() - t0


async def _over_ssh(pool: ssh.SshPool, target: ssh.SshTarget, image: str, server_host: str) -> float:
    _rmi(image, server_host)
    remote = await pool.docker_socket("bench", target)
    t0 = time.monotonic()
    await image_delivery.deliver_image(LOCAL_SOCKET, remote, image)
    return time.monotonic() - t0


def _through_registry(image: str, push: Registry, pull: Registry, server_host: str, storage: Path) -> float:
    """Push and pull with an empty registry and no copy on the server: every layer travels both ways."""
    pushed, pulled = f"{push.host}/bench/python:1", f"{pull.host}/bench/python:1"
    _rmi(pulled, server_host)
    shutil.rmtree(storage / "docker", ignore_errors=True)
    _docker("tag", image, pushed)
    t0 = time.monotonic()
    _docker("push", "-q", pushed)
    _docker("pull", "-q", pulled, host=server_host)
    elapsed = time.monotonic() - t0
    _rmi(pushed)
    return elapsed


async def run() -> dict[str, Any]:
    baseimages.ensure_base_images([baseimages.PYTHON_IMAGE])
    image = baseimages.PYTHON_IMAGE
    size = json.loads(_docker("image", "inspect", image))[0]["Size"]
    net = make_net()
    root = Path(tempfile.mkdtemp(prefix="berth-bench-registry-"))
    storage = root / "push" / "storage"
    push = Registry(root / "push").start()
    pull = Registry(root / "pull", bind=net.gateway, storage=storage).start()
    server = start_server(net, 2, insecure_registries=(pull.host,))
    pool = ssh.SshPool()
    try:
        key = server.host_key.export_public_key("openssh").decode().strip()
        target = ssh.SshTarget(server.address, 22, "root", server.private_key_pem, key)
        samples: dict[str, list[float]] = {"ssh": [], "registry": [], "local": []}
        for _ in range(REPS):
            samples["local"].append(await asyncio.to_thread(_local_save_load, image))
            samples["ssh"].append(await _over_ssh(pool, target, image, server.docker_host))
            samples["registry"].append(
                await asyncio.to_thread(_through_registry, image, push, pull, server.docker_host, storage)
            )
        med = {k: round(statistics.median(v), 3) for k, v in samples.items()}
        return {
            "image_mb": round(size / 1e6, 1),
            "save_load_ssh_s": med["ssh"],
            "registry_push_pull_s": med["registry"],
            "docker_save_load_local_s": med["local"],
            "ssh_to_local_ratio": round(med["ssh"] / med["local"], 2),
            "samples_s": {k: [round(x, 3) for x in v] for k, v in samples.items()},
        }
    finally:
        await pool.close()
        stop_server(server)
        push.stop()
        pull.stop()
        remove_net(net)
        shutil.rmtree(root, ignore_errors=True)
        _rmi(image + "-copy")
