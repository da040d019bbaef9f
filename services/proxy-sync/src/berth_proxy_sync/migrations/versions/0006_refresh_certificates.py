"""proxy-sync: the hosts and certificates of each application's newest certificate refresh."""

from berth_common.db.revision import columns, steps
from berth_proxy_sync.adapters import tables as t

revision = "proxy_0006"
down_revision = "proxy_0005"
upgrade, downgrade = steps(columns(t.certificate_refreshes, "hosts certificates"))
