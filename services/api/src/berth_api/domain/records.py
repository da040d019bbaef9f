"""A record built from a row (or another record) that holds its fields under the same names.

The fields are named once, in the dataclass; a query selects (or labels) its columns by those names.
"""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    R = TypeVar("R", bound=DataclassInstance)
else:
    R = TypeVar("R")


class Row(Protocol):
    def __getitem__(self, name: str, /) -> Any: ...


def from_fields(cls: type[R], row: Row, **given: Any) -> R:
    """An instance of the dataclass ``cls``: each field read from ``row`` by its name (a database row, a
    mapping), except those ``given``."""
    return cls(**{f.name: row[f.name] for f in fields(cls) if f.name not in given}, **given)
