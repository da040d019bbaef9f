"""Bodies and answers of the backup routes: destinations (S3 or a directory), backups, restores,
schedules and the team's backup key. Secrets are write-only: an S3 secret key comes in, never goes out."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr

from berth_api.domain import names
from berth_api.entrypoints.schemas import ID_PATTERN, Flag, given
from berth_common import streamcrypt
from berth_common.catalogue import CronExpression, TimeZone
from berth_common.catalogue.backups import DIRECTORY_PATTERN, PREFIX_PATTERN
from berth_common.values import DNS_LABEL_PATTERN, SLUG_PATTERN

BACKUP_ID = r"^[A-Za-z0-9_-]{1,64}$"  # a schedule's run: schedule-<database id>-<due time>
Name = Annotated[
    str,
    Field(min_length=1, max_length=63, examples=["offsite"], json_schema_extra={"pattern": DNS_LABEL_PATTERN}),
    AfterValidator(names.resource_name),
]
Endpoint = Annotated[
    str,
    Field(
        pattern=r"^https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?/?$",
        max_length=300,
        examples=["https://s3.eu-central-1.amazonaws.com"],
        description="The S3 API's URL: http(s)://host[:port], no path",
    ),
]
Bucket = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", examples=["berth-backups"])]
Region = Annotated[str, Field(pattern=r"^[a-z0-9-]{1,32}$", examples=["us-east-1"])]


def _inside(value: str) -> str:
    if any(part in (".", "..") for part in value.split("/")):
        raise ValueError("'.' and '..' segments are not allowed")
    return value


Prefix = Annotated[
    str,
    Field(max_length=512, pattern=PREFIX_PATTERN, examples=["db/"], description="Ends with /"),
    AfterValidator(_inside),
]
AccessKey = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[\x21-\x7e]+$", examples=["AKIAEXAMPLE"])]
SecretKey = Annotated[SecretStr, Field(min_length=1, max_length=256, description="Never shown again")]
ServerId = Annotated[str, Field(pattern=r"^(local|[0-9a-f]{32})$", description="A server of the team, or local")]
DirPath = Annotated[
    str,
    Field(pattern=DIRECTORY_PATTERN, max_length=1024, examples=["/var/backups/berth"], description="Absolute"),
    AfterValidator(_inside),
]
Compression = Annotated[
    Literal["gzip", "zstd"],
    Field(description="zstd (the default: faster than gzip at a similar ratio) or gzip; object names say which"),
]
ENCRYPT = (
    "Encrypt with the team's backup key after compression (also when a destination says encrypt); "
    "objects end .enc (GET /v1/team/backup-key exports the key)"
)
Ids = Annotated[list[Annotated[str, Field(pattern=ID_PATTERN)]], Field(min_length=1, max_length=4)]


class S3DestinationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["s3"]
    name: Name
    endpoint: Endpoint
    bucket: Bucket
    region: Region = "us-east-1"
    path_style: Flag = True
    prefix: Prefix = ""
    access_key: AccessKey
    secret_key: SecretKey
    encrypt: Flag = Field(default=False, description="Encrypt every backup sent here with the team's backup key")


class DirectoryDestinationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["directory"]
    name: Name
    server_id: ServerId = "local"
    path: DirPath
    encrypt: Flag = Field(default=False, description="Encrypt every backup sent here with the team's backup key")


DestinationIn = Annotated[S3DestinationIn | DirectoryDestinationIn, Field(discriminator="kind")]


S3_ONLY = ("endpoint", "bucket", "region", "path_style", "prefix", "access_key", "secret_key")
DIRECTORY_ONLY = ("server_id", "path")


class DestinationUpdate(BaseModel):
    """The fields of one kind: an S3 destination's (``endpoint`` ... ``secret_key``) or a directory's
    (``server_id``, ``path``), never both; the destination's own kind decides which (a 422 names the field)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"anyOf": [given((), absent=DIRECTORY_ONLY), given((), absent=S3_ONLY)]},
    )

    name: Name | None = None
    endpoint: Endpoint | None = None
    bucket: Bucket | None = None
    region: Region | None = None
    path_style: Flag | None = None
    prefix: Prefix | None = None
    access_key: AccessKey | None = None
    secret_key: SecretKey | None = None
    server_id: ServerId | None = None
    path: DirPath | None = None
    encrypt: Flag | None = None


