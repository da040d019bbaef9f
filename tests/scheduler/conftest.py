"""Fixtures of the scheduler's tests: a busybox image, a Docker executor, cleanup by label."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator

import pytest

from berth_scheduler.adapters.docker import DockerExecutor
from berth_scheduler.adapters.readiness import ReadinessChecker, ReadinessConfig
from tests.scheduler.images import busybox_image


def _docker_ok() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "version"], capture_output=True, check=False).returncode == 0


@pytest.fixture(scope="session")
def busybox() -> str:
    if not _docker_ok():
        pytest.skip("no Docker engine")
    return busybox_image()


def remove_labelled(label: str) -> None:
    ids = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={label}"], capture_output=True, text=True, check=False
    ).stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, check=False)


@pytest.fixture
def app_id(unique: str, busybox: str):
    """An application id for one test; every container it leads to is removed afterwards."""
    app = f"test-{unique}"
    yield app
    remove_labelled(f"berth.app={app}")


@pytest.fixture
async def docker() -> AsyncIterator[DockerExecutor]:
    ex = DockerExecutor()
    yield ex
    await ex.close()


@pytest.fixture
async def readiness(docker: DockerExecutor) -> AsyncIterator[ReadinessChecker]:
    checker = ReadinessChecker(docker, ReadinessConfig(interval_s=0.1, attempt_timeout_s=1.0, worker_settle_s=0.5))
    yield checker
    await checker.close()
