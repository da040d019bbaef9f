"""The api under test is served on a port chosen free, which another process of the machine may bind first under
parallel workers: ``start_api`` serves it again on another port instead of failing the test's set-up."""

from __future__ import annotations

import socket

from tests.api.conftest import start_api


async def test_an_api_whose_port_was_taken_is_served_on_another(api_settings) -> None:
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    running = await start_api(api_settings.model_copy(update={"http_port": taken}))
    try:
        assert running.settings.http_port != taken
        assert running.url.endswith(f":{running.settings.http_port}")
    finally:
        await running.shutdown()
        squatter.close()
