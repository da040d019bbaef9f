"""Fixtures of the builder's tests: the service in-process, a git daemon, a local busybox image, cleanup."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.builder.support import GitDaemon, Running, start_builder, stop_builder


def _docker_ok() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "version"], capture_output=True, check=False, timeout=30).returncode == 0


@pytest.fixture(scope="session")
def busybox() -> str:
    """``berth/busybox:1`` made by berth_cli.baseimages (busybox-static + docker import, cached by tag)."""
    if not _docker_ok():
        pytest.skip("no Docker engine")
    from tests.support.images import busybox_image

    return busybox_image()


@pytest.fixture
def git_daemon(tmp_path: Path) -> Iterator[GitDaemon]:
    daemon = GitDaemon(tmp_path / "served").start()
    yield daemon
    daemon.stop()


@pytest.fixture
def images() -> Iterator[list[str]]:
    """Image tags a test makes; removed afterwards."""
    made: list[str] = []
    yield made
    if made:
        subprocess.run(["docker", "rmi", "-f", *made], capture_output=True, check=False, timeout=120)


@pytest.fixture
def containers() -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    if made:
        subprocess.run(["docker", "rm", "-f", *made], capture_output=True, check=False, timeout=120)


@pytest.fixture
async def builder_factory(nats_server: Any, database: str, tmp_path: Path) -> AsyncIterator[Any]:
    started: list[Running] = []

    async def make(**overrides: Any) -> Running:
        running = await start_builder(nats_server.url, database, tmp_path / f"data{len(started)}", **overrides)
        started.append(running)
        return running

    yield make
    for running in started:
        await stop_builder(running)
