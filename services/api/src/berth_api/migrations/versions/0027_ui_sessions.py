"""api: the dashboard's sign-in sessions (``ui_sessions``: the session key's hash, the sealed token)."""

from berth_api.adapters import ui_tables as t
from berth_common.db.revision import steps, table

revision = "api_0027"
down_revision = "api_0026"
upgrade, downgrade = steps(table(t.ui_sessions, "id sealed_token csrf label created_at expires_at"))