class DestinationOut(BaseModel):
    id: str
    name: str
    kind: str
    endpoint: str | None = None
    bucket: str | None = None
    region: str | None = None
    path_style: Flag | None = None
    prefix: str | None = None
    access_key: str | None = None
    server_id: str | None = None
    path: str | None = None
    encrypt: Flag = False
    created_at: datetime


def destination_out(row: dict[str, Any]) -> DestinationOut:
    return DestinationOut.model_validate({**row["settings"], **{k: v for k, v in row.items() if k != "settings"}})


class RetentionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keep_count: int | None = Field(default=None, ge=1, le=10000, description="Keep this many newest")
    keep_days: int | None = Field(default=None, ge=1, le=36500, description="Keep those younger than this")


class BackupCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    destinations: Ids = Field(description="Ids of the team's backup destinations")
    compression: Compression = "zstd"  # uc.DEFAULT_COMPRESSION
    retention: RetentionIn | None = None
    encrypt: Flag = Field(default=False, description=ENCRYPT)


class ObjectOut(BaseModel):
    destination: str = Field(description="The destination's name in the scheduler's terms (no credential)")
    destination_id: str | None = None
    key: str
    size: int
    sha256: str


class BackupOut(BaseModel):
    id: str
    database_id: str
    state: str = Field(description="requested, running, succeeded, failed or missed")
    reason: str = ""
    engine: str | None = None
    database: str | None = None
    compression: str | None = None
    encrypted: Flag = Field(default=False, description="Encrypted with the team's backup key (objects end .enc)")
    schedule_id: str | None = None
    objects: list[ObjectOut]
    duration_s: float | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


def backup_out(row: dict[str, Any]) -> BackupOut:
    ids = {d["name"]: d["id"] for d in row["destinations"]}
    objects = [{**o, "destination_id": ids.get(o["destination"])} for o in row["objects"]]
    encrypted = any(o["key"].endswith(streamcrypt.SUFFIX) for o in objects)
    return BackupOut.model_validate({**row, "objects": objects, "encrypted": encrypted})


class RestoreCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backup_id: str = Field(pattern=BACKUP_ID, description="A succeeded backup of this database")
    destination: str | None = Field(default=None, pattern=ID_PATTERN, description="Restore from this copy")
    target: Literal["new", "existing"] = Field(default="new", description="A new database, or over this one")
    name: Annotated[str | None, AfterValidator(lambda v: v if v is None else names.slug(v))] = Field(
        default=None,
        min_length=1,
        max_length=32,
        examples=["orders-restored"],
        description="The new database's name",
        json_schema_extra={"pattern": SLUG_PATTERN},
    )
    confirm: Flag = Field(default=False, description="Required for target existing (a backup is taken first)")


class LogLineOut(BaseModel):
    seq: int
    stream: str
    line: str


class RestoreItem(BaseModel):
    """A restore as a database's list shows it (its log is on the restore itself)."""

    id: str
    database_id: str
    backup_id: str
    target: str
    target_database_id: str
    state: str = Field(description="backing_up, waiting, running, succeeded or failed")
    reason: str = ""
    pre_backup_id: str | None = Field(default=None, description="The backup taken before restoring over the data")
    duration_s: float | None = None
    created_at: datetime
    finished_at: datetime | None = None


class RestoreOut(RestoreItem):
    """A restore and the lines of its log so far."""

    log: list[LogLineOut] = []


class ScheduleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cron: CronExpression = Field(examples=["30 2 * * *"], description="minute hour day-of-month month day-of-week")
    timezone: TimeZone = Field(examples=["Europe/Berlin"], description="An IANA time zone")
    destinations: Ids
    retention: RetentionIn = RetentionIn()
    compression: Compression = "zstd"  # uc.DEFAULT_COMPRESSION
    encrypt: Flag = Field(default=False, description=ENCRYPT)
    grace_s: int = Field(default=300, ge=30, le=86400, description="How late a run may start and be on time")


class ScheduleOut(BaseModel):
    database_id: str
    cron: str
    timezone: str
    grace_s: int
    destinations: list[str]
    retention: RetentionIn
    compression: str
    encrypt: Flag = False
    updated_at: datetime


def schedule_out(row: dict[str, Any]) -> ScheduleOut:
    return ScheduleOut.model_validate({**row, "destinations": row["destination_ids"]})


class BackupKeyOut(BaseModel):
    key_id: str = Field(description="The key's id, as the header of every object encrypted with it names it")
    key: str = Field(description="The 32-byte key, base64; keep it offline: it decrypts every encrypted backup")
    format: str = Field(description="The objects' format (docs/backup-encryption.md)")
    algorithm: str
    created_at: datetime
