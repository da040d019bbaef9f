"""The api's tables for git forge webhooks (api_0021); on the metadata of ``tables.py``.

``webhooks``: one per application, its id the last segment of the delivery URL, its secret sealed
(``SecretBox``, aad ``webhook:<id>``), its watch paths and whether tag pushes deploy.
``webhook_deliveries``: the delivery ids already received per webhook, so a replayed delivery is refused.
``webhook_pushes``: the push each application waits to deploy (debounce): a newer push replaces the row,
a sweep deploys the rows whose ``due_at`` passed; in the database, so an api restart loses none.
"""

from __future__ import annotations

import sqlalchemy as sa

from berth_api.adapters.tables import metadata

webhooks = sa.Table(
    "webhooks",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("team_id", sa.String(32), sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
    sa.Column(
        "application_id",
        sa.String(32),
        sa.ForeignKey("applications.id", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
    sa.Column("sealed", sa.LargeBinary, nullable=False),
    sa.Column("watch_paths", sa.JSON, nullable=False),
    sa.Column("tags", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_by", sa.String(32), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_delivery_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_result", sa.Text, nullable=True),  # what the last verified delivery did, for GET
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("webhook_id", sa.String(32), sa.ForeignKey("webhooks.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("delivery_id", sa.String(160), primary_key=True),
    sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Index("webhook_deliveries_received", "received_at"),
)

webhook_pushes = sa.Table(
    "webhook_pushes",
    metadata,
    sa.Column("application_id", sa.String(32), sa.ForeignKey("applications.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("team_id", sa.String(32), sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
    sa.Column("commit", sa.String(64), nullable=False),
    sa.Column("ref", sa.String(300), nullable=False),
    sa.Column("forge", sa.String(32), nullable=False),
    sa.Column("delivery_id", sa.String(160), nullable=False),
    sa.Column("pushes", sa.Integer, nullable=False, server_default=sa.text("1")),  # received in this burst
    sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("webhook_pushes_due", "due_at"),
)

# Where a webhook reports commit statuses (optional): the forge's API, the repository, the token (sealed,
# aad ``webhook-status:<webhook id>``, never returned), and the base of the deployment links it sends.
webhook_status_targets = sa.Table(
    "webhook_status_targets",
    metadata,
    sa.Column("id", sa.String(32), sa.ForeignKey("webhooks.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("forge", sa.String(32), nullable=False),
    sa.Column("api_url", sa.String(500), nullable=False),
    sa.Column("repository", sa.String(300), nullable=False),
    sa.Column("sealed", sa.LargeBinary, nullable=False),
    sa.Column("link_base", sa.String(500), nullable=False),
)

# The commit status owed for each deployment a webhook started: the status last sent, and the retries.
webhook_status_reports = sa.Table(
    "webhook_status_reports",
    metadata,
    sa.Column("deployment_id", sa.String(32), sa.ForeignKey("deployments.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("webhook_id", sa.String(32), sa.ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    sa.Column("commit", sa.String(64), nullable=False),
    sa.Column("sent_state", sa.String(16), nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("next_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
)
