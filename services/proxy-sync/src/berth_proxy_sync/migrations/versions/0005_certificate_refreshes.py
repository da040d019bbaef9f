"""proxy-sync: the newest certificate refresh taken for each application."""

from berth_common.db.revision import steps, table
from berth_proxy_sync.adapters import tables as t

revision = "proxy_0005"
down_revision = "proxy_0004"
upgrade, downgrade = steps(table(t.certificate_refreshes, "application_id revision updated_at"))
