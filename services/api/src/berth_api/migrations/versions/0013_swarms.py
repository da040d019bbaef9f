"""api: a team's Swarms (``/v1/swarms``), formed by the scheduler (``cmd.swarm.form``)."""

from berth_api.adapters import tables as t
from berth_common.db.revision import steps, table

revision = "api_0013"
down_revision = "api_0012"
upgrade, downgrade = steps(
    table(
        t.swarms,
        "id team_id name manager_server_id worker_server_ids adopt network state reason cluster_id nodes attempt "
        "formed_at created_by created_at",
    )
)
