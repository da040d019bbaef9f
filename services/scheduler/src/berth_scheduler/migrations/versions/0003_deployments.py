"""scheduler: deployments (the persisted rollout state machine), their containers, routes and route ops.

Revision ID: scheduler_0003
Revises: scheduler_0002
"""

import sqlalchemy as sa
from alembic import op

from berth_common.db.revision import create_table, drop_tables
from berth_scheduler.adapters import tables as t

revision = "scheduler_0003"
down_revision = "scheduler_0002"


def upgrade() -> None:
    create_table(
        op,
        t.deployments,
        """id seq application_id team_id state spec timeouts needs_build build_id image previous_deployment_id
        abort_outcome abort_reason abort_state route_plan route_step deadline_at drain_until created_at
        finished_at version log_seq""",
    )
    op.create_index("deployments_app_state", "deployments", ["application_id", "state"])
    op.create_index(
        "deployments_unfinished",
        "deployments",
        ["seq"],
        postgresql_where=sa.text("state NOT IN ('succeeded', 'failed', 'cancelled')"),
    )
    create_table(op, t.containers, "name deployment_id application_id service kind replica host_port docker_id ready")
    create_table(op, t.routes, "route_id application_id hosts upstreams generation")
    create_table(op, t.route_ops, "route_id generation deployment_id step kind hosts upstreams status reason")


def downgrade() -> None:
    drop_tables(op, t.route_ops, t.routes, t.containers, t.deployments)
