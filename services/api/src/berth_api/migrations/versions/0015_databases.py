"""api: a team's one-click databases (``/v1/databases``) and the applications' links to them."""

from berth_api.adapters import data_tables as t
from berth_common.db.revision import steps, table

revision = "api_0015"
down_revision = "api_0014"
upgrade, downgrade = steps(
    table(
        t.databases,
        "id team_id name engine version server_id username database sealed pending config limits public state "
        "reason request_id published_port rotated_at rotated_by created_by created_at",
    ),
    table(t.database_links, "application_id database_id variable created_at"),
)
