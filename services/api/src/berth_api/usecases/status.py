"""The platform's status: every service asked for its health over the bus (``rpc.<service>.health``)."""

from __future__ import annotations

import asyncio

from berth_api.domain.status import PlatformStatus, ServiceStatus, summarise
from berth_common.bus import Bus, ServiceUnavailableError
from berth_common.catalogue import HealthQuery, HealthReply


async def service_health(bus: Bus, service: str, timeout_s: float) -> ServiceStatus:
    try:
        reply = await bus.request(service, "health", HealthQuery(), HealthReply, timeout=timeout_s)
    except ServiceUnavailableError as exc:
        return ServiceStatus(service=service, ready=False, error=str(exc))
    except Exception as exc:
        return ServiceStatus(service=service, ready=False, error=f"health query failed: {str(exc)[:300]}")
    return ServiceStatus(service=service, ready=reply.ready, components=reply.components)


async def platform_status(bus: Bus, timeout_s: float) -> PlatformStatus:
    """Ask every service's health over the bus, concurrently; a silent one shows as not ready."""
    services = HealthQuery.CONSUMERS
    statuses = await asyncio.gather(*(service_health(bus, s, timeout_s) for s in services))
    return summarise(list(statuses))
