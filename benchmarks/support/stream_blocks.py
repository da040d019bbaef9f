"""How far the platform's busy streams have filled their blocks: the soak's warm-up rule.

nats-server keeps in memory the block a stream writes to, up to the block's size (``berth_common.bus.streams``),
so its memory climbs until the events' and the log lines' first blocks are full, then follows a bounded
saw-tooth. A memory growth measured from a moment before that reads the first climb, not a leak: the soak
measures from the moment each of :data:`WARMUP_STREAMS` holds at least one block's worth of bytes.

The JetStream API gives a stream's stored bytes (every record as the store writes it) but not its blocks: a
block is closed when the next record does not fit, so a stream holding at least its block size in bytes has
filled (and closed) at least one block. The block size comes from the stream's configuration, as nats-server
sizes it (:func:`berth_common.bus.streams.block_size`): 4 MB as declared, 8 MB for a stream made before the
per-subject limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import nats
from nats.js import JetStreamContext

from berth_common.bus.streams import EVT_STREAM, LOG_STREAM, block_size

# The streams every deploy writes to (the command work queue empties as it is read; dead letters stay empty).
WARMUP_STREAMS = (EVT_STREAM, LOG_STREAM)
RULE = (
    "the warm-up ends once each of the streams every deploy writes to ("
    + ", ".join(WARMUP_STREAMS)
    + ") holds at least one block's worth of bytes (its first block filled: nats-server's memory has reached "
    "its saw-tooth), and not before the warm-up's least time and one deploy of each application"
)


@dataclass(frozen=True)
class StreamFill:
    stream: str
    messages: int
    bytes: int
    block_bytes: int

    @property
    def blocks_filled(self) -> int:
        """Blocks filled and closed, at least (records do not split across blocks)."""
        return self.bytes // self.block_bytes if self.block_bytes else 0

    @property
    def in_last_block_mb(self) -> float:
        """About what the block being written holds (where on the saw-tooth this stream is)."""
        return round((self.bytes % self.block_bytes if self.block_bytes else self.bytes) / 1e6, 2)

    def as_json(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "mb": round(self.bytes / 1e6, 2),
            "block_mb": round(self.block_bytes / 1e6, 2),
            "blocks_filled": self.blocks_filled,
            "in_last_block_mb": self.in_last_block_mb,
        }


async def stream_fill(js: JetStreamContext, streams: tuple[str, ...] = WARMUP_STREAMS) -> dict[str, StreamFill]:
    fill = {}
    for name in streams:
        info = await js.stream_info(name)
        fill[name] = StreamFill(name, int(info.state.messages), int(info.state.bytes), block_size(info.config) or 0)
    return fill


def warmed_up(fill: dict[str, StreamFill]) -> bool:
    """True once every stream read has filled at least one block."""
    return bool(fill) and all(f.blocks_filled >= 1 for f in fill.values())


async def connect_admin(nats_url: str, password: str) -> Any:
    """A connection as the bus's ``admin`` identity, which may read every stream's state."""
    return await nats.connect(
        nats_url, user="admin", password=password, inbox_prefix=b"_INBOX.admin", connect_timeout=10
    )
