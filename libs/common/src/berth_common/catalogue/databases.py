"""One-click databases: the api asks the scheduler to run, start, stop, restart or remove a team's database
and to rotate its credentials; the scheduler answers with ``evt.database.changed`` (and
``evt.database.credentials_rotated``).

Every command that needs the database's container carries the whole :class:`DatabaseSpec` (the api's record:
engine, version, image, server, credentials, configuration, limits, exposure), so the scheduler keeps no copy
of a database. The password is sealed on the wire like ``RegistryAuth.password``, bound to the database.
Names on the engine (``berth_common.dbengines``): the container and the private host name
``berth-db-<database id>``, the volume ``berth-db-<database id>-data`` labelled ``berth.team``, ``berth.app``
(the database id) and ``berth.volume`` (``data``).
"""

from __future__ import annotations

import ipaddress
from typing import ClassVar, Literal

from pydantic import Field, SecretStr, field_serializer, field_validator, model_validator

from berth_common import dbengines, sealing
from berth_common.catalogue.base import Command, Event, Id, register
from berth_common.catalogue.specs import MAX_SEALED_CHARS, ResourceLimits, Spec
from berth_common.values import ImageRef, Slug

DATABASE_ID_PATTERN = r"^[0-9a-f]{32}$"
DatabaseState = Literal["starting", "running", "stopped", "failed", "removed"]
MAX_REASON = 2000
EVERYONE = ("0.0.0.0/0", "::/0")


def password_aad(database_id: str, purpose: str = "database") -> str:
    """What a sealed password of a database is bound to (``purpose`` ``database-rotation``: a new one)."""
    return f"berth/{purpose}/{database_id}"


def _seal_for(raw: str, aad: str) -> str:
    return sealing.reseal(raw, aad) if sealing.is_sealed(raw) else sealing.seal(raw, aad)


def _open(raw: str, aad: str) -> str:
    return sealing.unseal(raw, aad) if sealing.is_sealed(raw) else raw


def cidr(value: str) -> str:
    """An address block (``203.0.113.0/24``, ``2001:db8::/32``, or one address), normalised; ValueError
    otherwise."""
    try:
        return str(ipaddress.ip_network(value.strip(), strict=False))
    except ValueError:
        raise ValueError(f"{value!r} is not an address or a CIDR block") from None


class PublicAccess(Spec):
    """The database reached from outside its server: ``port`` published on the server's addresses, for the
    clients in ``allow`` (CIDR blocks; ``0.0.0.0/0`` is everyone on IPv4)."""

    port: int = Field(ge=1024, le=65535)
    allow: list[str] = Field(min_length=1, max_length=64)

    @field_validator("allow")
    @classmethod
    def _blocks(cls, value: list[str]) -> list[str]:
        return [cidr(v) for v in value]

    @property
    def everyone(self) -> bool:
        return any(block in EVERYONE for block in self.allow)


class DatabaseSpec(Spec):
    """What runs for one database, as the api has it. ``image`` is the official name (the scheduler's image
    map may send it to a local image); ``password`` is sealed whenever serialised to JSON."""

    PURPOSE: ClassVar[str] = "database"

    database_id: str = Field(pattern=DATABASE_ID_PATTERN)
    team_id: str = Field(pattern=DATABASE_ID_PATTERN)
    name: Slug
    engine: dbengines.EngineName
    version: str = Field(min_length=1, max_length=16)
    image: ImageRef
    server_id: Id = "local"
    user: str = Field(default="", pattern=r"^([a-z][a-z0-9_]{0,31})?$")
    password: SecretStr = Field(max_length=MAX_SEALED_CHARS)
    database: str = Field(pattern=r"^[a-z0-9_]{1,32}$")
    config: dict[str, str] = Field(default_factory=dict, max_length=64)
    limits: ResourceLimits = ResourceLimits()
    public: PublicAccess | None = None

    @model_validator(mode="after")
    def _engine_rules(self) -> DatabaseSpec:
        engine = dbengines.engine(self.engine)
        engine.image(self.version)  # a version that is not offered raises
        dbengines.validate_config(self.engine, self.config)
        return self

    @property
    def aad(self) -> str:
        return password_aad(self.database_id, self.PURPOSE)

    def reveal(self) -> str:
        """The plaintext password, for the point of use only (raises ``sealing.UnsealError``)."""
        return _open(self.password.get_secret_value(), self.aad)

    def credentials(self) -> dbengines.Credentials:
        return dbengines.Credentials(self.user, self.reveal(), self.database)

    @field_serializer("password", when_used="json")
    def _sealed_on_the_wire(self, value: SecretStr) -> str:
        return _seal_for(value.get_secret_value(), self.aad)


class DatabaseCommand(Command):
    """Fields every ``cmd.database.*`` command has (not a message by itself): the api asks, the scheduler
    does it and answers with ``evt.database.changed`` carrying ``request_id``."""

    PRODUCERS = ("api",)
    CONSUMERS = ("scheduler",)
    request_id: Id


@register
class RunDatabase(DatabaseCommand):
    """Run the database: its volume and network are made if missing, its container is made (made again,
    keeping the volume, when the spec changed: image, credentials, configuration, limits, exposure) and
    started; ``running`` is answered once the engine's readiness check passes."""

    TYPE = "cmd.database.run"
    spec: DatabaseSpec


