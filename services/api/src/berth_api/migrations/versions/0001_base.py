"""api schema: base tables (processed message ids, outbox).

Revision ID: api_0001
Revises:
"""

from berth_common.db.base_revision import downgrade, upgrade

revision = "api_0001"
down_revision = None
__all__ = ["downgrade", "upgrade"]
