"""api: an index on the audit log's time, so the retention purge finds its oldest rows batch by batch
without reading the whole table.

On an installation with a large audit log the index is built once, at the upgrade (writes of audit rows
wait for it).
"""

from berth_api.adapters import tables as t
from berth_common.db.revision import index, steps

revision = "api_0007"
down_revision = "api_0006"
upgrade, downgrade = steps(index("audit_log_at", t.audit_log, "at"))
