"""scheduler: a removal that deletes the application's named volumes (asked explicitly), and how many it did."""

from berth_common.db.revision import columns, steps
from berth_scheduler.adapters import tables as t

revision = "scheduler_0011"
down_revision = "scheduler_0010"
upgrade, downgrade = steps(columns(t.removals, "delete_volumes volumes_removed"))
