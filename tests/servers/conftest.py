"""Fixtures of the tests of servers: their services start on a migrated database."""

from __future__ import annotations

import pytest


@pytest.fixture
def database(migrated_database: str) -> str:
    """A copy of the session's migrated template (``migrated_database``): the api, scheduler and proxy-sync a test
    starts migrate nothing; the migrations a test runs itself get ``empty_database``."""
    return migrated_database
