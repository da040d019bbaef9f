"""A consuming service in its own process, for the crash tests of the bus (run with the venv's python).

It consumes ``cmd.system.ping`` with a handler wrapped by ``berth_common.db.idempotent`` that bumps a
counter row (``effects``) and emits ``evt.system.pinged`` through the outbox. While the marker file says
``first`` it SIGKILLs itself once, at the point ``--crash`` names:

- ``after_commit``: the handler's transaction committed, the message is not acked yet;
- ``before_commit``: the handler wrote its row but the transaction is still open;
- ``none``: never.

Every delivery and every handler run is appended to ``--log`` (``delivery <attempt>`` / ``handler <attempt>``).
SIGTERM stops it gracefully (``Bus.close``). ``--ready`` is written once the consumer runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from berth_common.bus import Bus, Delivery
from berth_common.catalogue import PingService, ServicePinged
from berth_common.db import Unit, idempotent, make_engine, make_sessionmaker

effects = sa.Table(
    "effects",
    sa.MetaData(),
    sa.Column("nonce", sa.String(64), primary_key=True),
    sa.Column("count", sa.Integer, nullable=False, server_default="1"),
)


def _note(log: Path, line: str) -> None:
    with log.open("a") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def _crash_now(marker: Path) -> None:
    marker.write_text("crashed")
    os.kill(os.getpid(), signal.SIGKILL)


async def main(args: argparse.Namespace) -> None:
    marker, log = Path(args.marker), Path(args.log)
    engine = make_engine(args.db, args.schema)
    sessionmaker = make_sessionmaker(engine)
    bus = Bus("worker", args.nats, ack_wait_s=args.ack_wait, max_deliver=args.max_deliver, backoff_s=[0.2])
    await bus.connect()

    async def on_ping(msg: PingService, unit: Unit) -> None:
        _note(log, f"handler {unit.delivery.attempt if unit.delivery else 0}")
        stmt = insert(effects).values(nonce=msg.nonce)
        await unit.session.execute(
            stmt.on_conflict_do_update(index_elements=[effects.c.nonce], set_={"count": effects.c.count + 1})
        )
        await unit.emit(ServicePinged(nonce=msg.nonce, service="worker"))
        if args.crash == "before_commit" and marker.read_text() == "first":
            await unit.session.flush()
            _crash_now(marker)

    inner = idempotent(bus, sessionmaker, on_ping)

    async def handler(msg: Any, delivery: Delivery) -> None:
        _note(log, f"delivery {delivery.attempt}")
        await inner(msg, delivery)
        if args.crash == "after_commit" and marker.read_text() == "first":
            _crash_now(marker)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await bus.consume(PingService, handler)
    Path(args.ready).write_text("ready")
    await stop.wait()
    await bus.close()
    await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--nats", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--schema", required=True)
    parser.add_argument("--marker", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--ready", required=True)
    parser.add_argument("--crash", choices=["after_commit", "before_commit", "none"], default="none")
    parser.add_argument("--ack-wait", type=float, default=2.0)
    parser.add_argument("--max-deliver", type=int, default=5)
    asyncio.run(main(parser.parse_args()))
