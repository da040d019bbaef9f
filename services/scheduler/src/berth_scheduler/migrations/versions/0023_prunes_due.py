"""scheduler: the image pruning due after an application's last success, kept across a restart."""

from berth_common.db.revision import steps, table
from berth_scheduler.adapters import tables as t

revision = "scheduler_0023"
down_revision = "scheduler_0022"

upgrade, downgrade = steps(table(t.prunes_due, "application_id deployment_id image"))
