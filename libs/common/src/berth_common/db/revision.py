"""Operations for a service's Alembic revisions that take their tables from the one definition the code uses.

A service defines each table once, in its ``adapters/tables.py``. A revision names which table and which
columns it introduces; the columns (type, nullability, defaults, identity, primary key, ``unique`` and
``index`` flags) and the table's constraints and indexes are copied from that definition. A revision lists
its columns by name because it is history: a column added to the definition later comes with a later
revision (:func:`add_columns`), and an installation that ran the earlier one must end with the same schema
as a fresh one.

Which constraints and indexes come along: those of the definition whose columns are all among the columns
the revision creates (:func:`create_table`), or that name a column it adds (:func:`add_columns`). A CHECK
written as SQL text names the table's columns that appear in it outside quoted literals. ``omit`` leaves
out, by name, a constraint or index that a later revision adds or that this revision had in another form.
What the definition no longer has (a column dropped or renamed since) a revision spells with alembic's own
operations, as history.

A revision is declared as data: ``upgrade, downgrade = steps(table(...), index(...), columns(...))``; each
step knows how to take itself back, and the downgrade takes the steps back in the reverse order.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

Operations = Any
"""alembic's ``op`` (the module a revision imports) or an ``alembic.operations.Operations``."""

_QUOTED = re.compile(r"'(?:[^']|'')*'")
_WORD = re.compile(r'"([^"]+)"|([A-Za-z_][A-Za-z0-9_]*)')


Names = str | Sequence[str]
"""Column names: a sequence, or one string of names separated by white space."""


def _names(names: Names) -> list[str]:
    return names.split() if isinstance(names, str) else list(names)


def _columns(table: sa.Table, names: Sequence[str]) -> list[sa.Column[Any]]:
    unknown = [n for n in names if n not in table.c]
    if unknown:
        raise KeyError(f"table {table.name!r} defines no column {', '.join(unknown)}")
    return [table.c[n] for n in names]


def named_columns(item: sa.Constraint | sa.Index, table: sa.Table) -> set[str]:
    """The names of ``table``'s columns a constraint or index refers to."""
    if isinstance(item, sa.ForeignKeyConstraint):
        return {e.parent.name for e in item.elements}
    found = {c.name for c in getattr(item, "columns", ())}
    if isinstance(item, sa.CheckConstraint) and not found:
        text = _QUOTED.sub(" ", str(item.sqltext))
        words = {quoted or bare for quoted, bare in _WORD.findall(text)}
        found = words & set(table.c.keys())
    if isinstance(item, sa.Index) and not found:
        raise TypeError(f"index {item.name!r}: only indexes on plain columns are supported")
    return found


def _own_constraints(table: sa.Table) -> list[sa.Constraint]:
    """Table-level constraints that a copied column does not bring by itself: not an unnamed primary key (the
    columns' ``primary_key`` flags make it) nor a constraint made by a column's ``unique`` flag."""
    return [
        c
        for c in sorted(table.constraints, key=lambda c: str(c.name or ""))
        if not (isinstance(c, sa.PrimaryKeyConstraint) and c.name is None) and not getattr(c, "_column_flag", False)
    ]


def _own_indexes(table: sa.Table) -> list[sa.Index]:
    """Indexes declared on the table, not by a column's ``index`` flag (a copied column brings those)."""
    return [i for i in sorted(table.indexes, key=lambda i: str(i.name)) if not i._column_flag]


def _name(c: sa.Constraint) -> str | None:
    return c.name if isinstance(c.name, str) else None


def _check(op: Operations, table: sa.Table, c: sa.CheckConstraint) -> None:
    name = _name(c)
    if name is None:
        raise ValueError(f"table {table.name!r}: a CHECK constraint added to a table needs a name")
    op.create_check_constraint(name, table.name, c.sqltext)


def _foreign_key(op: Operations, table: sa.Table, c: sa.ForeignKeyConstraint) -> None:
    remote = [e.target_fullname.split(".") for e in c.elements]
    *schema, referent, _ = remote[0]
    op.create_foreign_key(
        _name(c),
        table.name,
        referent,
        [e.parent.name for e in c.elements],
        [parts[-1] for parts in remote],
        referent_schema=schema[0] if schema else None,
        ondelete=c.ondelete,
        onupdate=c.onupdate,
        deferrable=c.deferrable,
        initially=c.initially,
    )


def _copy_constraint(c: sa.Constraint) -> sa.Constraint:
    """A copy of a table-level constraint, detached from its table, for ``op.create_table``."""
    name = _name(c)
    if isinstance(c, sa.ForeignKeyConstraint):
        return sa.ForeignKeyConstraint(
            [e.parent.name for e in c.elements],
            [e.target_fullname for e in c.elements],
            name=name,
            ondelete=c.ondelete,
            onupdate=c.onupdate,
            deferrable=c.deferrable,
            initially=c.initially,
        )
    if isinstance(c, sa.CheckConstraint):
        return sa.CheckConstraint(c.sqltext, name=name, deferrable=c.deferrable, initially=c.initially)
    if isinstance(c, (sa.UniqueConstraint, sa.PrimaryKeyConstraint)):
        cols = [col.name for col in c.columns]
        return type(c)(*cols, name=name, deferrable=c.deferrable, initially=c.initially, **c.dialect_kwargs)
    raise TypeError(f"constraint {c.name!r}: {type(c).__name__} is not supported")