@register
class StartDatabase(DatabaseCommand):
    """Start the stopped database (made as by ``cmd.database.run`` if its container is gone)."""

    TYPE = "cmd.database.start"
    spec: DatabaseSpec


@register
class RestartDatabase(DatabaseCommand):
    """Restart the database's container (SIGTERM, then start), answered ``running`` once it is ready again."""

    TYPE = "cmd.database.restart"
    spec: DatabaseSpec


@register
class StopDatabase(DatabaseCommand):
    """Stop the database's container (SIGTERM; the engine shuts down cleanly); its volume stays."""

    TYPE = "cmd.database.stop"
    database_id: str = Field(pattern=DATABASE_ID_PATTERN)
    team_id: Id
    server_id: Id = "local"


@register
class RemoveDatabase(DatabaseCommand):
    """Remove the database's container, and its volume only when ``keep_volume`` is false."""

    TYPE = "cmd.database.remove"
    database_id: str = Field(pattern=DATABASE_ID_PATTERN)
    team_id: Id
    server_id: Id = "local"
    keep_volume: bool = True


@register
class RotateDatabaseCredentials(DatabaseCommand):
    """Change the database's password from the one in ``spec`` to ``new_password`` in the running engine
    (``ALTER ROLE``, ``SET PASSWORD``, ``CONFIG SET requirepass``, run through the engine's exec API), then
    make the container again with the new one (the data stays). A repeated command finds the new password
    set and succeeds. Answered by ``evt.database.credentials_rotated``; ``new_password`` is sealed."""

    TYPE = "cmd.database.rotate"
    spec: DatabaseSpec
    new_password: SecretStr = Field(max_length=MAX_SEALED_CHARS)

    def reveal_new(self) -> str:
        return _open(self.new_password.get_secret_value(), password_aad(self.spec.database_id, "database-rotation"))

    @field_serializer("new_password", when_used="json")
    def _sealed_on_the_wire(self, value: SecretStr) -> str:
        return _seal_for(value.get_secret_value(), password_aad(self.spec.database_id, "database-rotation"))


class DatabaseEvent(Event):
    """Fields every ``evt.database.*`` event has (not a message by itself)."""

    PRODUCERS = ("scheduler",)
    CONSUMERS = ("api",)
    database_id: str
    team_id: str
    request_id: str


@register
class DatabaseChanged(DatabaseEvent):
    """The database's container is in ``state``: ``starting`` (made or started, not ready yet), ``running``
    (the readiness check passed), ``stopped``, ``failed`` (``reason`` says why, never a secret) or
    ``removed`` (``volume_kept`` says whether its data stays). ``host`` is its private host name, ``port``
    its published port when it is public."""

    TYPE = "evt.database.changed"
    state: DatabaseState
    reason: str = Field(default="", max_length=MAX_REASON)
    host: str | None = None
    port: int | None = None
    volume_kept: bool | None = None


@register
class DatabaseCredentialsRotated(DatabaseEvent):
    """The password change asked by ``request_id`` is done (``succeeded``: the engine took the new password
    and the database, made again with it, is ready) or was not made (``failed``: the old password stays;
    ``reason`` says why)."""

    TYPE = "evt.database.credentials_rotated"
    outcome: Literal["succeeded", "failed"]
    reason: str = Field(default="", max_length=MAX_REASON)


# --- minor-version upgrades -------------------------------------------------------------------------


@register
class UpgradeDatabase(DatabaseCommand):
    """Move the database to another minor version of its line (``spec`` names the new version and image;
    ``from_version``/``from_image`` what runs now): the new image is brought onto the server first, then the
    container is made again with it on the same volume and must pass the engine's readiness check; if it
    does not, the old image is started again on that volume. The api sends it after a verified backup (or an
    admin's explicit skip). Answered by ``evt.database.upgraded`` or ``evt.database.upgrade_failed``, and by
    ``evt.database.changed`` with the container's state."""

    TYPE = "cmd.database.upgrade"
    spec: DatabaseSpec
    from_version: str = Field(min_length=1, max_length=16)
    from_image: ImageRef

    @model_validator(mode="after")
    def _minor_only(self) -> UpgradeDatabase:
        dbengines.check_upgrade(self.spec.engine, self.from_version, self.spec.version)
        return self

    def previous(self) -> DatabaseSpec:
        """The spec the database ran with before (the same credentials, configuration and limits)."""
        return self.spec.model_copy(update={"version": self.from_version, "image": self.from_image})


@register
class DatabaseUpgraded(DatabaseEvent):
    """The database runs ``to_version`` (its container made again with ``image`` on the same volume passed the
    readiness check)."""

    TYPE = "evt.database.upgraded"
    from_version: str
    to_version: str
    image: str = ""


@register
class DatabaseUpgradeFailed(DatabaseEvent):
    """The upgrade to ``to_version`` did not happen: ``reason`` says why (never a secret). ``rolled_back``: the
    new image had replaced the container and the old one runs again on the same volume; ``running_version``
    is what runs now (None: the database is down, ``evt.database.changed`` says ``failed``)."""

    TYPE = "evt.database.upgrade_failed"
    from_version: str
    to_version: str
    reason: str = Field(default="", max_length=MAX_REASON)
    rolled_back: bool = False
    running_version: str | None = None
