"""scheduler: the Swarms it formed or adopted (``cmd.swarm.form``), the join token sealed."""

from berth_common.db.revision import steps, table
from berth_scheduler.adapters import tables as t

revision = "scheduler_0008"
down_revision = "scheduler_0007"
upgrade, downgrade = steps(
    table(
        t.swarms,
        "id team_id manager_server_id worker_server_ids cluster_id manager_node_id network worker_token nodes attempt",
    )
)
