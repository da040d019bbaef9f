"""Restore drills as data (pure): the command's validation, the check's exact SQL and ``psql`` argv, what its
output means, and the scratch container."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from berth_common.catalogue import (
    REGISTRY,
    SCHEDULABLE,
    DirectoryDestination,
    DrillBackup,
    DrillValue,
    QueryCheck,
    RowCount,
    RowCountCheck,
    SetSchedule,
    check_query,
)
from berth_scheduler.domain import drills as dom

PASSWORD = "scratch-pw-never-in-argv"


def _drill(**change) -> DrillBackup:
    values = {
        "drill_id": "d1",
        "team_id": "team1",
        "database_id": "db1",
        "backup_id": "b1",
        "origin": DirectoryDestination(path="/var/backups"),
        "key": "/var/backups/db1/x.dump.gz",
        "sha256": "a" * 64,
        "compression": "gzip",
        "database": "shop",
        "check": RowCountCheck(tables=[RowCount(table="items", at_least=5)]),
        **change,
    }
    return DrillBackup(**values)


def test_the_users_query_is_one_statement_of_bounded_length() -> None:
    assert check_query("  SELECT count(*) FROM items ;  ") == "SELECT count(*) FROM items"
    for bad, why in [
        ("", "empty"),
        (";", "empty"),
        ("SELECT 1; DROP TABLE items", "one statement"),
        ("SELECT 1;;", "one statement"),
        ("\\! rm -rf /", "backslash"),
        ("SELECT '\x00'", "NUL"),
        ("SELECT " + "1" * 2000, "longer than 2000"),
    ]:
        with pytest.raises(ValueError, match=why):
            check_query(bad)
    with pytest.raises(ValidationError, match="exactly one of equals or at_least"):
        QueryCheck(sql="SELECT 1")
    with pytest.raises(ValidationError, match="exactly one of equals or at_least"):
        QueryCheck(sql="SELECT 1", equals="1", at_least=1)
    with pytest.raises(ValidationError, match="one statement"):
        _drill(check=QueryCheck(sql="SELECT 1; SELECT 2", equals="1"))


def test_tables_are_plain_identifiers_and_the_command_is_bounded() -> None:
    for bad in ('items"; DROP', "a.b.c", "-items", "1items", ""):
        with pytest.raises(ValidationError):
            RowCount(table=bad)
    with pytest.raises(ValidationError):
        RowCountCheck(tables=[])
    with pytest.raises(ValidationError, match=r"'\.\.'"):
        _drill(key="/var/backups/../etc/shadow")
    with pytest.raises(ValidationError):
        _drill(engine="mysql")  # only PostgreSQL is drilled for now
    with pytest.raises(ValidationError, match="together, or none"):
        _drill(sha256=None)
    newest = _drill(backup_id=None, key=None, sha256=None, compression=None)  # the newest backup of db1
    assert (newest.backup_id, newest.key) == (None, None)
    # a drill can be scheduled: each run's id becomes its drill id
    assert SCHEDULABLE["cmd.backup.drill"] == "drill_id"
    assert REGISTRY["cmd.backup.drill"] is DrillBackup
    SetSchedule(
        schedule_id="s1",
        team_id="team1",
        revision=1,
        cron="0 4 * * 0",
        timezone="UTC",
        command_type="cmd.backup.drill",
        command=_drill(backup_id=None, key=None, sha256=None, compression=None).model_dump(mode="json"),
    )


def test_row_counts_are_one_statement_with_quoted_tables() -> None:
    check = RowCountCheck(tables=[RowCount(table="items", at_least=5), RowCount(table="Sales.Orders$", at_least=0)])
    assert dom.check_sql(check) == ('SELECT (SELECT count(*) FROM "items"), (SELECT count(*) FROM "Sales"."Orders$")')
    assert dom.quote_table('a"b') == '"a""b"'


def test_the_check_runs_read_only_with_the_password_in_the_environment() -> None:
    check = QueryCheck(sql="SELECT max(id) FROM items;", at_least=10)
    ex = dom.check_exec(check, "shop", PASSWORD)
    assert ex.argv == [
        "psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "postgres", "-d", "shop",
        "-c", "BEGIN READ ONLY", "-c", "SELECT max(id) FROM items", "-c", "ROLLBACK",
    ]  # fmt: skip
    assert ex.env == {
        "PGPASSWORD": PASSWORD,
        "PGOPTIONS": "-c default_transaction_read_only=on -c statement_timeout=300000",
    }
    assert not any(PASSWORD in a for a in ex.argv)
    assert PASSWORD not in repr(ex)


def test_row_counts_pass_or_name_what_was_short() -> None:
    check = RowCountCheck(tables=[RowCount(table="items", at_least=5), RowCount(table="users", at_least=2)])
    assert dom.evaluate(check, "20000|3\n") == [
        DrillValue(name="items", expected=">= 5", found="20000"),
        DrillValue(name="users", expected=">= 2", found="3"),
    ]
    with pytest.raises(dom.CheckFailed) as failed:
        dom.evaluate(check, "20000|1\n")
    assert str(failed.value) == "users: expected at least 2 rows, found 1"
    assert failed.value.values[1] == DrillValue(name="users", expected=">= 2", found="1")
    with pytest.raises(dom.CheckFailed, match="could not be read"):
        dom.evaluate(check, "")


def test_a_query_value_must_match() -> None:
    equals = QueryCheck(sql="SELECT name FROM items WHERE id = 1", equals="c4ca")
    assert dom.evaluate(equals, "c4ca\n") == [DrillValue(name="query", expected="= c4ca", found="c4ca")]
    with pytest.raises(dom.CheckFailed) as failed:
        dom.evaluate(equals, "other\n")
    assert str(failed.value) == "the query's value: expected 'c4ca', found 'other'"
    at_least = QueryCheck(sql="SELECT count(*) FROM items", at_least=100)
    assert dom.evaluate(at_least, "150\n")[0].found == "150"
    with pytest.raises(dom.CheckFailed, match="expected at least 100, found 99"):
        dom.evaluate(at_least, "99\n")
    with pytest.raises(dom.CheckFailed, match="not a number: found 'x'"):
        dom.evaluate(at_least, "x\n")
    with pytest.raises(dom.CheckFailed, match="single value; it returned 2 rows"):
        dom.evaluate(at_least, "1\n2\n")
    with pytest.raises(dom.CheckFailed, match="more than one column"):
        dom.evaluate(at_least, "1|2\n")
    assert dom.describe(equals) == "query 'SELECT name FROM items WHERE id = 1' = c4ca"
    assert dom.describe(RowCountCheck(tables=[RowCount(table="items", at_least=5)])) == "row counts: items >= 5"


def test_the_scratch_container_is_isolated_labelled_and_swept_after_its_deadline() -> None:
    made = dom.scratch(_drill(), "berth/postgres:15-bookworm", PASSWORD, 1000.2)
    assert made.name == dom.scratch_name("d1") and made.name.startswith("berth-drill-")
    assert made.body == {
        "Image": "berth/postgres:15-bookworm",
        "Env": ["POSTGRES_USER=postgres", f"POSTGRES_PASSWORD={PASSWORD}", "POSTGRES_DB=postgres"],
        "Labels": {
            "berth.managed": "true",
            "berth.kind": "drill",
            "berth.team": "team1",
            "berth.drill": "d1",
            "berth.drill-deadline": "1001",
        },
        "HostConfig": {
            "NetworkMode": "none",
            "Init": True,
            "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}},
            "AutoRemove": False,
            "CpuShares": 256,
            "BlkioWeight": 100,
            "Memory": 2048 * 1024 * 1024,
            "MemorySwap": 2048 * 1024 * 1024,
        },
    }
    assert "Mounts" not in made.body["HostConfig"]  # no named volume: nothing is kept
    assert PASSWORD not in repr(made)
    assert dom.expired(made.body["Labels"], 1002) and not dom.expired(made.body["Labels"], 1000)
    assert dom.expired({"berth.kind": "drill"}, 0)
