"""scheduler: schedules (a command published at every due time of a cron expression in a time zone)."""

from berth_common.db.revision import steps, table
from berth_scheduler.adapters import tables as t

revision = "scheduler_0013"
down_revision = "scheduler_0012"
SCHEDULES = """id team_id revision cron timezone grace_s command_type command target_id removed next_due last_due
last_command_id last_fired_at"""

upgrade, downgrade = steps(table(t.schedules, SCHEDULES))
