"""api: one-off runs of an application (the command, the deployment it runs as, its outcome)."""

from berth_api.adapters import runs as t
from berth_common.db.revision import check, steps, table

revision = "api_0022"
down_revision = "api_0021"
upgrade, downgrade = steps(
    table(
        t.runs,
        "id team_id application_id deployment_id service command timeout_s status exit_code reason last_lines "
        "server_id container duration_s created_by created_at started_at finished_at",
        omit=["runs_status"],
    ),
    check("runs_status", t.runs, t.STATUS_CHECK_0022),
)
