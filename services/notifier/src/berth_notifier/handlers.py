"""Handlers of the notifier service: one call into a use case.

Every event the notifier consumes goes to ``usecases.notify``; each query is answered by the use case
``entrypoints.bus.QUERIES`` names for it (``usecases.channels``, ``usecases.subscriptions``,
``usecases.delivery_log``).
"""

from __future__ import annotations

from berth_common.catalogue import Event
from berth_common.db import Unit
from berth_common.envelope import Envelope
from berth_notifier.usecases import notify
from berth_notifier.usecases.deps import Deps


async def on_event(deps: Deps, event: Event, envelope: Envelope, unit: Unit) -> list[str]:
    """Queue the event on the subscribed channels; returns the channels to wake after the commit."""
    return await notify.queue_event(deps, event, envelope, unit)
