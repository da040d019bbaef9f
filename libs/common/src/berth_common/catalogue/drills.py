"""Restore drills: a backup is restored into a scratch database and checked, so a team learns that its backups
really restore before the day it needs one.

``cmd.backup.drill`` is self-contained like ``cmd.backup.start``: it names the stored object (its
destination with the credentials sealed, its key, SHA-256 and compression; or only the destination, for
the newest verified backup of the database the scheduler recorded there), the engine it was dumped from
and the database, and the check. The scheduler starts a scratch container of the engine's image (random
credentials, no volume kept, labelled so that a sweep removes it), restores the object into it as
``cmd.backup.restore`` would, runs the check and removes the container whatever happened. A schedule may
publish it (``SCHEDULABLE``: its ``drill_id`` is set to each run's id). Answered by
``evt.backup.drill_succeeded`` or ``evt.backup.drill_failed`` (what was checked, the values found, how long
the restore took, the reason); a repeated command (same message id) has no second effect.

The check is the row counts of named tables against expected minimums, or one SQL query of the user's
(one statement, run in a read-only transaction) whose single value must equal, or be at least, the
expected value (PostgreSQL through ``psql``, MariaDB through its client); for Redis, the key count
(``DBSIZE``) against a minimum and named keys that must exist. PostgreSQL, MariaDB and Redis backups are
drilled (``DRILL_ENGINES``); the others are refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.config import JsonDict

from berth_common.catalogue.backups import (
    DB_NAME_PATTERN,
    MAX_REASON,
    BackupKey,
    Compression,
    Destination,
    _dot_segment,
)
from berth_common.catalogue.base import Command, Event, Id, register

# A table a row count names: ``table`` or ``schema.table``, plain identifiers (quoted when used).
TABLE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_$]{0,62}(?:\.[A-Za-z_][A-Za-z0-9_$]{0,62})?$"
MAX_QUERY = 2000
MAX_TABLES = 20
MAX_VALUE = 200
MAX_KEYS = 20
DRILL_ENGINES: tuple[str, ...] = ("postgresql", "mariadb", "redis")
DrillEngine = Literal["postgresql", "mariadb", "redis"]
# A Redis key a check names: printable, no control character (it reaches redis-cli's argv as one word).
KEY_PATTERN = r"^[^\x00-\x1f\x7f]{1,512}$"


def check_query(sql: str) -> str:
    """The user's query, checked: one statement (a trailing ``;`` is dropped), no NUL, not a ``psql``
    backslash command, at most ``MAX_QUERY`` characters. Raises ValueError saying what is wrong."""
    text = sql.strip()
    if text.endswith(";"):
        text = text[:-1].rstrip()
    if not text:
        raise ValueError("the query is empty")
    if len(text) > MAX_QUERY:
        raise ValueError(f"the query is longer than {MAX_QUERY} characters")
    if "\x00" in text:
        raise ValueError("the query must not contain a NUL character")
    if text.startswith("\\"):
        raise ValueError("the query must be SQL, not a psql backslash command")
    if ";" in text:
        raise ValueError("the query must be one statement (no ';' inside it)")
    return text


def _tagged(*alternatives: JsonDict) -> Callable[[JsonDict], None]:
    """A check's JSON Schema extras: ``kind`` is required (it picks the check: a request without it is
    refused, whatever its default says), and the ``anyOf`` of what the check's validator asks for."""

    def extra(schema: JsonDict) -> None:
        required = schema.get("required")
        schema["required"] = ["kind", *(required if isinstance(required, list) else [])]
        if alternatives:
            schema["anyOf"] = list(alternatives)

    return extra


class RowCount(BaseModel):
    """The table ``table`` must have at least ``at_least`` rows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    table: str = Field(pattern=TABLE_PATTERN, max_length=127)
    at_least: int = Field(default=1, ge=0)


class RowCountCheck(BaseModel):
    """Each named table has at least its expected number of rows."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_tagged())

    kind: Literal["row_counts"] = "row_counts"
    tables: list[RowCount] = Field(min_length=1, max_length=MAX_TABLES)


class QueryCheck(BaseModel):
    """``sql`` (one read-only statement) returns a single value that equals ``equals`` (compared as text)
    or is at least ``at_least`` (compared as a number): exactly one of the two is given."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra=_tagged(
            {"required": ["equals"], "properties": {"equals": {"type": "string"}, "at_least": {"type": "null"}}},
            {"required": ["at_least"], "properties": {"at_least": {"type": "number"}, "equals": {"type": "null"}}},
        ),
    )

    kind: Literal["query"] = "query"
    sql: str = Field(min_length=1, max_length=MAX_QUERY + 64)
    equals: str | None = Field(default=None, max_length=MAX_VALUE)
    at_least: float | None = None

    @model_validator(mode="after")
    def _valid(self) -> QueryCheck:
        check_query(self.sql)
        if (self.equals is None) == (self.at_least is None):
            raise ValueError("give exactly one of equals or at_least")
        return self


class KeyCheck(BaseModel):
    """Redis: the restored data set holds at least ``at_least`` keys (``DBSIZE``) and each key of ``exist``;
    one of the two at least is given."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra=_tagged(
            {"required": ["at_least"], "properties": {"at_least": {"type": "integer"}}},
            {"required": ["exist"], "properties": {"exist": {"minItems": 1}}},
        ),
    )

    kind: Literal["keys"] = "keys"
    at_least: int | None = Field(default=None, ge=0)
    exist: list[Annotated[str, Field(pattern=KEY_PATTERN)]] = Field(default_factory=list, max_length=MAX_KEYS)

    @model_validator(mode="after")
    def _something(self) -> KeyCheck:
        if self.at_least is None and not self.exist:
            raise ValueError("give at_least (the key count) or exist (keys that must exist), or both")
        return self


