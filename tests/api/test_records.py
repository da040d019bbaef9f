"""A record built from a row or another record that names its fields the same."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from berth_api.domain.records import from_fields


@dataclass(frozen=True)
class Pair:
    left: str
    right: int


def test_fields_are_read_by_name_and_the_given_ones_win():
    assert from_fields(Pair, {"left": "a", "right": 1, "other": True}) == Pair("a", 1)
    assert from_fields(Pair, {"left": "a"}, right=2) == Pair("a", 2)
    assert from_fields(Pair, vars(Pair("b", 3))) == Pair("b", 3)


def test_a_missing_field_is_an_error():
    with pytest.raises(KeyError, match="right"):
        from_fields(Pair, {"left": "a"})
