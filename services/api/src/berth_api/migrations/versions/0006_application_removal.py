"""api: an application's state (``active`` | ``removing``) and the reason its last removal failed.

``DELETE`` of a deployed application marks it ``removing`` and sends ``cmd.application.remove`` (one
transaction, through the outbox); ``evt.application.removed`` deletes its rows, ``removal_failed`` sets it
``active`` again with ``removal_error``. An UPDATE of ``applications`` bumps the team's revision (the
``applications_bump_team_revision`` trigger of api_0005 fires on every UPDATE), so the cached application
list shows the state change at once.

Revision ID: api_0006
Revises: api_0005
"""

import sqlalchemy as sa
from alembic import op

revision = "api_0006"
down_revision = "api_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("applications", sa.Column("state", sa.String(16), nullable=False, server_default=sa.text("'active'")))
    op.add_column("applications", sa.Column("removal_error", sa.Text, nullable=True))
    op.create_check_constraint("applications_state", "applications", "state IN ('active', 'removing')")


def downgrade() -> None:
    op.drop_constraint("applications_state", "applications", type_="check")
    op.drop_column("applications", "removal_error")
    op.drop_column("applications", "state")
