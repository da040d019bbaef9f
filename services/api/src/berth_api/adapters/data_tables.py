"""The api's tables for databases, their links to applications, their backups and drills (and volumes'): on the metadata of
``tables.py`` (the rest of the api's schema), kept apart so that each module stays one size to read."""

from __future__ import annotations

import sqlalchemy as sa

from berth_api.adapters.tables import metadata

# --- databases (api_0015) ----------------------------------------------------------------------------

# A team's one-click databases: the generated password sealed (``SecretBox``, aad ``databases:<id>``), never
# returned except by the admins' explicit reveal; ``pending`` holds the next password while a rotation runs
# (sealed, aad ``databases:<id>:pending``); ``state`` as the scheduler last reported it for ``request_id``.
DATABASE_STATES = "state IN ('starting', 'running', 'stopping', 'stopped', 'failed', 'removing', 'removed')"
databases = sa.Table(
    "databases",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("team_id", sa.String(32), sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(63), nullable=False),
    sa.Column("engine", sa.String(16), nullable=False),
    sa.Column("version", sa.String(16), nullable=False),
    sa.Column("server_id", sa.String(32), nullable=False, server_default="local"),
    sa.Column("username", sa.String(32), nullable=False),
    sa.Column("database", sa.String(32), nullable=False),
    sa.Column("sealed", sa.LargeBinary, nullable=False),
    sa.Column("pending", sa.LargeBinary, nullable=True),
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("limits", sa.JSON, nullable=False),
    sa.Column("public", sa.JSON, nullable=True),
    sa.Column("state", sa.String(16), nullable=False, server_default="starting"),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("request_id", sa.String(32), nullable=True),
    sa.Column("published_port", sa.Integer, nullable=True),
    sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("rotated_by", sa.String(32), nullable=True),
    sa.Column("created_by", sa.String(32), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.UniqueConstraint("team_id", "name", name="databases_team_name"),
    sa.CheckConstraint(DATABASE_STATES, name="databases_state"),
)

# An application's links to the team's databases: the database's connection URL becomes the secret
# runtime variable ``variable`` of every deployment of the application.
database_links = sa.Table(
    "database_links",
    metadata,
    sa.Column("application_id", sa.String(32), sa.ForeignKey("applications.id", ondelete="CASCADE"), nullable=False),
    sa.Column("database_id", sa.String(32), sa.ForeignKey("databases.id", ondelete="CASCADE"), nullable=False),
    sa.Column("variable", sa.String(128), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.PrimaryKeyConstraint("application_id", "database_id", name="database_links_pkey"),
    sa.UniqueConstraint("application_id", "variable", name="database_links_variable"),
    sa.Index("database_links_database", "database_id"),
)

# --- backups (api_0016) ------------------------------------------------------------------------------

# A team's backup destinations: an S3-compatible bucket (its secret key sealed, aad ``backup-destination:<id>``,
# never returned) or a directory on a server (``sealed`` NULL); ``settings`` holds the rest (no secret).
backup_destinations = sa.Table(
    "backup_destinations",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("team_id", sa.String(32), sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(63), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("settings", sa.JSON, nullable=False),
    sa.Column("sealed", sa.LargeBinary, nullable=True),
    sa.Column("created_by", sa.String(32), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.UniqueConstraint("team_id", "name", name="backup_destinations_team_name"),
    sa.CheckConstraint("kind IN ('s3', 'directory')", name="backup_destinations_kind"),
)

# The api's projection of ``evt.backup.*``: one row per backup (asked for here, or a schedule's run);
# ``destinations`` maps each destination's name (as events give it) to the destination's id; ``objects``
# the verified copies (destination, key, size, sha256). A database's backups outlive the database.
BACKUP_STATES = "state IN ('requested', 'running', 'succeeded', 'failed', 'missed')"
backups = sa.Table(
    "backups",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("team_id", sa.String(32), sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
    sa.Column("database_id", sa.String(32), nullable=False),
    sa.Column("state", sa.String(16), nullable=False, server_default="requested"),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("engine", sa.String(16), nullable=True),
    sa.Column("database", sa.String(63), nullable=True),
    sa.Column("compression", sa.String(8), nullable=True),
    sa.Column("destinations", sa.JSON, nullable=False),
    sa.Column("objects", sa.JSON, nullable=False),
    sa.Column("schedule_id", sa.String(38), nullable=True),
    sa.Column("requested_by", sa.String(32), nullable=True),
    sa.Column("duration_s", sa.Float, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    # a volume's backup (api_0019): ``database_id`` is then the volume's key (``volume_key``)
    sa.Column("application_id", sa.String(32), nullable=True),
    sa.Column("volume", sa.String(63), nullable=True),
    sa.Column("server_id", sa.String(32), nullable=True),
    sa.CheckConstraint(BACKUP_STATES, name="backups_state"),
    sa.Index("backups_database", "database_id", "created_at"),
    sa.Index("backups_volume", "application_id", "volume", "created_at"),
)

# Restores the api asked for, and the projection of ``evt.restore.*``: ``backing_up`` (over an existing
# database: the fresh backup ``pre_backup_id`` runs first), ``waiting`` (into a new database: until it runs),
# then ``running``, ``succeeded`` or ``failed``. The object to restore is kept (``origin_id``, ``key``,
# ``sha256``, ``compression``) so the command is built when it is sent.
RESTORE_STATES = "state IN ('backing_up', 'waiting', 'running', 'succeeded', 'failed')"
restores = sa.Table(
    "restores",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("team_id", sa.String(32), sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
    sa.Column("database_id", sa.String(32), nullable=False),
    sa.Column("backup_id", sa.String(64), nullable=False),
    sa.Column("target_database_id", sa.String(32), nullable=False),
    sa.Column("target", sa.String(16), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("pre_backup_id", sa.String(64), nullable=True),
    sa.Column("origin_id", sa.String(32), nullable=False),
    sa.Column("key", sa.String(1024), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("compression", sa.String(8), nullable=False),
    sa.Column("source_database", sa.String(63), nullable=True),
    sa.Column("requested_by", sa.String(32), nullable=True),
    sa.Column("duration_s", sa.Float, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    # a volume's restore (api_0019): the volume restored into, as the command names it (no secret in it)
    sa.Column("application_id", sa.String(32), nullable=True),
    sa.Column("volume", sa.String(63), nullable=True),
    sa.Column("target_source", sa.JSON, nullable=True),
    sa.CheckConstraint(RESTORE_STATES, name="restores_state"),
    sa.Index("restores_pre_backup", "pre_backup_id"),
    sa.Index("restores_target", "target_database_id"),
)

# A database's backup schedule as the api last sent it (``cmd.schedule.set``, schedule id = database id;
# ``revision`` grows with every change, removal included).
backup_schedules = sa.Table(
    "backup_schedules",
    metadata,
    sa.Column("database_id", sa.String(32), primary_key=True),
    sa.Column("team_id", sa.String(32), sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
    sa.Column("cron", sa.String(120), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("grace_s", sa.Integer, nullable=False),
    sa.Column("destination_ids", sa.JSON, nullable=False),
    sa.Column("retention", sa.JSON, nullable=False),
    sa.Column("compression", sa.String(8), nullable=False),
    sa.Column("encrypt", sa.Boolean, nullable=False, server_default=sa.false()),  # api_0017
    sa.Column("revision", sa.BigInteger, nullable=False),
    sa.Column("updated_by", sa.String(32), nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    # a volume's schedule (api_0019): ``database_id`` is the volume's key, ``source`` the volume as backed up
    sa.Column("application_id", sa.String(32), nullable=True),
    sa.Column("volume", sa.String(63), nullable=True),
    sa.Column("source", sa.JSON, nullable=True),
)

# --- restore drills (api_0019) -----------------------------------------------------------------------

# Drills the api asked for, and the projection of ``evt.backup.drill_*`` (a schedule's run gets its row
# from its answer): ``check`` as sent, ``check_text`` and ``values`` as the scheduler reported them.
DRILL_STATES = "state IN ('requested', 'succeeded', 'failed')"
drills = sa.Table(
    "drills",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("team_id", sa.String(32), sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
    sa.Column("database_id", sa.String(32), nullable=False),
    sa.Column("backup_id", sa.String(64), nullable=True),
    sa.Column("state", sa.String(16), nullable=False, server_default="requested"),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("engine", sa.String(16), nullable=True),
    sa.Column("destination_id", sa.String(32), nullable=True),
    sa.Column("check", sa.JSON, nullable=True),
    sa.Column("check_text", sa.Text, nullable=False, server_default=""),
    sa.Column("values", sa.JSON, nullable=False),
    sa.Column("schedule_id", sa.String(38), nullable=True),
    sa.Column("requested_by", sa.String(32), nullable=True),
    sa.Column("restore_s", sa.Float, nullable=True),
    sa.Column("duration_s", sa.Float, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint(DRILL_STATES, name="drills_state"),
    sa.Index("drills_database", "database_id", "created_at"),
)

# A database's drill schedule as the api last sent it (``cmd.schedule.set``, schedule id ``drill-<id>``).
drill_schedules = sa.Table(
    "drill_schedules",
    metadata,
    sa.Column("database_id", sa.String(32), primary_key=True),
    sa.Column("team_id", sa.String(32), sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
    sa.Column("cron", sa.String(120), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("grace_s", sa.Integer, nullable=False),
    sa.Column("destination_id", sa.String(32), nullable=False),
    sa.Column("check", sa.JSON, nullable=False),
    sa.Column("revision", sa.BigInteger, nullable=False),
    sa.Column("updated_by", sa.String(32), nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
)

# --- backup keys (api_0017) --------------------------------------------------------------------------

# A team's backup key (32 random bytes, base64), made on first use: backups asked to be encrypted are
# encrypted with it (``berth_common.streamcrypt``). One row per team, ``id`` = the team's id; the key sealed
# (``SecretBox``, aad ``backup-key:<team id>``), answered only by the admins' audited export. ``key_id`` is
# the key's id as an encrypted object's header names it (not secret).
backup_keys = sa.Table(
    "backup_keys",
    metadata,
    sa.Column("id", sa.String(32), sa.ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("key_id", sa.String(16), nullable=False),
    sa.Column("sealed", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
)

# --- database upgrades (api_0018) --------------------------------------------------------------------

# Minor-version upgrades of a database, a saga kept here so that a restart of the api goes on with it: a
# backup first (``backing_up``, ``backup_id``; an admin may skip it, ``backup_skipped``), then the upgrade
# command (``upgrading``, sent in the transaction that saw the backup succeed), then the scheduler's answer
# (``succeeded``, or ``failed`` with the reason and whether the old version runs again, ``rolled_back``).
UPGRADE_STATES = "state IN ('backing_up', 'upgrading', 'succeeded', 'failed')"
database_upgrades = sa.Table(
    "database_upgrades",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("team_id", sa.String(32), sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
    sa.Column("database_id", sa.String(32), sa.ForeignKey("databases.id", ondelete="CASCADE"), nullable=False),
    sa.Column("from_version", sa.String(16), nullable=False),
    sa.Column("to_version", sa.String(16), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("backup_id", sa.String(64), nullable=True),
    sa.Column("backup_skipped", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("rolled_back", sa.Boolean, nullable=True),
    sa.Column("requested_by", sa.String(32), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint(UPGRADE_STATES, name="database_upgrades_state"),
    sa.Index("database_upgrades_database", "database_id", "created_at"),
    sa.Index("database_upgrades_backup", "backup_id"),
)
