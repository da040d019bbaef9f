"""api: image registries (a team's credentials for pulling prebuilt images) and the digest of a deployment's
pulled image.

``registries`` holds one row per team and registry host (the password or token sealed like a secret
variable); ``deployments.image_digest`` is the ``repo@sha256:...`` the scheduler pulled, which a rollback
runs.
"""

from berth_api.adapters import tables as t
from berth_common.db.revision import columns, steps, table

revision = "api_0009"
down_revision = "api_0008"
upgrade, downgrade = steps(
    table(t.registries, "id team_id name host username sealed created_by created_at"),
    columns(t.deployments, "image_digest"),
)
