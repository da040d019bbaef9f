"""Tables of the metrics schema (the migrations create them from these definitions)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from berth_common.fleet import servers_table
from berth_metrics.domain.series import COLUMNS

metadata = sa.MetaData()
_TYPES: dict[str, Any] = {
    "real": sa.REAL(),
    "bigint": sa.BigInteger(),
    "integer": sa.Integer(),
    "smallint": sa.SmallInteger(),
}

series = sa.Table(
    "series",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),  # container, server, mount
    sa.Column("key", sa.String(300), nullable=False, unique=True),
    sa.Column("name", sa.String(300), nullable=False),
    sa.Column("server", sa.String(128), nullable=False),
    # the server's id (``local``: the control plane's engine); ``server`` is its name as shown
    sa.Column("server_id", sa.String(64), nullable=False, server_default="local"),
    sa.Column("app", sa.String(128)),
    sa.Column("service", sa.String(128)),
    sa.Column("deployment", sa.String(128)),
    sa.Column("team", sa.String(128)),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column("last_seen_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
)


def _value_columns(rollup: bool) -> list[sa.Column[Any]]:
    cols: list[sa.Column[Any]] = []
    if rollup:
        cols.append(sa.Column("n", sa.Integer, nullable=False))
    for c in COLUMNS:
        cols.append(sa.Column(c.name, _TYPES[c.sql_type]))
        if rollup and c.aggregate == "avg_max":
            cols.append(sa.Column(f"{c.name}_max", _TYPES[c.sql_type]))
    return cols


def _samples(name: str, rollup: bool) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("series_id", sa.BigInteger, sa.ForeignKey("series.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("ts", sa.DateTime(timezone=True), primary_key=True),
        *_value_columns(rollup),
    )


samples = _samples("samples", rollup=False)
rollup_1m = _samples("rollup_1m", rollup=True)
rollup_1h = _samples("rollup_1h", rollup=True)
TABLES = {"raw": samples, "1m": rollup_1m, "1h": rollup_1h}

# How far each rollup is complete: every bucket before ``done_until`` has been computed.
rollup_state = sa.Table(
    "rollup_state",
    metadata,
    sa.Column("resolution", sa.String(8), primary_key=True),
    sa.Column("done_until", sa.DateTime(timezone=True)),
)

rules = sa.Table(
    "rules",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("team_id", sa.String(64), nullable=False, index=True),
    sa.Column("spec", sa.JSON, nullable=False),  # AlertRuleSpec as JSON
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
)

# One row per (rule, target instance) whose evaluation is not plainly "ok": the hysteresis state.
alert_states = sa.Table(
    "alert_states",
    metadata,
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

# Alerts raised (and resolved): the history the api lists.
alerts = sa.Table(
    "alerts",
    metadata,
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

# Whether each server's Docker engine answers (domain.reachability): one row per server, kept across
# restarts so an outage is announced once and its end once.
server_health = sa.Table(
    "server_health",
    metadata,
    sa.Column("server", sa.String(128), primary_key=True),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("successes", sa.Integer, nullable=False),
    sa.Column("failing_since", sa.DateTime(timezone=True)),
    sa.Column("last_seen_at", sa.DateTime(timezone=True)),
    sa.Column("outage_id", sa.String(64)),
    sa.Column("team_ids", sa.JSON, nullable=False),
    sa.Column("error", sa.String(500), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
)

# The autoscaling policy of each web service, as the api announces it (``evt.application.autoscale_changed``).
autoscale_policies = sa.Table(
    "autoscale_policies",
    metadata,
    sa.Column("application_id", sa.String(64), primary_key=True),
    sa.Column("service", sa.String(64), primary_key=True),
    sa.Column("team_id", sa.String(64), nullable=False),
    sa.Column("policy", sa.JSON(none_as_null=True), nullable=True),  # AutoscalePolicy; NULL: off
    sa.Column("revision", sa.BigInteger, nullable=False),
    sa.Column("last_change_at", sa.Float, nullable=True),  # epoch seconds of the last scale it asked for
)

# The server directory (``berth_common.fleet``), kept from ``evt.server.changed``: the servers whose engines
# are read besides the local one, and which team owns each.
servers = servers_table(metadata)
