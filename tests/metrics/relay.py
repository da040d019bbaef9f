"""A unix-socket relay in front of the real Docker engine that a test controls: it can cut the open
connections, refuse new ones (accept and close at once), or stop listening altogether and start again, so
the engine "goes away" for the metrics service while the real engine keeps running."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path


class Relay:
    def __init__(self, path: Path, target: str = "/var/run/docker.sock") -> None:
        self.path, self.target = path, target
        self.refuse = False
        self.accepted = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    async def start(self) -> Relay:
        self._server = await asyncio.start_unix_server(self._handle, path=str(self.path))
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refuse:
            writer.close()
            return
        self.accepted += 1
        up_reader, up_writer = await asyncio.open_unix_connection(self.target)
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}

    def cut(self) -> None:
        for w in list(self._writers):
            w.close()

    async def stop(self) -> None:
        """Stop listening and cut every connection: connecting is refused until :meth:`start`."""
        if self._server is not None:
            self._server.close()
            self._server = None
        self.cut()
