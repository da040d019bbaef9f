"""The platform's health as the api reports it: one entry per service, answered over the bus."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ServiceStatus(BaseModel):
    service: str
    ready: bool
    components: dict[str, bool] = Field(default_factory=dict)
    error: str | None = Field(default=None, description="Why the service could not be asked (down, timeout).")


class PlatformStatus(BaseModel):
    ready: bool
    services: list[ServiceStatus]


def summarise(statuses: list[ServiceStatus]) -> PlatformStatus:
    return PlatformStatus(ready=all(s.ready for s in statuses), services=statuses)
