"""notifier schema: base tables (processed message ids, outbox)."""

from berth_common.db.base_revision import downgrade, upgrade

revision = "notifier_0001"
down_revision = None
__all__ = ["downgrade", "upgrade"]
