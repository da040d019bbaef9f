"""Revisions that take their tables from the definition: the columns named, and the constraints and indexes on
them, as the definition describes them, on a real Postgres."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext

from berth_common.db import make_engine
from berth_common.db.revision import (
    add_columns,
    add_constraint,
    check,
    columns,
    create_table,
    drop_columns,
    drop_tables,
    index,
    named_columns,
    sql,
    steps,
    table,
)

metadata = sa.MetaData()
parents = sa.Table(
    "parents",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("name", sa.String(20), nullable=False, unique=True),
)
children = sa.Table(
    "children",
    metadata,
    sa.Column("id", sa.String(8), primary_key=True),
    sa.Column("parent_id", sa.BigInteger, sa.ForeignKey("parents.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("kind", sa.String(8), nullable=False, server_default="a"),
    sa.Column("state", sa.String(8), nullable=True),
    sa.Column("note", sa.Text, nullable=True),
    sa.UniqueConstraint("parent_id", "kind", name="children_parent_kind"),
    sa.CheckConstraint("kind IN ('a', 'b', 'state')", name="children_kind"),  # 'state' here is no column
    sa.CheckConstraint("state IN ('on', 'off')", name="children_state"),
)
sa.Index("children_state_note", children.c.state, children.c.note)


async def run(url: str, step: Callable[[Any], Any]) -> Any:
    """``step(op)`` in one transaction, then what it returns (it may read with ``op.get_bind()``)."""
    engine = make_engine(url, "public")
    try:
        async with engine.begin() as conn:
            return await conn.run_sync(lambda c: step(Operations(MigrationContext.configure(c))))
    finally:
        await engine.dispose()


def shape(op: Any, table: str) -> dict[str, Any]:
    i = sa.inspect(op.get_bind())
    return {
        "columns": [c["name"] for c in i.get_columns(table)],
        "checks": sorted(c["name"] for c in i.get_check_constraints(table)),
        "uniques": sorted(tuple(u["column_names"]) for u in i.get_unique_constraints(table)),
        "indexes": sorted(x["name"] for x in i.get_indexes(table)),
        "fks": [(f["constrained_columns"], f["referred_table"], f["options"]) for f in i.get_foreign_keys(table)],
    }


def first_revision(op: Any) -> None:
    create_table(op, parents, "id name")
    create_table(op, children, ["id", "parent_id", "kind"])


def second_revision(op: Any) -> None:
    add_columns(op, children, "state note")


def diffs(op: Any) -> list[Any]:
    return compare_metadata(MigrationContext.configure(op.get_bind(), opts={"compare_server_default": True}), metadata)


async def test_a_table_is_created_with_the_named_columns_and_the_constraints_and_indexes_on_them(database):
    created = await run(database, lambda op: (first_revision(op), shape(op, "children"))[1])
    assert created == {
        "columns": ["id", "parent_id", "kind"],
        "checks": ["children_kind"],
        "uniques": [("parent_id", "kind")],
        "indexes": ["children_parent_kind", "ix_children_parent_id"],
        "fks": [(["parent_id"], "parents", {"ondelete": "CASCADE"})],
    }
    parent = await run(database, lambda op: shape(op, "parents"))
    assert parent["columns"] == ["id", "name"] and parent["uniques"] == [("name",)]


async def test_added_columns_bring_their_constraints_and_indexes_and_end_as_defined(database):
    await run(database, first_revision)
    added = await run(database, lambda op: (second_revision(op), shape(op, "children"))[1])
    assert added["columns"] == ["id", "parent_id", "kind", "state", "note"]
    assert added["checks"] == ["children_kind", "children_state"]
    assert "children_state_note" in added["indexes"]
    assert await run(database, diffs) == []


async def test_dropping_reverses_both_revisions(database):
    await run(database, first_revision)
    await run(database, second_revision)
    dropped = await run(database, lambda op: (drop_columns(op, children, "state note"), shape(op, "children"))[1])
    assert dropped["columns"] == ["id", "parent_id", "kind"] and dropped["checks"] == ["children_kind"]
    await run(database, lambda op: drop_tables(op, children, parents))
    assert await run(database, lambda op: sa.inspect(op.get_bind()).get_table_names()) == []


async def test_omit_leaves_a_constraint_out_and_add_constraint_brings_it_later(database):
    def revision(op: Any) -> list[str]:
        create_table(op, parents, "id name")
        create_table(op, children, "id parent_id kind", omit=["children_kind"])
        before = shape(op, "children")["checks"]
        add_constraint(op, children, "children_kind")
        return [*before, "|", *shape(op, "children")["checks"]]

    assert await run(database, revision) == ["|", "children_kind"]


def test_a_text_check_names_the_columns_outside_its_literals():
    kind = next(c for c in children.constraints if c.name == "children_kind")
    assert named_columns(kind, children) == {"kind"}
    fk = next(iter(children.c.parent_id.foreign_keys)).constraint
    assert fk is not None and named_columns(fk, children) == {"parent_id"}


def test_an_unknown_column_or_constraint_is_refused():
    with pytest.raises(KeyError, match="no column colour"):
        create_table(None, children, "id colour")
    with pytest.raises(KeyError, match="no constraint 'nope'"):
        add_constraint(None, children, "nope")


# A revision declared as data: its downgrade takes the steps back, last first.
declared_upgrade, declared_downgrade = steps(
    table(parents, "id name"),
    table(children, "id parent_id kind", omit=["children_kind"]),
    check("children_kind", children, "kind IN ('a', 'b')"),
    index("children_kind_id", children, "kind id", postgresql_where=sa.text("kind = 'a'")),
    columns(children, "state note"),
    sql("CREATE VIEW kinds AS SELECT DISTINCT kind FROM children", "DROP VIEW kinds"),
)


def declared(action: Callable[[], None]) -> Callable[[Any], Any]:
    """``action`` run as alembic runs a revision (``alembic.op`` bound to the connection of ``op``)."""

    def run_it(op: Any) -> Any:
        with Operations.context(op.migration_context):
            action()
        i = sa.inspect(op.get_bind())
        return {name: shape(op, name) for name in i.get_table_names()}, i.get_view_names()

    return run_it


async def test_a_revision_declared_as_steps_upgrades_in_order_and_downgrades_in_reverse(database):
    tables, views = await run(database, declared(declared_upgrade))
    assert views == ["kinds"] and set(tables) == {"parents", "children"}
    assert tables["children"]["columns"] == ["id", "parent_id", "kind", "state", "note"]
    assert tables["children"]["checks"] == ["children_kind", "children_state"]
    assert {"children_kind_id", "children_state_note", "ix_children_parent_id"} <= set(tables["children"]["indexes"])
    assert await run(database, declared(declared_downgrade)) == ({}, [])
