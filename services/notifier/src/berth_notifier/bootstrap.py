"""Wiring of the notifier service: the only place its parts are put together."""

from __future__ import annotations

import logging
from pathlib import Path

from berth_common.logging import get_logger
from berth_common.runtime import Context, ServiceSpec, run
from berth_notifier.adapters import secretbox, store
from berth_notifier.entrypoints import bus
from berth_notifier.settings import NotifierSettings
from berth_notifier.usecases.delivery import Dispatcher
from berth_notifier.usecases.deps import Deps

VERSIONS = Path(__file__).parent / "migrations" / "versions"
log = get_logger(__name__)


async def wire(ctx: Context) -> None:
    # httpx logs every request URL at INFO: a Slack/Discord webhook URL or a Telegram bot token is a secret.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(logging.getLogger(name).getEffectiveLevel(), logging.WARNING))
    settings = ctx.settings
    if not isinstance(settings, NotifierSettings):
        raise TypeError("the notifier needs NotifierSettings")
    box = secretbox.from_settings(
        settings.notify_key_file,
        settings.secret_key.get_secret_value(),
        [k.get_secret_value() for k in settings.notify_previous_secret_keys],
    )
    async with ctx.sessionmaker() as s, s.begin():
        rotated, unreadable = await store.rotate_secrets(s, box)
    if rotated:
        log.info("channel secrets re-encrypted with the current key", channels=rotated)
    if unreadable:
        log.error("channel secrets no configured key decrypts", channel_ids=unreadable)
    dispatcher = Dispatcher(settings, ctx.sessionmaker, box)
    dispatcher.start()
    ctx.cleanups.append(dispatcher.stop)
    await bus.register(ctx, Deps(settings, ctx.sessionmaker, box, dispatcher))


def spec(settings: NotifierSettings | None = None) -> ServiceSpec:
    return ServiceSpec(name="notifier", settings=settings or NotifierSettings(), versions_dir=VERSIONS, wire=wire)


def main() -> None:
    run(spec())