DrillCheck = Annotated[RowCountCheck | QueryCheck | KeyCheck, Field(discriminator="kind")]


def check_fits(engine: str, kind: str) -> str | None:
    """Why a check of ``kind`` cannot run on ``engine`` (None: it can): Redis takes ``keys`` only, the SQL
    engines ``row_counts`` or ``query``."""
    if engine not in DRILL_ENGINES:
        return f"drills run for {', '.join(DRILL_ENGINES)}, not {engine}"
    if (engine == "redis") != (kind == "keys"):
        wanted = "keys" if engine == "redis" else "row_counts or query"
        return f"a {engine} backup is checked with {wanted}, not {kind}"
    return None


@register
class DrillBackup(Command):
    """Restore the backup object ``key`` (in ``origin``, with its ``sha256`` and ``compression``; without
    them the newest verified backup of ``database_id`` there; dumped from ``engine`` ``version``, of
    ``database``, None: every database) into a scratch container on ``server_id`` (the server of the backup's database, or ``local``), run ``check`` in ``check_database``
    (default: ``database``, else the engine's admin database), report, and remove the container. Answered by
    ``evt.backup.drill_succeeded`` or ``evt.backup.drill_failed``."""

    TYPE = "cmd.backup.drill"
    # a schedule's run is published by the scheduler on the api's behalf (``cmd.schedule.set``'s data)
    PRODUCERS = ("api",)
    CONSUMERS = ("scheduler",)
    drill_id: Id
    team_id: Id
    database_id: Id  # whose backups: the newest of them is drilled when no key is given
    origin: Destination
    # the object: all four given, or none (then the newest verified backup of ``database_id`` that the
    # scheduler recorded in ``origin`` and retention kept: what a schedule's drill wants)
    backup_id: Id | None = None
    key: str | None = Field(default=None, min_length=1, max_length=1024)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    compression: Compression | None = None
    engine: DrillEngine = "postgresql"
    version: str | None = Field(default=None, pattern=r"^[0-9][0-9.]{0,9}$")  # None: the engine's default
    database: str | None = Field(default=None, pattern=DB_NAME_PATTERN)
    check_database: str | None = Field(default=None, pattern=DB_NAME_PATTERN)
    server_id: Id = "local"
    check: DrillCheck
    # the team's key, for an encrypted object (its key ends with ``.enc``)
    encryption: BackupKey | None = None

    @model_validator(mode="after")
    def _object(self) -> DrillBackup:
        named = (self.backup_id, self.key, self.sha256, self.compression)
        if any(v is not None for v in named) and any(v is None for v in named):
            raise ValueError("give backup_id, key, sha256 and compression together, or none (the newest backup)")
        if self.key is not None and (_dot_segment(self.key) or "\x00" in self.key):
            raise ValueError("the key must not contain '.' or '..' segments")
        if (why := check_fits(self.engine, self.check.kind)) is not None:
            raise ValueError(why)
        return self


class DrillValue(BaseModel):
    """One value the check read: what (a table, or ``query``), what was expected (``>= 5``, ``= ok``) and
    what was found (None: not read)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(max_length=200)
    expected: str = Field(max_length=MAX_VALUE + 8)
    found: str | None = Field(default=None, max_length=MAX_VALUE)


class DrillEvent(Event):
    """Fields every ``evt.backup.drill_*`` event has (not a message by itself); ``backup_id``: the backup
    drilled ("" when no backup was found)."""

    PRODUCERS = ("scheduler",)
    CONSUMERS = ("notifier", "api")  # the api: its projection of drills
    drill_id: str
    backup_id: str
    team_id: str
    database_id: str
    check: str = Field(max_length=MAX_REASON)  # what was checked, in words
    values: list[DrillValue] = Field(default_factory=list)


@register
class DrillSucceeded(DrillEvent):
    """The backup restored into a scratch database (in ``restore_s`` seconds) and the check passed with
    ``values``; the whole drill took ``duration_s``."""

    TYPE = "evt.backup.drill_succeeded"
    restore_s: float = Field(ge=0)
    duration_s: float = Field(ge=0)


@register
class DrillFailed(DrillEvent):
    """The drill failed: the restore did not complete (``restore_s`` None) or the check did not pass;
    ``reason`` says which and why (never a secret), ``values`` what was found."""

    TYPE = "evt.backup.drill_failed"
    restore_s: float | None = Field(default=None, ge=0)
    duration_s: float = Field(ge=0)
    reason: str = Field(max_length=MAX_REASON)
