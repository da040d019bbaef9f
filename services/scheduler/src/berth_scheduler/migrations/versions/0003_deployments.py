"""scheduler: deployments (the persisted rollout state machine), their containers, routes and route ops."""

import sqlalchemy as sa

from berth_common.db.revision import index, steps, table
from berth_scheduler.adapters import tables as t

revision = "scheduler_0003"
down_revision = "scheduler_0002"
DEPLOYMENTS = """id seq application_id team_id state spec timeouts needs_build build_id image previous_deployment_id
abort_outcome abort_reason abort_state route_plan route_step deadline_at drain_until created_at finished_at version
log_seq"""
UNFINISHED = sa.text("state NOT IN ('succeeded', 'failed', 'cancelled')")

upgrade, downgrade = steps(
    table(t.deployments, DEPLOYMENTS),
    index("deployments_app_state", t.deployments, "application_id state"),
    index("deployments_unfinished", t.deployments, "seq", postgresql_where=UNFINISHED),
    table(t.containers, "name deployment_id application_id service kind replica host_port docker_id ready"),
    table(t.routes, "route_id application_id hosts upstreams generation"),
    table(t.route_ops, "route_id generation deployment_id step kind hosts upstreams status reason"),
)
