"""api: the phase of an application's removal while it is ``removing``.

``DELETE`` of a deployed application sets ``removal_phase`` to ``cancelling``; each
``evt.application.removal_progressed`` moves it on (``routes``, ``draining``, ``stopping``, ``images`` or
``restoring``) when its ``version`` is above ``removal_version`` (the api's consumers run side by side, so a
late event never moves it back); the answer of the scheduler clears it.
"""

from berth_api.adapters import tables as t
from berth_common.db.revision import columns, steps

revision = "api_0008"
down_revision = "api_0007"
upgrade, downgrade = steps(columns(t.applications, "removal_phase removal_version"))
