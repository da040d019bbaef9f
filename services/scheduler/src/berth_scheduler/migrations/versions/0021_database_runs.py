"""scheduler: the one-click databases meant to run, started again after their engine stopped them."""

from berth_common.db.revision import steps, table
from berth_scheduler.adapters import tables as t

revision = "scheduler_0021"
down_revision = "scheduler_0020"

upgrade, downgrade = steps(table(t.database_runs, "database_id team_id server_id request_id spec state"))
