"""api: a team's servers (reached over SSH; private key sealed, host key pinned, last validation).

Revision ID: api_0010
Revises: api_0009
"""

from alembic import op

from berth_api.adapters import tables as t
from berth_common.db.revision import create_table, drop_tables

revision = "api_0010"
down_revision = "api_0009"

COLUMNS = (
    "id team_id name host port user sealed public_key host_key offered_host_key state reason checks "
    "docker_version architecture free_bytes attempt validated_at created_by created_at"
)


def upgrade() -> None:
    create_table(op, t.servers, COLUMNS)


def downgrade() -> None:
    drop_tables(op, t.servers)
