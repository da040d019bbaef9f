"""Fixtures of the metrics tests: the metrics schema migrated on a fresh database, with its own role."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from berth_common.db import make_engine, make_sessionmaker, run_migrations
from berth_common.db.provision import provision
from berth_metrics.bootstrap import VERSIONS


@pytest.fixture
def database(migrated_database: str) -> str:
    """A copy of the session's migrated template (``migrated_database``): the services a test starts migrate
    nothing; the migrations themselves run on ``empty_database``."""
    return migrated_database


@pytest.fixture
async def metrics_url(database: str) -> str:
    urls = await provision(database, "test-secret", ("metrics",))
    return urls["metrics"]


@pytest.fixture
async def sessionmaker(metrics_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(metrics_url, "metrics")
    await run_migrations(engine, "metrics", VERSIONS)
    yield make_sessionmaker(engine)
    await engine.dispose()
