"""Minor-version upgrades as exact data: the major line of each engine, what is refused and why."""

from __future__ import annotations

import pytest

from berth_common import dbengines as d
from berth_common.images import DEFAULT_IMAGE_MAP, resolve_image


@pytest.mark.parametrize(
    ("engine", "current", "target", "image"),
    [
        ("postgresql", "15", "15.9", "postgres:15.9"),
        ("postgresql", "15.8", "15.10", "postgres:15.10"),
        ("postgresql", "15.9", "15", "postgres:15"),  # the line's bare tag: its newest
        ("mariadb", "10.11", "10.11.10", "mariadb:10.11.10"),
        ("redis", "7", "7.4", "redis:7.4"),
        ("redis", "7.2", "7.4.1", "redis:7.4.1"),
        ("mysql", "8.0", "8.0.40", "mysql:8.0.40"),
        ("mongodb", "7.0", "7.0.16", "mongo:7.0.16"),
    ],
)
def test_upgrades_within_the_major_line(engine, current, target, image):
    assert d.check_upgrade(engine, current, target) == image


@pytest.mark.parametrize(
    ("engine", "current", "target", "why"),
    [
        ("postgresql", "15", "16", "major upgrades need a dump and a restore"),
        ("mariadb", "10.11", "11.4", "major upgrades need a dump and a restore"),
        ("mariadb", "10.6", "10.11", "major upgrades need a dump and a restore"),
        ("redis", "6.2", "7", "major upgrades need a dump and a restore"),
        ("mysql", "8.0", "8.4", "major upgrades need a dump and a restore"),
        ("postgresql", "15", "15", "runs PostgreSQL 15 already"),
        ("postgresql", "15.10", "15.9", "a downgrade is not an upgrade"),
        ("postgresql", "15", "15.99", "is not offered"),
    ],
)
def test_what_is_not_a_minor_upgrade_says_why(engine, current, target, why):
    with pytest.raises(d.UpgradeError, match=why):
        d.check_upgrade(engine, current, target)


def test_a_major_refusal_names_the_versions_the_database_can_move_to():
    with pytest.raises(d.UpgradeError) as got:
        d.check_upgrade("postgresql", "15", "17")
    assert str(got.value).endswith("this database can move to 15.10, 15.9, 15.8")
    assert d.engine("mariadb").upgrades("10.11") == ("10.11.10", "10.11.9")
    assert d.engine("redis").line("7.4.1") == "7" and d.engine("mariadb").line("10.11.9") == "10.11"


def test_minor_tags_are_accepted_where_a_version_is_and_the_local_ones_are_mapped():
    assert d.engine("postgresql").image("15.9") == "postgres:15.9"
    assert "15.9" not in d.engine("postgresql").versions  # offered at creation: the lines only
    assert resolve_image("postgres:15.9", DEFAULT_IMAGE_MAP) == "berth/postgres:15-bookworm"
    assert resolve_image("mariadb:10.11.10", DEFAULT_IMAGE_MAP) == "berth/mariadb:10.11-bookworm"
