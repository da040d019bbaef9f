"""What the notifier's use cases work with: its settings, its database, the channel secrets' box and the
delivery workers."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from berth_notifier.adapters.secretbox import SecretBox
from berth_notifier.settings import NotifierSettings
from berth_notifier.usecases.delivery import Dispatcher


@dataclass
class Deps:
    settings: NotifierSettings
    sessionmaker: async_sessionmaker[AsyncSession]
    box: SecretBox
    dispatcher: Dispatcher
