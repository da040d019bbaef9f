"""Restore drills as data (pure): the scratch container a drill restores into, the check's argv per engine,
and what its output means.

The scratch container ``berth-drill-<digest of the drill id>`` runs the engine's image with a random
password, no network (the restore and the check come through the engine's exec) and no volume kept (its
anonymous data volume goes with it); its labels (``berth.kind=drill``, the drill, the team, and the time
after which any scheduler's sweep removes it) find it again after a restart.

The check runs ``psql -X -q -t -A`` with ``ON_ERROR_STOP`` and the password in the exec's environment
(``PGPASSWORD``), never in its argv: ``BEGIN READ ONLY``, the statement, ``ROLLBACK``, each its own ``-c``,
so the user's statement cannot write (and the session's default is read-only too). Row counts are one
statement Berth writes itself, the table names quoted as identifiers.

MariaDB: the scratch runs with a random root password (``MARIADB_ROOT_PASSWORD``); after the restore a
user that may only read (``SELECT``, ``SHOW VIEW``; created with the password's hash, never the plaintext)
runs the check with the ``mariadb`` client in ``--binary-mode`` (no client command but ``DELIMITER``, which
a query may not use), in a read-only transaction of a read-only session, the password in ``MYSQL_PWD``.
Redis: the scratch server takes a random ``--requirepass`` (its only option besides ``--appendonly no``,
so the restored RDB is what it loads); the check is ``DBSIZE`` and one ``EXISTS`` per named key, each key
one argv word, the password in ``REDISCLI_AUTH``.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from typing import Any

from berth_common import dbengines
from berth_common import labels as label
from berth_common.background import DEFAULT as DEFAULT_LIMITS
from berth_common.background import BackgroundLimits
from berth_common.catalogue import DrillBackup, DrillValue, KeyCheck, QueryCheck, RowCountCheck, check_query
from berth_scheduler.domain.containers import LOG_CONFIG
from berth_scheduler.domain.dumps import Exec, redis_cli

KIND = "drill"
DRILL_LABEL = "berth.drill"  # the drill id
DEADLINE_LABEL = "berth.drill-deadline"  # epoch seconds after which a sweep removes the container
USER = "postgres"
ADMIN_DATABASE = "postgres"
STATEMENT_TIMEOUT_MS = 300_000
# per engine: the user the restore runs as, and the database a check runs in when none is named
ADMIN: dict[str, tuple[str, str]] = {
    "postgresql": (USER, ADMIN_DATABASE),
    "mariadb": ("root", "mysql"),
    "redis": ("default", "0"),
}
CHECK_USER = "berth_check"  # MariaDB: the user that may only read, created after the restore
_DELIMITER = re.compile(r"^\s*delimiter\b", re.IGNORECASE | re.MULTILINE)


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


def scratch(
    msg: DrillBackup, image: str, password: str, deadline: float, limits: BackgroundLimits = DEFAULT_LIMITS
) -> Scratch:
    """The scratch container of ``msg``: ``image`` (the engine's, after the image map), ``password``; it
    runs with the background ``limits`` (a drill never starves the applications on its server)."""
    body: dict[str, Any] = {"Image": image}
    if msg.engine == "postgresql":
        creds = dbengines.Credentials(USER, password, ADMIN_DATABASE)
        body["Env"] = [f"{k}={v}" for k, v in dbengines.container_env(msg.engine, creds).items()]
    elif msg.engine == "mariadb":
        body["Env"] = [f"MARIADB_ROOT_PASSWORD={password}"]
    else:  # redis: the password is a server option; the restored RDB is what it loads (no AOF)
        creds = dbengines.Credentials("", password, "0")
        body["Cmd"] = dbengines.container_command("redis", creds, {"appendonly": "no"})
    body["Labels"] = scratch_labels(msg, deadline)
    body["HostConfig"] = {
        "NetworkMode": "none",
        "Init": True,
        "LogConfig": LOG_CONFIG,
        "AutoRemove": False,
        **limits.host_config(),
    }
    return Scratch(scratch_name(msg.drill_id), body)


def readiness(engine: str, password: str) -> dbengines.Exec:
    """The scratch server accepts connections (as the restore's user)."""
    user, database = ADMIN[engine]
    return dbengines.readiness(engine, dbengines.Credentials("" if engine == "redis" else user, password, database))


def expired(labels: dict[str, str], now: float) -> bool:
    """A drill container whose deadline passed (one without a readable deadline is expired too)."""
    try:
        return float(labels.get(DEADLINE_LABEL, "")) < now
    except ValueError:
        return True


# --- the check -----------------------------------------------------------------------------------------


def quote_table(table: str, quote: str = '"') -> str:
    """``schema.table`` as quoted identifiers (the catalogue's pattern admits no quote; doubled anyway);
    MariaDB quotes with backquotes."""
    return ".".join(quote + part.replace(quote, quote * 2) + quote for part in table.split("."))


def check_sql(check: RowCountCheck | QueryCheck, quote: str = '"') -> str:
    """The one statement the check runs."""
    if isinstance(check, QueryCheck):
        return check_query(check.sql)
    # the tables match the catalogue's identifier pattern and are quoted: no value reaches the SQL
    counts = ", ".join(f"(SELECT count(*) FROM {quote_table(t.table, quote)})" for t in check.tables)  # noqa: S608
    return f"SELECT {counts}"


def check_exec(check: RowCountCheck | QueryCheck, database: str, password: str) -> Exec:
    """``psql`` running the check's statement in a read-only transaction in ``database``."""
    argv = ["psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", USER, "-d", database]
    argv += ["-c", "BEGIN READ ONLY", "-c", check_sql(check), "-c", "ROLLBACK"]
    options = f"-c default_transaction_read_only=on -c statement_timeout={STATEMENT_TIMEOUT_MS}"
    return Exec(argv, {"PGPASSWORD": password, "PGOPTIONS": options})


def describe(check: RowCountCheck | QueryCheck | KeyCheck) -> str:
    """What the check checks, in words."""
    if isinstance(check, KeyCheck):
        parts = [f"keys >= {check.at_least}"] if check.at_least is not None else []
        return ", ".join([*parts, *(f"key {k!r} exists" for k in check.exist)])[:4000]
    if isinstance(check, RowCountCheck):
        return "row counts: " + ", ".join(f"{t.table} >= {t.at_least}" for t in check.tables)
    wanted = f"= {check.equals}" if check.equals is not None else f">= {check.at_least:g}"
    return f"query {check_query(check.sql)[:500]!r} {wanted}"


def _expected(check: QueryCheck) -> str:
    return f"= {check.equals}" if check.equals is not None else f">= {check.at_least:g}"


def evaluate(check: RowCountCheck | QueryCheck, output: str, separator: str = "|") -> list[DrillValue]:
    """The values the check's output holds (``separator`` between columns), compared: returns them when the
    check passes, raises :class:`CheckFailed` (naming expected and found) when it does not."""
    rows = [line for line in output.splitlines() if line.strip()]
    if isinstance(check, RowCountCheck):
        cells = rows[0].split(separator) if len(rows) == 1 else []
        if len(cells) != len(check.tables):
            raise CheckFailed(f"the row counts could not be read from the client's output ({len(rows)} lines)", [])
        values, short = [], []
        for wanted, cell in zip(check.tables, cells, strict=True):
            values.append(DrillValue(name=wanted.table, expected=f">= {wanted.at_least}", found=cell.strip()[:200]))
            if not cell.strip().isdigit() or int(cell) < wanted.at_least:
                short.append(f"{wanted.table}: expected at least {wanted.at_least} rows, found {cell.strip()[:50]}")
        if short:
            raise CheckFailed("; ".join(short), values)
        return values
    if len(rows) != 1 or separator in rows[0]:
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


# --- MariaDB and Redis ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckPlan:
    """``prepare`` runs first (each must exit 0), then each of ``checks``, whose outputs are evaluated."""

    checks: list[Exec]
    prepare: list[Exec] = field(default_factory=list)


def check_plan(check: RowCountCheck | QueryCheck | KeyCheck, engine: str, database: str, password: str) -> CheckPlan:
    """The commands of ``check`` on ``engine``'s scratch server, in ``database`` (Redis: its number)."""
    if isinstance(check, KeyCheck):
        where = ["-n", database]
        counts = [redis_cli(password, *where, "DBSIZE")] if check.at_least is not None else []
        return CheckPlan(counts + [redis_cli(password, *where, "EXISTS", key) for key in check.exist])
    if engine == "postgresql":
        return CheckPlan([check_exec(check, database, password)])
    return CheckPlan([mariadb_check(check, database, password)], [mariadb_reader(password)])


def mariadb_reader(password: str) -> Exec:
    """Root makes the user that may only read (its password given as the native hash, never in plaintext)."""
    hashed = dbengines.mysql_native_hash(password)
    sql = (
        f"CREATE OR REPLACE USER '{CHECK_USER}'@'%' IDENTIFIED BY PASSWORD '{hashed}'; "
        f"GRANT SELECT, SHOW VIEW ON *.* TO '{CHECK_USER}'@'%'"
    )
    return Exec(["mariadb", "--binary-mode", "-u", "root", "-e", sql], {"MYSQL_PWD": password})


def mariadb_check(check: RowCountCheck | QueryCheck, database: str, password: str) -> Exec:
    """The check's statement as the reading user, in a read-only transaction of a read-only session."""
    statement = check_sql(check, "`")
    if _DELIMITER.search(statement):
        raise CheckFailed("the query must not use the client's DELIMITER command", [])
    timeout = STATEMENT_TIMEOUT_MS // 1000
    sql = (
        f"SET SESSION max_statement_time = {timeout}; SET SESSION TRANSACTION READ ONLY; "
        f"START TRANSACTION READ ONLY; {statement}; ROLLBACK"
    )
    argv = ["mariadb", "--binary-mode", "--batch", "--skip-column-names", "-h", "127.0.0.1", "-u", CHECK_USER]
    return Exec([*argv, "-D", database, "-e", sql], {"MYSQL_PWD": password})


def evaluate_all(check: RowCountCheck | QueryCheck | KeyCheck, engine: str, outputs: list[str]) -> list[DrillValue]:
    """The values of the check plan's outputs (in the order of its checks), compared (raises
    :class:`CheckFailed` when the check does not pass)."""
    if isinstance(check, KeyCheck):
        return evaluate_keys(check, outputs)
    return evaluate(check, outputs[0] if outputs else "", "\t" if engine == "mariadb" else "|")


def _integer(output: str) -> int | None:
    words = output.strip().split()
    return int(words[-1]) if words and words[-1].isdigit() else None


def evaluate_keys(check: KeyCheck, outputs: list[str]) -> list[DrillValue]:
    """``DBSIZE`` (when a count is wanted) then ``EXISTS`` per key, as ``redis-cli`` printed them."""
    values, short = [], []
    rest = list(outputs)
    if check.at_least is not None:
        count = _integer(rest.pop(0)) if rest else None
        values.append(
            DrillValue(name="keys", expected=f">= {check.at_least}", found=None if count is None else str(count))
        )
        if count is None or count < check.at_least:
            short.append(
                f"expected at least {check.at_least} keys, found {'none readable' if count is None else count}"
            )
    for key in check.exist:
        found = _integer(rest.pop(0)) if rest else None
        present = "exists" if found == 1 else "missing" if found == 0 else None
        values.append(DrillValue(name=f"key {key}"[:200], expected="exists", found=present))
        if present != "exists":
            short.append(f"key {key[:100]!r} is {present or 'not readable'}")
    if short:
        raise CheckFailed("; ".join(short), values)
    return values
