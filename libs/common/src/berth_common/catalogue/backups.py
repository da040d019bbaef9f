"""Backups of databases and of Docker volumes: the api asks (``cmd.backup.start``, ``cmd.backup.restore``), the scheduler runs
them on the database's server and answers with ``evt.backup.*`` / ``evt.restore.*``; the notifier tells the
team about successes, failures and missed schedules.

A command is self-contained: it names the container, the engine, the database and its user (or the volume
and what to stop while it is read), the destinations and their credentials, so the scheduler keeps no copy
of the api's databases. Passwords and S3
secret keys travel sealed (``berth_common.sealing``, bound to their place, like ``RegistryAuth.password``)
and print as ``**********``; the consumer calls ``reveal()`` where the value is used.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SecretStr,
    Tag,
    field_serializer,
    field_validator,
    model_validator,
)

from berth_common import sealing
from berth_common.catalogue.base import Command, Event, Id, register
from berth_common.catalogue.specs import MAX_SEALED_CHARS
from berth_common.outbound import OutboundPolicy, parse_allowance

Engine = Literal["postgresql", "mysql", "mariadb", "redis", "mongodb"]
Compression = Literal["zstd", "gzip"]
CONTAINER_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$"
# A database or user name that reaches a dump tool's argv: no leading '-' (never read as an option).
DB_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_$.-]{0,62}$"
# A key prefix in the bucket: path segments of safe characters, no '..', no leading '/'.
PREFIX_PATTERN = r"^(?:[A-Za-z0-9_.=-]+/)*$"
DIRECTORY_PATTERN = r"^/(?:[A-Za-z0-9_.=-]+/?)*$"
# A Docker volume's name (it reaches a container's mounts, never an argv); 64 characters at most.
VOLUME_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$"
SERVICE_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
MAX_REASON = 4000
VOLUME_ENGINE = "volume"  # what the backup events name as the engine of a volume's backup


def _dot_segment(path: str) -> bool:
    return any(part in (".", "..") for part in path.split("/"))


class _Sealed(BaseModel):
    """A model with one secret field (``SECRET``), sealed on the wire and bound to :attr:`aad`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    SECRET: ClassVar[str] = ""

    @property
    def aad(self) -> str:  # pragma: no cover - every subclass names its place
        raise NotImplementedError

    def reveal(self) -> str:
        """The plaintext, for the point of use only (raises ``sealing.UnsealError`` if it does not open)."""
        raw: str = getattr(self, self.SECRET).get_secret_value()
        return sealing.unseal(raw, self.aad) if sealing.is_sealed(raw) else raw

    def _seal(self, value: SecretStr) -> str:
        raw = value.get_secret_value()
        return sealing.reseal(raw, self.aad) if sealing.is_sealed(raw) else sealing.seal(raw, self.aad)


class BackupSource(_Sealed):
    """The database to dump (or restore into): a container on a server, its engine, the database (None:
    every database of the server, roles included), and the user and password the dump tool connects with."""

    SECRET: ClassVar[str] = "password"

    kind: Literal["database"] = "database"
    server_id: Id = "local"
    container: str = Field(pattern=CONTAINER_PATTERN)
    engine: Engine
    database: str | None = Field(default=None, pattern=DB_NAME_PATTERN)
    user: str = Field(default="postgres", pattern=DB_NAME_PATTERN)
    password: SecretStr = Field(default=SecretStr(""), max_length=MAX_SEALED_CHARS)

    @property
    def aad(self) -> str:
        return f"berth/backup-source/{self.server_id}/{self.container}"

    @field_serializer("password", when_used="json")
    def _sealed_on_the_wire(self, value: SecretStr) -> str:
        return self._seal(value)


class VolumeSource(BaseModel):
    """A Docker volume to back up as a tar stream (or to restore into): ``volume`` on ``server_id``, of the
    application ``application_id`` (of the command's team). While it is read (or written), the containers
    ``stop_containers`` and the running replicas of the application's service ``stop_service`` (by their
    labels) are stopped for consistency and started again afterwards, also when the backup fails."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["volume"] = "volume"
    server_id: Id = "local"
    volume: str = Field(pattern=VOLUME_PATTERN)
    application_id: Id
    stop_containers: list[Annotated[str, Field(pattern=CONTAINER_PATTERN)]] = Field(default_factory=list, max_length=32)
    stop_service: str | None = Field(default=None, pattern=SERVICE_PATTERN)

    @property
    def engine(self) -> str:
        return VOLUME_ENGINE

    @property
    def database(self) -> str:
        """How the backup events name what was backed up: the volume."""
        return self.volume


def _source_kind(value: Any) -> str:
    """A source without ``kind`` is a database's (the commands made before volumes had one)."""
    kind = value.get("kind", "database") if isinstance(value, dict) else getattr(value, "kind", "database")
    return str(kind)


