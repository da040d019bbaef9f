"""The baseline a deploy is compared with: ``docker run -d -p 127.0.0.1:PORT:8080`` of the same image and
command, until the first 200 on the published port."""

from __future__ import annotations

import asyncio
import time
import uuid

from benchmarks.support.http import wait_status
from benchmarks.support.platform import DOCKER, SERVE_CONTENT, remove_containers
from berth_cli.components import free_port


class DockerRuns:
    """Containers started by one benchmark run, all carrying one label (removed by ``cleanup``)."""

    def __init__(self, image: str) -> None:
        self.image = image
        self.label = f"berth.bench={uuid.uuid4().hex[:12]}"

    async def run_until_200(self, content: str, timeout: float = 60.0) -> float:
        """Seconds from calling ``docker run -d`` to the first 200 carrying ``content`` on the published port."""
        port = free_port()
        argv = [
            DOCKER,
            "run",
            "-d",
            "--name",
            f"berth-bench-{uuid.uuid4().hex[:10]}",
            "--label",
            self.label,
            "-e",
            f"CONTENT={content}",
            "-p",
            f"127.0.0.1:{port}:8080",
            self.image,
            "sh",
            "-c",
            SERVE_CONTENT,
        ]
        expected = content.encode()
        t0 = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        _, err = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"docker run failed: {err.decode(errors='replace')[-500:]}")
        # Polled once `docker run -d` returned, as a user would: a connection made earlier reaches
        # docker-proxy before the container's network is up, and its SYN to the container is retried
        # only after a second (measured: every such sample took 1.1 s).
        first = await wait_status(
            port, "localhost", ok=lambda a: a.status == 200 and a.body.strip() == expected, timeout=timeout
        )
        return first - t0

    def cleanup(self) -> int:
        return remove_containers(self.label)