def _create_index(op: Operations, table: sa.Table, index: sa.Index) -> None:
    op.create_index(
        str(index.name),
        table.name,
        [c.name for c in index.columns],
        unique=index.unique,
        **index.dialect_kwargs,
    )


def create_table(op: Operations, table: sa.Table, columns: Names, *, omit: Iterable[str] = ()) -> None:
    """Create ``table`` with the named columns (in this order) as the definition describes them, and its
    constraints and indexes on these columns only (except those named in ``omit``)."""
    names = _names(columns)
    chosen, leave_out = _columns(table, names), set(omit)
    constraints = [
        _copy_constraint(c)
        for c in _own_constraints(table)
        if c.name not in leave_out and named_columns(c, table) <= set(names)
    ]
    op.create_table(table.name, *[c._copy() for c in chosen], *constraints)
    for index in _own_indexes(table):
        if index.name not in leave_out and named_columns(index, table) <= set(names):
            _create_index(op, table, index)


def add_columns(op: Operations, table: sa.Table, columns: Names, *, omit: Iterable[str] = ()) -> None:
    """Add the named columns to ``table`` as the definition describes them, then the constraints and indexes
    that name one of them (except those named in ``omit``)."""
    names = _names(columns)
    chosen, leave_out = _columns(table, names), set(omit)
    for column in chosen:
        op.add_column(table.name, column._copy())
    for c in _own_constraints(table):
        if c.name not in leave_out and named_columns(c, table) & set(names):
            add_constraint(op, table, c)
    for index in _own_indexes(table):
        if index.name not in leave_out and named_columns(index, table) & set(names):
            _create_index(op, table, index)


def add_constraint(op: Operations, table: sa.Table, constraint: sa.Constraint | str) -> None:
    """Add one constraint of the definition (or the one with this name) to an existing table."""
    if isinstance(constraint, str):
        found = [c for c in table.constraints if c.name == constraint]
        if not found:
            raise KeyError(f"table {table.name!r} defines no constraint {constraint!r}")
        constraint = found[0]
    if isinstance(constraint, sa.CheckConstraint):
        _check(op, table, constraint)
    elif isinstance(constraint, sa.ForeignKeyConstraint):
        _foreign_key(op, table, constraint)
    elif isinstance(constraint, sa.UniqueConstraint):
        op.create_unique_constraint(_name(constraint), table.name, [c.name for c in constraint.columns])
    else:
        raise TypeError(f"constraint {constraint.name!r}: {type(constraint).__name__} is not supported")


def drop_tables(op: Operations, *tables: sa.Table) -> None:
    """Drop tables, in the order given (the ones that refer to others first)."""
    for table in tables:
        op.drop_table(table.name)


def drop_columns(op: Operations, table: sa.Table, columns: Names) -> None:
    """Drop columns (with the constraints and indexes on them), in the reverse order of ``columns``."""
    for column in reversed(_columns(table, _names(columns))):
        op.drop_column(table.name, column.name)


# --- a revision declared as data ----------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One change a revision makes (``up``) and how a downgrade takes it back (``down``)."""

    up: Callable[[Operations], None]
    down: Callable[[Operations], None]


def steps(*changes: Step) -> tuple[Callable[[], None], Callable[[], None]]:
    """A revision's ``upgrade`` (the changes in order) and ``downgrade`` (each taken back, last first):
    ``upgrade, downgrade = steps(table(...), index(...))``."""

    def upgrade() -> None:
        from alembic import op

        for change in changes:
            change.up(op)

    def downgrade() -> None:
        from alembic import op

        for change in reversed(changes):
            change.down(op)

    return upgrade, downgrade


def table(definition: sa.Table, columns: Names, *, omit: Iterable[str] = ()) -> Step:
    """Create a table with the named columns (:func:`create_table`); taken back by dropping it."""
    return Step(
        lambda op: create_table(op, definition, columns, omit=omit),
        lambda op: drop_tables(op, definition),
    )


def columns(definition: sa.Table, names: Names, *, omit: Iterable[str] = ()) -> Step:
    """Add the named columns to an existing table (:func:`add_columns`); taken back by dropping them."""
    return Step(
        lambda op: add_columns(op, definition, names, omit=omit),
        lambda op: drop_columns(op, definition, names),
    )


def index(name: str, definition: sa.Table, columns: Names, **options: Any) -> Step:
    """An index the definition does not declare (``options`` as for ``op.create_index``, such as
    ``postgresql_where``); taken back by dropping it."""
    return Step(
        lambda op: op.create_index(name, definition.name, _names(columns), **options),
        lambda op: op.drop_index(name, table_name=definition.name),
    )


def sql(up: str, down: str) -> Step:
    """A statement written as SQL (a function, a trigger), and the one that takes it back."""
    return Step(lambda op: op.execute(up), lambda op: op.execute(down))


def check(name: str, definition: sa.Table, condition: str) -> Step:
    """A CHECK constraint as this revision had it (the definition may hold a later form); taken back by
    dropping it."""
    return Step(
        lambda op: op.create_check_constraint(name, definition.name, condition),
        lambda op: op.drop_constraint(name, definition.name, type_="check"),
    )
