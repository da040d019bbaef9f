"""api: the phase of an application's removal while it is ``removing``.

``DELETE`` of a deployed application sets ``removal_phase`` to ``cancelling``; each
``evt.application.removal_progressed`` moves it on (``routes``, ``draining``, ``stopping``, ``images`` or
``restoring``) when its ``version`` is above ``removal_version`` (the api's consumers run side by side, so a
late event never moves it back); the answer of the scheduler clears it.

Revision ID: api_0008
Revises: api_0007
"""

from alembic import op

from berth_api.adapters import tables as t
from berth_common.db.revision import add_columns, drop_columns

revision = "api_0008"
down_revision = "api_0007"


def upgrade() -> None:
    add_columns(op, t.applications, "removal_phase removal_version")


def downgrade() -> None:
    drop_columns(op, t.applications, "removal_phase removal_version")
