"""Tables of the builder schema."""

from __future__ import annotations

import sqlalchemy as sa

from berth_common.fleet import servers_table

metadata = sa.MetaData()

BUILD_STATUSES = ("running", "retrying", "succeeded", "failed", "cancelled")

builds = sa.Table(
    "builds",
    metadata,
    sa.Column("build_id", sa.String(64), primary_key=True),
    sa.Column("deployment_id", sa.String(64), nullable=False),
    sa.Column("application_id", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("repository", sa.Text, nullable=False),  # credentials redacted
    sa.Column("ref", sa.String(255), nullable=False),
    sa.Column("image_tag", sa.String(255), nullable=False),
    sa.Column("commit", sa.String(64), nullable=True),
    sa.Column("cache_key", sa.String(64), nullable=True),
    sa.Column("image_id", sa.String(100), nullable=True),
    sa.Column("reused", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("generated_dockerfile", sa.Text, nullable=True),
    sa.Column("stage", sa.String(16), nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("duration_s", sa.Float, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("server_id", sa.String(64), nullable=False, server_default="local"),  # whose engine built it
    sa.Column("pushed_ref", sa.String(512), nullable=True),  # <registry>/<ns>/<app>@sha256:.. when pushed
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column("heartbeat_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint(f"status IN ({', '.join(repr(s) for s in BUILD_STATUSES)})", name="builds_status"),
)

# A cancel request (``cmd.build.cancel``) for a build that may run in another builder process, or whose
# start command has not arrived yet: the process running it looks here every second, a claim refuses it.
cancels = sa.Table(
    "cancels",
    metadata,
    sa.Column("build_id", sa.String(64), primary_key=True),
    sa.Column("deployment_id", sa.String(64), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("requested_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
)

# The server directory (``berth_common.fleet``), kept from ``evt.server.changed``: the build servers.
servers = servers_table(metadata)