AnySource = Annotated[
    Annotated[BackupSource, Tag("database")] | Annotated[VolumeSource, Tag("volume")],
    Discriminator(_source_kind),
]
"""What a backup reads or a restore writes: a database (``kind`` absent or ``database``) or a volume."""


class S3Destination(_Sealed):
    """An S3-compatible bucket: objects go to ``<prefix><backup object name>``; ``secret_key`` sealed."""

    SECRET: ClassVar[str] = "secret_key"

    kind: Literal["s3"] = "s3"
    endpoint: str = Field(pattern=r"^https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?/?$", max_length=300)
    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    region: str = Field(default="us-east-1", pattern=r"^[a-z0-9-]{1,32}$")
    path_style: bool = True
    prefix: str = Field(default="", max_length=512, pattern=PREFIX_PATTERN)
    access_key: str = Field(min_length=1, max_length=256)
    secret_key: SecretStr = Field(max_length=MAX_SEALED_CHARS)
    encrypt: bool = False  # every backup sent here is encrypted with the team's key (the api sets ``encryption``)
    # The outbound rule of the team's store (berth_common.outbound), decided by the api from its settings
    # (BERTH_OUTBOUND_ALLOW, _PRIVATE, _ALLOW_TEAMS): the scheduler and its workers connect through it.
    outbound_allow: list[str] = Field(default_factory=list, max_length=200, exclude_if=lambda v: not v)
    outbound_private: bool = True

    @field_validator("outbound_allow")
    @classmethod
    def _allowance(cls, value: list[str]) -> list[str]:
        parse_allowance(value)
        return value

    @property
    def outbound_policy(self) -> OutboundPolicy:
        return OutboundPolicy.from_entries(self.outbound_allow, allow_private=self.outbound_private)

    @model_validator(mode="after")
    def _prefix_inside(self) -> S3Destination:
        if _dot_segment(self.prefix):
            raise ValueError("the prefix must not contain '.' or '..' segments")
        return self

    @property
    def aad(self) -> str:
        return f"berth/s3/{self.bucket}/{self.access_key}"

    @property
    def name(self) -> str:
        """How events name it (never a credential)."""
        return f"s3:{self.endpoint.rstrip('/')}/{self.bucket}"

    @field_serializer("secret_key", when_used="json")
    def _sealed_on_the_wire(self, value: SecretStr) -> str:
        return self._seal(value)


class DirectoryDestination(BaseModel):
    """A directory on a server (absolute path, made if missing); objects are files in it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["directory"] = "directory"
    server_id: Id = "local"
    path: str = Field(pattern=DIRECTORY_PATTERN, max_length=1024)
    encrypt: bool = False  # every backup sent here is encrypted with the team's key (the api sets ``encryption``)

    @model_validator(mode="after")
    def _no_parent(self) -> DirectoryDestination:
        if _dot_segment(self.path):
            raise ValueError("the directory must not contain '.' or '..'")
        return self

    @property
    def name(self) -> str:
        return f"dir:{self.server_id}:{self.path.rstrip('/')}"


Destination = Annotated[S3Destination | DirectoryDestination, Field(discriminator="kind")]


class BackupKey(_Sealed):
    """A team's backup key (32 bytes, base64; sealed on the wire, bound to the team): a backup made with it
    is compressed, then encrypted in Berth's streaming format (``berth_common.streamcrypt``), and its object
    names end with ``.enc``; a restore opens it with the same key. ``key_id`` (hex) is the key's id as the
    object's header names it."""

    SECRET: ClassVar[str] = "key"

    team_id: Id
    key_id: str = Field(pattern=r"^[0-9a-f]{16}$")
    key: SecretStr = Field(max_length=MAX_SEALED_CHARS)

    @property
    def aad(self) -> str:
        return f"berth/backup-key/{self.team_id}/{self.key_id}"

    @field_serializer("key", when_used="json")
    def _sealed_on_the_wire(self, value: SecretStr) -> str:
        return self._seal(value)


