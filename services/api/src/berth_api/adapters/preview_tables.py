"""The api's tables for preview environments (api_0025); on the metadata of ``tables.py``.

``preview_settings``: one per application that previews its pull requests: the host pattern, whether forks
deploy, the database a preview gets (``none`` or ``fresh``), the time-to-live of an inactive preview, the
most previews at once, and the preview-only variables (sealed as one JSON list, aad
``preview_settings:<application id>``).
``previews``: one per pull request previewed: its preview application (a real application of the same
environment, deployed and removed the normal way), its fresh database, the head commit, what the sweep
still has to do (``want``: deploy or destroy; ``reopen``: made again once destroyed), and the forge comment it keeps up to date.
"""

from __future__ import annotations

import sqlalchemy as sa

from berth_api.adapters.tables import metadata

preview_settings = sa.Table(
    "preview_settings",
    metadata,
    sa.Column("id", sa.String(32), sa.ForeignKey("applications.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("team_id", sa.String(32), sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
    sa.Column("host_pattern", sa.String(253), nullable=False),
    sa.Column("allow_forks", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("database", sa.String(16), nullable=False, server_default="none"),
    sa.Column("database_engine", sa.String(32), nullable=False, server_default="postgresql"),
    sa.Column("ttl_hours", sa.Integer, nullable=False, server_default=sa.text("72")),
    sa.Column("max_previews", sa.Integer, nullable=False, server_default=sa.text("5")),
    sa.Column("sealed", sa.LargeBinary, nullable=False),
)

previews = sa.Table(
    "previews",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("team_id", sa.String(32), sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
    # NULL once the application is deleted: its previews are then destroyed like closed ones
    sa.Column("application_id", sa.String(32), sa.ForeignKey("applications.id", ondelete="SET NULL"), nullable=True),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("forge", sa.String(32), nullable=False),
    sa.Column("title", sa.String(300), nullable=False, server_default=""),
    sa.Column("head_ref", sa.String(300), nullable=False),
    sa.Column("head_commit", sa.String(64), nullable=False),
    sa.Column("head_repository", sa.String(500), nullable=True),  # a fork's clone URL
    sa.Column("preview_application_id", sa.String(32), nullable=True),
    sa.Column("database_id", sa.String(32), nullable=True),
    sa.Column("deployment_id", sa.String(32), nullable=True),
    sa.Column("host", sa.String(253), nullable=True),
    sa.Column("state", sa.String(16), nullable=False),  # active | destroying
    sa.Column("want", sa.String(16), nullable=True),  # deploy | destroy | None (nothing to do)
    # reopened while destroying: made again from its head commit once the destroy ends
    sa.Column("reopen", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("comment_id", sa.String(64), nullable=True),
    sa.Column("comment_sent", sa.Text, nullable=True),  # the body last sent (sent again only when it changes)
    sa.Column("last_activity_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.UniqueConstraint("application_id", "number", name="previews_application_number"),
)
