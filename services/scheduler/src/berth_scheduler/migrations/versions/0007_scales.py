"""scheduler: scales (the live version's replicas changed by command, persisted step by step)."""

import sqlalchemy as sa

from berth_common.db.revision import index, steps, table
from berth_scheduler.adapters import tables as t

revision = "scheduler_0007"
down_revision = "scheduler_0006"
SCALES = """id seq application_id team_id trigger reason targets drain_grace_s phase deployment_id before add remove
deadline_at drain_until failure requested_at finished_at version"""
ACTIVE = sa.text("phase NOT IN ('done', 'failed')")

upgrade, downgrade = steps(
    table(t.scales, SCALES),
    index("scales_active", t.scales, "application_id", postgresql_where=ACTIVE),
)
