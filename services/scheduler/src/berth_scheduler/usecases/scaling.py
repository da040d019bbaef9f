"""Asking the scheduler to scale an application's live version.

Carries out ``cmd.application.scale``: the scale is recorded ``pending`` in the consumed message's
transaction (a known request id is not recorded twice); the application's rollout task carries it out
(``usecases/rollout/scale.py``) once no deployment of the application runs, and answers with
``evt.application.scaled``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from berth_common.catalogue import ScaleApplication
from berth_common.db import Unit
from berth_common.logging import get_logger
from berth_scheduler.adapters import scales
from berth_scheduler.usecases.rollout.admission import lock_application

log = get_logger(__name__)


@dataclass
class Scaling:
    drain_grace_s: float  # when the command names none

    async def request(self, msg: ScaleApplication, unit: Unit) -> None:
        """Record the scale; the entry point then wakes the application's rollout task."""
        await lock_application(unit, msg.application_id)
        grace = msg.drain_grace_s if msg.drain_grace_s is not None else self.drain_grace_s
        fresh = await scales.insert_scale(
            unit.session,
            {
                "id": msg.request_id,
                "application_id": msg.application_id,
                "team_id": msg.team_id,
                "trigger": msg.trigger,
                "reason": msg.reason,
                "targets": dict(msg.services),
                "drain_grace_s": grace,
                "requested_at": time.time(),
            },
        )
        log.info(
            "scale requested" if fresh else "scale already known", request_id=msg.request_id, services=msg.services
        )
