"""Session fixtures: a real nats-server and a real Postgres (from the project's wheels), never mocks."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.procs import NatsServer, Postgres, create_database

os.environ.setdefault("BERTH_ENV", "test")


@pytest.fixture(scope="session")
def tmp_root() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="berth-test-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def nats_server(tmp_root: Path, unique: str) -> Iterator[NatsServer]:
    """A fresh nats-server (JetStream on, own store) per test: streams and consumers never leak."""
    data = tmp_root / f"nats-{unique}"
    data.mkdir()
    server = NatsServer(data).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres(tmp_root: Path) -> Iterator[Postgres]:
    (tmp_root / "pg").mkdir()
    server = Postgres(tmp_root / "pg").start()
    yield server
    server.stop()


@pytest.fixture
async def database(postgres: Postgres) -> AsyncIterator[str]:
    """A fresh database (admin URL) for one test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield await create_database(postgres.admin_url, name)


@pytest.fixture(scope="session", autouse=True)
def sealing_key() -> None:
    """Secret values travel sealed: the test process seals and opens them with this key (a service served
    in-process configures its own at start, and values sealed with this one still open)."""
    from berth_common import sealing

    sealing.configure("berth-tests-sealing-key")


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:8]