class Retention(BaseModel):
    """Per destination, after a verified backup: keep the ``keep_count`` newest and those younger than
    ``keep_days`` (a backup is deleted when a limit that is set says so); the newest verified backup is
    always kept."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keep_count: int | None = Field(default=None, ge=1, le=10000)
    keep_days: int | None = Field(default=None, ge=1, le=36500)


@register
class StartBackup(Command):
    """Back up ``source`` now: the engine's native consistent dump (a volume: a tar of it), streamed compressed
    (then encrypted with the team's key ``encryption`` when set) to every destination (no full local copy),
    then verified (the dump's exit status, the object listed back with its size, its SHA-256 recorded);
    retention is applied per destination after that only. Answered by
    ``evt.backup.started`` then ``evt.backup.succeeded`` or ``evt.backup.failed``; a repeated command
    (same ``backup_id``) has no second effect."""

    TYPE = "cmd.backup.start"
    PRODUCERS = ("api", "scheduler")  # the scheduler: a schedule's run
    CONSUMERS = ("scheduler",)
    backup_id: Id
    team_id: Id
    database_id: Id  # what retention groups backups by (the api's database or volume, or a schedule's target)
    source: AnySource
    destinations: list[Destination] = Field(min_length=1, max_length=4)
    compression: Compression = "gzip"
    retention: Retention = Field(default_factory=Retention)
    # set: the backup is encrypted with this team key after compression (object names end with ``.enc``)
    encryption: BackupKey | None = None


class BackupObject(BaseModel):
    """One stored copy of a backup: where (``destination``: its name, never a credential), its key (the
    object key, or the file's path), its size in bytes and the SHA-256 of its bytes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    destination: str
    key: str
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class BackupEvent(Event):
    """Fields every ``evt.backup.*`` event has (not a message by itself)."""

    PRODUCERS = ("scheduler",)
    CONSUMERS = ("notifier", "api")  # the api: its projection of backups
    backup_id: str
    team_id: str
    database_id: str


@register
class BackupStarted(BackupEvent):
    """The scheduler started the dump (``engine`` of ``database``, None: all databases; a volume's backup:
    engine ``volume``, ``database`` the volume)."""

    TYPE = "evt.backup.started"
    CONSUMERS = ("operator", "api")
    engine: str
    database: str | None = None


@register
class BackupSucceeded(BackupEvent):
    """The backup is verified good in every destination: ``objects`` lists each copy with its size and
    SHA-256; ``compression`` is the one used (the object names end with it); ``pruned``: how many older
    backups retention deleted."""

    TYPE = "evt.backup.succeeded"
    engine: str
    database: str | None = None
    compression: Compression
    objects: list[BackupObject]
    duration_s: float = Field(ge=0)
    pruned: int = Field(default=0, ge=0)
    # the objects are encrypted with the team key ``key_id`` (hex) after compression
    encrypted: bool = False
    key_id: str | None = None


@register
class BackupFailed(BackupEvent):
    """The backup is not good: ``reason`` is what the dump tool or S3 said (never a secret); no partial
    object of it is left listed, and retention deleted nothing."""

    TYPE = "evt.backup.failed"
    engine: str
    database: str | None = None
    reason: str = Field(max_length=MAX_REASON)


@register
class BackupMissed(BackupEvent):
    """A scheduled backup did not run at its time ``due_at`` (ISO 8601): ``reason`` says why when known."""

    TYPE = "evt.backup.missed"
    schedule_id: str
    due_at: str
    reason: str = Field(default="", max_length=MAX_REASON)


@register
class RestoreBackup(Command):
    """Restore the backup object ``key`` (in ``origin``, with its ``sha256``, ``compression`` and, for an object
    ending ``.enc``, the team's key ``encryption``) into ``target``: a new database named ``target.database``
    (a volume: a new volume ``target.volume``) by default; over an existing one only with ``overwrite`` and ``confirm_overwrite`` both set. The object's SHA-256 is checked while it streams;
    the engine's restore tool reads it from its stdin. Answered by ``evt.restore.succeeded`` or
    ``evt.restore.failed``; progress goes to ``log.<restore_id>``."""

    TYPE = "cmd.backup.restore"
    PRODUCERS = ("api",)
    CONSUMERS = ("scheduler",)
    restore_id: Id
    backup_id: Id
    team_id: Id
    database_id: Id
    origin: Destination
    key: str = Field(min_length=1, max_length=1024)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    compression: Compression
    target: AnySource
    # the database the backup was made of (None: all, or not known): MongoDB renames its collections from it
    source_database: str | None = Field(default=None, pattern=DB_NAME_PATTERN)
    overwrite: bool = False
    confirm_overwrite: bool = False
    # the team key an encrypted object (its key ends with ``.enc``) is opened with
    encryption: BackupKey | None = None

    @model_validator(mode="after")
    def _confirmed(self) -> RestoreBackup:
        if _dot_segment(self.key) or "\x00" in self.key:
            raise ValueError("the key must not contain '.' or '..' segments")
        if self.overwrite and not self.confirm_overwrite:
            raise ValueError("restoring over an existing database needs confirm_overwrite")
        return self


class RestoreEvent(Event):
    """Fields every ``evt.restore.*`` event has (not a message by itself)."""

    PRODUCERS = ("scheduler",)
    CONSUMERS = ("notifier", "api")  # the api: its projection of restores
    restore_id: str
    backup_id: str
    team_id: str
    database_id: str


@register
class RestoreSucceeded(RestoreEvent):
    """The backup was restored into ``database`` of ``container`` (a volume: both name the volume); the
    restore tool exited 0."""

    TYPE = "evt.restore.succeeded"
    container: str
    database: str | None = None
    duration_s: float = Field(ge=0)


@register
class RestoreFailed(RestoreEvent):
    """The restore did not complete: ``reason`` is what the restore tool, S3 or the check said."""

    TYPE = "evt.restore.failed"
    container: str
    database: str | None = None
    reason: str = Field(max_length=MAX_REASON)
