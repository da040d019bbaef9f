"""metrics: series, raw samples and rollups, rollup progress, threshold rules, alert states and history.

Revision ID: metrics_0002
Revises: metrics_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "metrics_0002"
down_revision = "metrics_0001"
branch_labels = None
depends_on = None

# (name, type, rolled up with a *_max column too)
VALUES = [
    ("cpu_pct", sa.Float(24), True),
    ("mem_used", sa.BigInteger(), True),
    ("mem_limit", sa.BigInteger(), False),
    ("net_rx", sa.BigInteger(), False),
    ("net_tx", sa.BigInteger(), False),
    ("blk_read", sa.BigInteger(), False),
    ("blk_write", sa.BigInteger(), False),
    ("restarts", sa.Integer(), False),
    ("health", sa.SmallInteger(), False),
    ("load1", sa.Float(24), False),
    ("load5", sa.Float(24), False),
    ("load15", sa.Float(24), False),
    ("disk_used", sa.BigInteger(), False),
    ("disk_total", sa.BigInteger(), False),
]


def _sample_table(name: str, rollup: bool) -> None:
    cols = [
        sa.Column("series_id", sa.BigInteger, sa.ForeignKey("series.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("ts", sa.DateTime(timezone=True), primary_key=True),
    ]
    if rollup:
        cols.append(sa.Column("n", sa.Integer, nullable=False))
    for col, type_, with_max in VALUES:
        cols.append(sa.Column(col, type_))
        if rollup and with_max:
            cols.append(sa.Column(f"{col}_max", type_))
    op.create_table(name, *cols)
    # Rows arrive in time order: a BRIN index finds the old ones for deletion at almost no cost.
    op.create_index(f"{name}_ts_brin", name, ["ts"], postgresql_using="brin")


def upgrade() -> None:
    op.create_table(
        "series",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("key", sa.String(300), nullable=False, unique=True),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("server", sa.String(128), nullable=False),
        sa.Column("app", sa.String(128)),
        sa.Column("service", sa.String(128)),
        sa.Column("deployment", sa.String(128)),
        sa.Column("team", sa.String(128)),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_index("series_app", "series", ["app"])
    op.create_index("series_name", "series", ["name"])
    op.create_index("series_last_seen", "series", ["last_seen_at"])
    _sample_table("samples", rollup=False)
    _sample_table("rollup_1m", rollup=True)
    _sample_table("rollup_1h", rollup=True)
    op.create_table(
        "rollup_state",
        sa.Column("resolution", sa.String(8), primary_key=True),
        sa.Column("done_until", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "rules",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("team_id", sa.String(64), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_index("ix_rules_team_id", "rules", ["team_id"])
    op.create_table(
        "alert_states",
        sa.Column("rule_id", sa.String(64), sa.ForeignKey("rules.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("instance", sa.String(300), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True)),
        sa.Column("raised_at", sa.DateTime(timezone=True)),
        sa.Column("below_since", sa.DateTime(timezone=True)),
        sa.Column("value", sa.Float),
        sa.Column("peak", sa.Float),
        sa.Column("alert_id", sa.String(64)),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("rule_id", sa.String(64), nullable=False),
        sa.Column("team_id", sa.String(64), nullable=False),
        sa.Column("instance", sa.String(300), nullable=False),
        sa.Column("target_kind", sa.String(16), nullable=False),
        sa.Column("metric", sa.String(16), nullable=False),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("peak", sa.Float),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("since", sa.DateTime(timezone=True)),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
    )
    op.create_index("alerts_team_raised", "alerts", ["team_id", "raised_at"])


def downgrade() -> None:
    for table in ("alerts", "alert_states", "rules", "rollup_state", "rollup_1h", "rollup_1m", "samples", "series"):
        op.drop_table(table)
