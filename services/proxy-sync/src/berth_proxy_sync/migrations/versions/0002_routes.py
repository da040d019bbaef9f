"""proxy-sync: the desired routes (the truth the Traefik files are derived from) and host ownership.

Revision ID: proxy_0002
Revises: proxy_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "proxy_0002"
down_revision = "proxy_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "routes",
        sa.Column("route_id", sa.String(64), primary_key=True),
        sa.Column("hosts", sa.JSON, nullable=False),
        sa.Column("upstreams", sa.JSON, nullable=False),
        sa.Column("entry_point", sa.String(32), nullable=False, server_default="web"),
        sa.Column("generation", sa.BigInteger, nullable=False, server_default="0"),
        # A removed route stays as a tombstone so that an older apply delivered late cannot revive it.
        sa.Column("removed", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("live_ms", sa.Float, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_table(
        "route_hosts",
        sa.Column("host", sa.String(253), primary_key=True),
        sa.Column("route_id", sa.String(64), sa.ForeignKey("routes.route_id", ondelete="CASCADE"), nullable=False),
    )
    op.create_index("route_hosts_route", "route_hosts", ["route_id"])


def downgrade() -> None:
    op.drop_table("route_hosts")
    op.drop_table("routes")
