"""api: an application's state (``active`` | ``removing``) and the reason its last removal failed.

``DELETE`` of a deployed application marks it ``removing`` and sends ``cmd.application.remove`` (one
transaction, through the outbox); ``evt.application.removed`` deletes its rows, ``removal_failed`` sets it
``active`` again with ``removal_error``. An UPDATE of ``applications`` bumps the team's revision (the
``applications_bump_team_revision`` trigger of api_0005 fires on every UPDATE), so the cached application
list shows the state change at once.
"""

from berth_api.adapters import tables as t
from berth_common.db.revision import columns, steps

revision = "api_0006"
down_revision = "api_0005"
upgrade, downgrade = steps(columns(t.applications, "state removal_error"))
