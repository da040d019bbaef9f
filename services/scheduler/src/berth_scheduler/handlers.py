"""The scheduler's own answer to ``cmd.system.ping`` (the bus round-trip check).

Deployment and removal messages go straight to their use cases (``usecases/deployments.py``,
``usecases/removals.py``): ``entrypoints/bus.py`` makes one call into each.
"""

from __future__ import annotations

from sqlalchemy.dialects.postgresql import insert

from berth_common.catalogue import PingService, ServicePinged
from berth_common.db import Unit
from berth_scheduler.adapters.tables import pings


async def on_ping(msg: PingService, unit: Unit) -> None:
    """Record the ping (a second effect would bump ``count``) and answer with an event."""
    stmt = insert(pings).values(nonce=msg.nonce)
    await unit.session.execute(
        stmt.on_conflict_do_update(index_elements=[pings.c.nonce], set_={"count": pings.c.count + 1})
    )
    await unit.emit(ServicePinged(nonce=msg.nonce, service="scheduler"))
