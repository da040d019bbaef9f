"""One record built from another by field name: a database row, a mapping or a dataclass gives each field
of a dataclass or pydantic model the value it holds under the same name.

Services read rows into their domain records, rows into the catalogue's views and domain records into the
events that announce them. Naming every field once more at each of those places (``id=row.id,
team_id=row.team_id, ...``) repeats the record's own field list; ``record_of`` reads that list from the record
type instead, so only the fields held under another name or in another form are written out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
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


def values_of(source: Any) -> Mapping[str, Any]:
    """What ``source`` holds by name: a result row's columns, a mapping itself, a dataclass's fields."""
    if hasattr(source, "_mapping"):
        return source._mapping  # type: ignore[no-any-return]
    if isinstance(source, Mapping):
        return source
    if dataclasses.is_dataclass(source) and not isinstance(source, type):
        return {f.name: getattr(source, f.name) for f in dataclasses.fields(source)}
    raise TypeError(f"{type(source).__name__} holds no values by name")


def record_of(kind: type[T], source: Any, **given: Any) -> T:
    """A ``kind`` from ``source`` (see ``values_of``): each field takes the value of the same name, ``given``
    the fields the source holds under another name or in another form; a field with neither keeps its
    default."""
    values = values_of(source)
    return kind(**{name: values[name] for name in field_names(kind) if name not in given and name in values}, **given)
