"""``record_of``: dataclasses and pydantic models read from result rows, mappings and dataclasses."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from pydantic import BaseModel

from berth_common.records import field_names, record_of, values_of


@dataclass(frozen=True)
class Record:
    id: str
    name: str
    tags: tuple[str, ...] = ()
    note: str = "none"


class View(BaseModel):
    id: str
    name: str
    tags: list[str]
    note: str = "none"


def _row() -> sa.Row[tuple[str, str, list[str], str]]:
    engine = sa.create_engine("sqlite://")
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.literal("a1").label("id"), sa.literal("one").label("name"),
                                      sa.literal('["x"]').label("tags"), sa.literal("e").label("extra"))).one()  # fmt: skip


def test_fields_come_from_columns_of_the_same_name() -> None:
    row = _row()
    assert record_of(Record, row, tags=("x",)) == Record(id="a1", name="one", tags=("x",))
    assert record_of(View, row, tags=["x"]) == View(id="a1", name="one", tags=["x"])


def test_given_values_win_and_missing_columns_keep_defaults() -> None:
    row = _row()
    got = record_of(Record, row, name="other", note="given")
    assert got == Record(id="a1", name="other", tags='["x"]', note="given")  # type: ignore[arg-type]


def test_a_mapping_reads_like_a_row() -> None:
    assert record_of(Record, {"id": "b", "name": "two", "unused": 1}) == Record(id="b", name="two")


def test_a_dataclass_gives_its_fields() -> None:
    source = Record(id="c", name="three", tags=("y",), note="kept")
    assert record_of(View, source, tags=list(source.tags)) == View(id="c", name="three", tags=["y"], note="kept")


def test_what_holds_no_values_by_name_is_refused() -> None:
    with pytest.raises(TypeError):
        values_of(42)
    with pytest.raises(TypeError):
        values_of(Record)


def test_field_names_in_declared_order() -> None:
    assert field_names(Record) == ("id", "name", "tags", "note")
    assert field_names(View) == ("id", "name", "tags", "note")
    with pytest.raises(TypeError):
        field_names(dict)
