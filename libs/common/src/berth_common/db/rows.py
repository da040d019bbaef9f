"""Records read from database rows: each field of the record takes the row's column of the same name.

Services read rows into dataclasses (their domain records) and into pydantic models (the catalogue's views).
Naming every field once per record (``id=row.id, team_id=row.team_id, ...``) repeats the record's own field
list; ``record_of`` reads that list from the record type instead, so a field added to both the table and the
record needs no third edit.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from pydantic import BaseModel

T = TypeVar("T")


def field_names(kind: type[Any]) -> tuple[str, ...]:
    """The field names of a dataclass or a pydantic model, in their declared order."""
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return tuple(kind.model_fields)
    if dataclasses.is_dataclass(kind):
        return tuple(f.name for f in dataclasses.fields(kind))
    raise TypeError(f"{kind!r} is neither a dataclass nor a pydantic model")


def record_of(kind: type[T], row: Any, **given: Any) -> T:
    """A ``kind`` from ``row`` (a result row or its mapping): each field takes the column of the same name,
    ``given`` the fields the row holds under another name or in another form; a field with neither keeps its
    default."""
    columns = row._mapping if hasattr(row, "_mapping") else row
    values = {name: columns[name] for name in field_names(kind) if name not in given and name in columns}
    return kind(**values, **given)
