"""scheduler: removals (taking an application down, persisted step by step)."""

import sqlalchemy as sa

from berth_common.db.revision import index, steps, table
from berth_scheduler.adapters import tables as t

revision = "scheduler_0004"
down_revision = "scheduler_0003"
REMOVALS = """application_id team_id phase attempt drain_grace_s route_plan deadline_at drain_until containers images
routes_removed containers_removed images_removed reason requested_at finished_at version"""
ACTIVE = sa.text("phase NOT IN ('removed', 'failed')")

upgrade, downgrade = steps(
    table(t.removals, REMOVALS),
    index("removals_active", t.removals, "application_id", postgresql_where=ACTIVE),
)
