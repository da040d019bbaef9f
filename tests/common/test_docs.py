"""Documentation that is derived from code stays in step with it."""

from __future__ import annotations

import re
from pathlib import Path

from berth_common.catalogue import REGISTRY
from berth_common.subjects import BEGIN, END, markdown_table

ROOT = Path(__file__).resolve().parents[2]


def test_subjects_table_matches_catalogue():
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = re.search(re.escape(BEGIN) + r"\n(.*?)\n" + re.escape(END), text, re.DOTALL)
    assert section, "docs/architecture.md lost its subjects markers"
    assert section.group(1) == markdown_table(), "run `make docs` to regenerate the subjects table"


def test_every_message_is_documented_with_producer_and_consumer():
    for type_, model in REGISTRY.items():
        assert model.__doc__ or model.KIND == "command", f"{type_} has no docstring"
        assert model.PRODUCERS, f"{type_} names no producer"
        assert model.CONSUMERS, f"{type_} names no consumer"


def test_readme_starts_with_the_two_commands():
    head = (ROOT / "README.md").read_text()[:1500]
    assert "make up" in head and "make test" in head
