"""Documentation that is derived from code stays in step with it."""

from __future__ import annotations

import re
from pathlib import Path

from berth_common.catalogue import REGISTRY, Event
from berth_common.subjects import BEGIN, END, PICTURE_BEGIN, PICTURE_END, markdown_table, mermaid

ROOT = Path(__file__).resolve().parents[2]


def test_subjects_table_matches_catalogue():
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = re.search(re.escape(BEGIN) + r"\n(.*?)\n" + re.escape(END), text, re.DOTALL)
    assert section, "docs/architecture.md lost its subjects markers"
    assert section.group(1) == markdown_table(), "run `make docs` to regenerate the subjects table"


def test_the_picture_matches_catalogue():
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = re.search(re.escape(PICTURE_BEGIN) + r"\n(.*?)\n" + re.escape(PICTURE_END), text, re.DOTALL)
    assert section, "docs/architecture.md lost its picture markers"
    assert section.group(1) == mermaid(), "run `make docs` to regenerate the picture"
    assert 'scheduler -->|"cmd.build.{cancel, start}"| builder' in section.group(1)


def test_every_message_is_documented_with_producer_and_consumer():
    for type_, model in REGISTRY.items():
        assert model.__dict__.get("__doc__"), f"{type_} has no docstring"
        assert model.PRODUCERS, f"{type_} names no producer"
        assert model.CONSUMERS, f"{type_} names no consumer"


def empty_cells(table: str) -> list[str]:
    """``<subject>: nothing in <column>`` for every empty cell of a markdown table."""
    header, _, *rows = table.splitlines()
    columns = [c.strip() for c in header.strip("|").split(" | ")]
    found = []
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split(" | ")]
        assert len(cells) == len(columns), row
        found += [f"{cells[0]}: nothing in {name}" for name, cell in zip(columns, cells, strict=True) if not cell]
    return found


def test_no_cell_of_the_subjects_table_is_empty():
    assert empty_cells(markdown_table()) == []


def test_an_undocumented_message_leaves_an_empty_cell(monkeypatch):
    class Undocumented(Event):
        TYPE = "evt.test.undocumented"
        PRODUCERS = ("api",)
        CONSUMERS = ("notifier",)

    monkeypatch.setitem(REGISTRY, Undocumented.TYPE, Undocumented)
    assert empty_cells(markdown_table()) == ["`evt.test.undocumented`: nothing in what it means"]


def test_readme_starts_with_the_two_commands():
    head = (ROOT / "README.md").read_text()[:1500]
    assert "make up" in head and "make test" in head
