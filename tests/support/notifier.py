"""The real notifier served in-process beside an api under test (quick retries, private targets allowed so
a local receiver on 127.0.0.1 can stand in for Slack, a webhook, ...), until the block ends."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from berth_common.runtime import serve

if TYPE_CHECKING:
    from berth_notifier.settings import NotifierSettings


@contextlib.asynccontextmanager
async def serving_notifier(nats_url: str, database_url: str, secret_key: str) -> AsyncIterator[NotifierSettings]:
    """Serve the notifier (start it after the api, which declares the streams); yield its settings."""
    from berth_notifier.bootstrap import spec
    from berth_notifier.settings import NotifierSettings

    settings = NotifierSettings(
        nats_url=nats_url,
        database_url=database_url,
        http_port=0,
        secret_key=secret_key,
        public_url="https://berth.test",
        notify_backoff_base_s=0.2,
        notify_backoff_max_s=1.0,
        notify_timeout_s=3.0,
        notify_sweep_interval_s=0.5,
        notify_allow_private_targets=True,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(serve(spec(settings), stop), name="notifier-under-test")
    try:
        yield settings
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 30)
