"""A consumer's fetch: how much it asks for, ending it at a stop, giving back what reached an ended fetch.

A fetch asks for no more messages than the server said were pending when it delivered the last one (at
least 1: on a quiet bus, one at a time). All of a subscription's pull requests answer on one inbox, and
nats-py's fetch takes any status there (an earlier request's expiry, which comes just after the fetch that
sent it timed out) for the answer to its own request and sends a second request, which stays on the server
and takes messages that come later. A fetch that gets one of those waits for the rest of its batch, or for
a status of its own request, until its wait ends (``fetch_wait_s``): asking for more than are coming held a
command of a burst up to a second. A fetch of one returns with the first message; a fetch of what is
pending gets it at once (unless another instance of the service, on the same durable consumer, takes some).

nats-py's ``PullSubscription.fetch`` keeps the messages it has taken in a list of its own until it returns,
so cancelling a fetch that took any would lose them (the server would redeliver them only after ack_wait).
A fetch is therefore ended only while the subscription has received no message since it began (statuses,
such as an earlier pull request's expiry, which a fetch never keeps, do not count). Its pull request stays
on the server until it expires: what the server hands to it meanwhile is given back (nak) when the
subscription goes, so it is delivered again at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from nats.aio.msg import Msg
from nats.js import JetStreamContext

from berth_common.tasks import cancel_and_wait


async def hand_back(msg: Msg, delay: float | None = None) -> None:
    """Give ``msg`` back for another delivery (after ``delay`` seconds); when the connection is gone, the
    server redelivers it after ack_wait anyway."""
    with contextlib.suppress(Exception):
        await msg.nak(delay=delay)


class _Counting(asyncio.Queue[Msg]):
    """A subscription's queue of what it received, counting the messages (what a fetch keeps: all but the
    server's statuses)."""

    def __init__(self, maxsize: int = 0) -> None:
        super().__init__(maxsize)
        self.messages = 0

    def put_nowait(self, item: Msg) -> None:
        super().put_nowait(item)
        if not JetStreamContext.is_status_msg(item):
            self.messages += 1


def request_size(room: int, received: list[Msg] | None) -> int:
    """How many messages the next fetch asks for: at most ``room``, and no more than were pending on the
    server when it delivered the last message the previous fetch ``received`` (at least 1; 1 when it got
    none). The first fetch (``received`` None) asks for ``room``: a starting consumer may find a backlog, and
    has no earlier pull request whose status could mislead its fetch."""
    if received is None:
        return room
    if not received:
        return 1
    try:
        pending = received[-1].metadata.num_pending
    except Exception:  # not a JetStream delivery: ask for one
        pending = 0
    return max(1, min(room, pending))


def count_messages(psub: JetStreamContext.PullSubscription) -> None:
    """Make the subscription count the messages it receives (before its first fetch), for ``end_if_idle``."""
    sub = psub._sub
    if isinstance(sub._pending_queue, _Counting):
        return
    queue = _Counting(sub._pending_queue.maxsize)
    while not sub._pending_queue.empty():
        queue.put_nowait(sub._pending_queue.get_nowait())
    sub._pending_queue = queue


def _received(psub: JetStreamContext.PullSubscription) -> int:
    """The messages the subscription received (with statuses, if it does not count them: ``count_messages``)."""
    queue = psub._sub._pending_queue
    return queue.messages if isinstance(queue, _Counting) else psub._sub._received


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
    return _received(psub) if queue.empty() else -1


def end_if_idle(fetch: asyncio.Task[list[Msg]] | None, psub: JetStreamContext.PullSubscription, mark: int) -> None:
    """Cancel ``fetch`` if the subscription received no message since ``mark`` (a status may have come: the
    fetch drops those). Nothing awaits between the check and the cancel, so no message can reach the fetch
    in between."""
    if fetch is not None and not fetch.done() and _received(psub) == mark:
        fetch.cancel()


async def finish(
    loop: asyncio.Task[None], end_idle_fetch: Callable[[], None], timeout: float, retry_s: float = 0.02
) -> None:
    """Wait for a stopping consumer's fetch ``loop`` to end, ending its fetch while it is idle; again every
    ``retry_s``: a fetch cancelled just as a status reached it goes on (Python 3.11's ``wait_for`` returns
    what completed with the cancel instead) to a wait of its own, which this ends then. The loop is cancelled
    after ``timeout``; its error, if it failed, is raised."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not loop.done():
        end_idle_fetch()
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            await cancel_and_wait(loop)
            return
        await asyncio.wait({loop}, timeout=min(left, retry_s))
    loop.result()


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
