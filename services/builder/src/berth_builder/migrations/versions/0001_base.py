"""builder schema: base tables (processed message ids, outbox)."""

from berth_common.db.base_revision import downgrade, upgrade

revision = "builder_0001"
down_revision = None
__all__ = ["downgrade", "upgrade"]
