"""Bus consumers of the notifier service."""

from __future__ import annotations

from berth_common.runtime import Context


async def register(ctx: Context) -> None:
    """Subscribe the service's handlers (none consume messages yet)."""
