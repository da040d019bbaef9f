"""Use cases behind the HTTP routes (projects, applications, deployments, logs, identity) and the bus
consumers (``projection``, ``removal``). Nothing here knows HTTP beyond raising ``ProblemError``; routes
shape the answers."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from berth_api.adapters.secretbox import SecretBox
from berth_api.settings import ApiSettings
from berth_common.bus import Bus


@dataclass(frozen=True)
class Deps:
    settings: ApiSettings
    sessionmaker: async_sessionmaker[AsyncSession]
    bus: Bus
    box: SecretBox
