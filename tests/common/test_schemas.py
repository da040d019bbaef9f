"""Each service's migrations and the tables its code uses (``adapters/tables.py``, with the base tables of
``berth_common.db.tables``) describe the same schema: every table and column, with its type, nullability and
server default, every foreign key and unique constraint (indexes not declared in the tables live in the
migrations only)."""

from __future__ import annotations

import importlib

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from berth_common.db import make_engine
from berth_common.db import tables as base
from berth_common.db.provision import SERVICES, provision, schema_for
from tests.common.test_db_storage import PACKAGES, migrate

CHECKED = {"add_table", "remove_table", "add_column", "remove_column", "modify_type", "modify_nullable"}
CHECKED |= {"modify_default", "add_fk", "remove_fk", "add_constraint", "remove_constraint"}


def _kind(diff) -> str:
    first = diff[0] if isinstance(diff, list) else diff
    return str(first[0])


def definition(service: str) -> sa.MetaData:
    """The service's tables and the base tables, in one metadata."""
    own = importlib.import_module(f"{PACKAGES[service]}.adapters.tables").metadata
    merged = sa.MetaData()
    for table in (*base.metadata.tables.values(), *own.tables.values()):
        table.to_metadata(merged)
    return merged


@pytest.mark.parametrize("service", SERVICES)
async def test_migrations_match_the_tables(database, service):
    urls = await provision(database, "test-secret")
    await migrate(urls[service], service)
    metadata = definition(service)
    engine = make_engine(urls[service], schema_for(service))

    def include(obj, name, type_, reflected, compare_to) -> bool:
        return not (type_ == "table" and name == "alembic_version")

    def compare(conn):
        opts = {"include_object": include, "compare_server_default": True}
        return compare_metadata(MigrationContext.configure(conn, opts=opts), metadata)

    try:
        async with engine.connect() as conn:
            diffs = await conn.run_sync(compare)
    finally:
        await engine.dispose()
    assert [d for d in diffs if _kind(d) in CHECKED] == []
    assert {"processed_messages", "outbox"} <= set(metadata.tables)


def test_the_api_defines_its_configuration_tables():
    assert {"invitations", "audit_log", "env_groups", "group_attachments", "environment_variables"} <= set(
        definition("api").tables
    )
