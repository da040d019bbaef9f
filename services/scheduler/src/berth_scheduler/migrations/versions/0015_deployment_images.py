"""scheduler: what each compose service with an image of its own ran in a deployment (a rollback runs it;
the images the services' builds made so far are recorded from ``deployment_builds``), and each build's own
deadline."""

from berth_common.db.revision import columns, sql, steps, table
from berth_scheduler.adapters import tables as t

revision = "scheduler_0015"
down_revision = "scheduler_0014"
BACKFILL = (
    "INSERT INTO deployment_images (deployment_id, service, named, image) "
    "SELECT deployment_id, service, COALESCE(pushed_ref, image), COALESCE(pushed_ref, image) FROM deployment_builds "
    "WHERE state = 'succeeded' AND service <> '' AND COALESCE(pushed_ref, image) IS NOT NULL "
    "ON CONFLICT DO NOTHING"
)

upgrade, downgrade = steps(
    table(t.deployment_images, "deployment_id service named image"),
    sql(BACKFILL, "SELECT 1"),
    columns(t.deployment_builds, "deadline_at"),
)
