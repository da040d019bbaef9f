"""Restore drills as data (pure): the scratch container a drill restores into, the check's ``psql`` argv,
and what its output means.

The scratch container ``berth-drill-<digest of the drill id>`` runs the engine's image with a random
password, no network (the restore and the check come through the engine's exec) and no volume kept (its
anonymous data volume goes with it); its labels (``berth.kind=drill``, the drill, the team, and the time
after which any scheduler's sweep removes it) find it again after a restart.

The check runs ``psql -X -q -t -A`` with ``ON_ERROR_STOP`` and the password in the exec's environment
(``PGPASSWORD``), never in its argv: ``BEGIN READ ONLY``, the statement, ``ROLLBACK``, each its own ``-c``,
so the user's statement cannot write (and the session's default is read-only too). Row counts are one
statement Berth writes itself, the table names quoted as identifiers.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

from berth_common import dbengines
from berth_common import labels as label
from berth_common.catalogue import DrillBackup, DrillValue, QueryCheck, RowCountCheck, check_query
from berth_scheduler.domain.containers import LOG_CONFIG
from berth_scheduler.domain.dumps import Exec

KIND = "drill"
DRILL_LABEL = "berth.drill"  # the drill id
DEADLINE_LABEL = "berth.drill-deadline"  # epoch seconds after which a sweep removes the container
USER = "postgres"
ADMIN_DATABASE = "postgres"
STATEMENT_TIMEOUT_MS = 300_000


class CheckFailed(RuntimeError):
    """The check did not pass: the message names what was expected and what was found."""

    def __init__(self, message: str, values: list[DrillValue]) -> None:
        super().__init__(message)
        self.values = values


@dataclass(frozen=True)
class Scratch:
    """The scratch container of a drill: its name and create body (the body holds the password)."""

    name: str
    body: dict[str, Any] = field(repr=False)


def scratch_name(drill_id: str) -> str:
    return "berth-drill-" + hashlib.sha256(drill_id.encode()).hexdigest()[:20]


def scratch_labels(msg: DrillBackup, deadline: float) -> dict[str, str]:
    return {
        label.MANAGED: "true",
        label.KIND: KIND,
        label.TEAM: msg.team_id,
        DRILL_LABEL: msg.drill_id,
        DEADLINE_LABEL: str(math.ceil(deadline)),
    }


def scratch(msg: DrillBackup, image: str, password: str, deadline: float) -> Scratch:
    """The scratch container of ``msg``: ``image`` (the engine's, after the image map), ``password``."""
    creds = dbengines.Credentials(USER, password, ADMIN_DATABASE)
    body: dict[str, Any] = {
        "Image": image,
        "Env": [f"{k}={v}" for k, v in dbengines.container_env(msg.engine, creds).items()],
        "Labels": scratch_labels(msg, deadline),
        "HostConfig": {"NetworkMode": "none", "Init": True, "LogConfig": LOG_CONFIG, "AutoRemove": False},
    }
    return Scratch(scratch_name(msg.drill_id), body)


def expired(labels: dict[str, str], now: float) -> bool:
    """A drill container whose deadline passed (one without a readable deadline is expired too)."""
    try:
        return float(labels.get(DEADLINE_LABEL, "")) < now
    except ValueError:
        return True


# --- the check -----------------------------------------------------------------------------------------


def quote_table(table: str) -> str:
    """``schema.table`` as quoted identifiers (the catalogue's pattern admits no quote; doubled anyway)."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in table.split("."))


def check_sql(check: RowCountCheck | QueryCheck) -> str:
    """The one statement the check runs."""
    if isinstance(check, QueryCheck):
        return check_query(check.sql)
    # the tables match the catalogue's identifier pattern and are quoted: no value reaches the SQL
    counts = ", ".join(f"(SELECT count(*) FROM {quote_table(t.table)})" for t in check.tables)  # noqa: S608
    return f"SELECT {counts}"


def check_exec(check: RowCountCheck | QueryCheck, database: str, password: str) -> Exec:
    """``psql`` running the check's statement in a read-only transaction in ``database``."""
    argv = ["psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", USER, "-d", database]
    argv += ["-c", "BEGIN READ ONLY", "-c", check_sql(check), "-c", "ROLLBACK"]
    options = f"-c default_transaction_read_only=on -c statement_timeout={STATEMENT_TIMEOUT_MS}"
    return Exec(argv, {"PGPASSWORD": password, "PGOPTIONS": options})


def describe(check: RowCountCheck | QueryCheck) -> str:
    """What the check checks, in words."""
    if isinstance(check, RowCountCheck):
        return "row counts: " + ", ".join(f"{t.table} >= {t.at_least}" for t in check.tables)
    wanted = f"= {check.equals}" if check.equals is not None else f">= {check.at_least:g}"
    return f"query {check_query(check.sql)[:500]!r} {wanted}"


def _expected(check: QueryCheck) -> str:
    return f"= {check.equals}" if check.equals is not None else f">= {check.at_least:g}"


def evaluate(check: RowCountCheck | QueryCheck, output: str) -> list[DrillValue]:
    """The values the check's output holds, compared: returns them when the check passes, raises
    :class:`CheckFailed` (naming expected and found) when it does not."""
    rows = [line for line in output.splitlines() if line.strip()]
    if isinstance(check, RowCountCheck):
        cells = rows[0].split("|") if len(rows) == 1 else []
        if len(cells) != len(check.tables):
            raise CheckFailed(f"the row counts could not be read from psql's output ({len(rows)} lines)", [])
        values, short = [], []
        for wanted, cell in zip(check.tables, cells, strict=True):
            values.append(DrillValue(name=wanted.table, expected=f">= {wanted.at_least}", found=cell.strip()[:200]))
            if not cell.strip().isdigit() or int(cell) < wanted.at_least:
                short.append(f"{wanted.table}: expected at least {wanted.at_least} rows, found {cell.strip()[:50]}")
        if short:
            raise CheckFailed("; ".join(short), values)
        return values
    if len(rows) != 1 or "|" in rows[0]:
        shape = f"{len(rows)} rows" if len(rows) != 1 else "more than one column"
        value = DrillValue(name="query", expected=_expected(check), found=None)
        raise CheckFailed(f"the query must return a single value; it returned {shape}", [value])
    found = rows[0].strip()
    value = DrillValue(name="query", expected=_expected(check), found=found[:200])
    if check.equals is not None:
        if found != check.equals:
            raise CheckFailed(f"the query's value: expected {check.equals!r}, found {found[:200]!r}", [value])
        return [value]
    assert check.at_least is not None
    try:
        number = float(found)
    except ValueError:
        raise CheckFailed(f"the query's value is not a number: found {found[:200]!r}", [value]) from None
    if not number >= check.at_least:
        raise CheckFailed(f"the query's value: expected at least {check.at_least:g}, found {found[:200]}", [value])
    return [value]
