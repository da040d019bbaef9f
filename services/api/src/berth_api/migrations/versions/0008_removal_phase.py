"""api: the phase of an application's removal while it is ``removing``.

``DELETE`` of a deployed application sets ``removal_phase`` to ``cancelling``; each
``evt.application.removal_progressed`` moves it on (``routes``, ``draining``, ``stopping``, ``images`` or
``restoring``) when its ``version`` is above ``removal_version`` (the api's consumers run side by side, so a
late event never moves it back); the answer of the scheduler clears it.

Revision ID: api_0008
Revises: api_0007
"""

import sqlalchemy as sa
from alembic import op

revision = "api_0008"
down_revision = "api_0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("applications", sa.Column("removal_phase", sa.String(16), nullable=True))
    op.add_column("applications", sa.Column("removal_version", sa.Integer, nullable=True))


def downgrade() -> None:
    op.drop_column("applications", "removal_version")
    op.drop_column("applications", "removal_phase")
