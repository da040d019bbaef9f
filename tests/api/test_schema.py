"""The migrations and the tables the code uses (``adapters.tables``) describe the same schema: every table and
column, with its type and nullability (indexes live in the migrations only)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from berth_api.adapters.tables import metadata
from berth_common.db import make_engine

CHECKED = {"add_table", "remove_table", "add_column", "remove_column", "modify_type", "modify_nullable"}
BASE_TABLES = {"processed_messages", "outbox", "alembic_version", "api_alembic_version"}


def _kind(diff) -> str:
    first = diff[0] if isinstance(diff, list) else diff
    return str(first[0])


async def test_migrations_match_the_tables(api, api_urls):
    engine = make_engine(api_urls["api"], "api")

    def include(obj, name, type_, reflected, compare_to) -> bool:
        return not (type_ == "table" and name in BASE_TABLES)

    try:
        async with engine.connect() as conn:
            diffs = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c, opts={"include_object": include}), metadata)
            )
    finally:
        await engine.dispose()
    relevant = [d for d in diffs if _kind(d) in CHECKED]
    assert relevant == []
    assert {"invitations", "audit_log", "env_groups", "group_attachments", "environment_variables"} <= set(
        metadata.tables
    )
