"""builder: builds (one row per build id: idempotency, results to re-emit, the image cache by key)."""

import sqlalchemy as sa

from berth_builder.adapters import tables as t
from berth_common.db.revision import check, index, steps, table

revision = "builder_0002"
down_revision = "builder_0001"
BUILDS = """build_id deployment_id application_id status repository ref image_tag commit cache_key image_id reused
generated_dockerfile stage reason duration_s attempts created_at heartbeat_at finished_at"""
STATUS = "status IN ('running', 'retrying', 'succeeded', 'failed')"  # before builder_0003
SUCCEEDED = sa.text("status = 'succeeded'")

upgrade, downgrade = steps(
    table(t.builds, BUILDS, omit=["builds_status"]),
    check("builds_status", t.builds, STATUS),
    index("builds_cache_key", t.builds, "cache_key finished_at", postgresql_where=SUCCEEDED),
    index("builds_deployment", t.builds, "deployment_id"),
)
