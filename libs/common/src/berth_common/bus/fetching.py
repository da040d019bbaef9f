"""A consumer's fetch that a stop may end, and giving back what reached an ended fetch's pull request.

nats-py's ``PullSubscription.fetch`` keeps the messages it has taken in a list of its own until it returns,
so cancelling a fetch that took any would lose them (the server would redeliver them only after ack_wait).
A fetch is therefore ended only while the subscription has received nothing since it began. Its pull
request stays on the server until it expires: what the server hands to it meanwhile is given back (nak)
when the subscription goes, so it is delivered again at once.
"""

from __future__ import annotations

import asyncio
import contextlib

from nats.aio.msg import Msg
from nats.js import JetStreamContext


async def hand_back(msg: Msg, delay: float | None = None) -> None:
    """Give ``msg`` back for another delivery (after ``delay`` seconds); when the connection is gone, the
    server redelivers it after ack_wait anyway."""
    with contextlib.suppress(Exception):
        await msg.nak(delay=delay)


def fetch_mark(psub: JetStreamContext.PullSubscription) -> int:
    """What the subscription has received, taken as a fetch begins; -1 when the fetch is never to be ended.

    A status left by an expired pull request (its 408 came after the fetch's own timeout) is dropped, as
    the fetch would drop it. A fetch that starts by taking messages already queued is never ended."""
    sub = psub._sub
    queue = sub._pending_queue
    for msg in [queue.get_nowait() for _ in range(queue.qsize())]:
        if JetStreamContext.is_status_msg(msg):
            sub._pending_size -= len(msg.data)
        else:
            queue.put_nowait(msg)
    return sub._received if queue.empty() else -1


def end_if_idle(fetch: asyncio.Task[list[Msg]] | None, psub: JetStreamContext.PullSubscription, mark: int) -> None:
    """Cancel ``fetch`` if the subscription received nothing since ``mark``. Nothing awaits between the check
    and the cancel, so no message can reach the fetch in between."""
    if fetch is not None and not fetch.done() and psub._sub._received == mark:
        fetch.cancel()


async def release(psub: JetStreamContext.PullSubscription) -> None:
    """Remove the subscription's interest on the server, then give back what reached it till then.

    Once the server has processed the UNSUB it hands nothing more to the pull request (it checks the
    interest before each delivery); everything it sent before arrives ahead of the PONG. nats-py queues the
    UNSUB for its flusher but writes a flush's PING at once: the second flush is the one whose PING follows
    the UNSUB on the wire (``berth_common.bus.client.subscriptions_confirmed``)."""
    sub = psub._sub
    nc = psub._nc
    if not nc.is_connected or sub._closed:
        return  # without a connection there is no interest left, and nothing could be given back
    await nc._send_unsubscribe(sub._id)
    await nc.flush()
    await nc.flush()
    queue = sub._pending_queue
    while not queue.empty():
        msg = queue.get_nowait()
        if not JetStreamContext.is_status_msg(msg):
            await hand_back(msg)
    await nc.flush()  # the naks are on the wire before the connection may close
