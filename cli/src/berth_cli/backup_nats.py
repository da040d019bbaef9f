"""The NATS side of ``berth backup`` / ``berth restore``: the control plane's JetStream store, stream by
stream, through the JetStream API, so that commands still pending when the backup was taken are delivered
after a restore.

A backup asks the NATS server (the running platform's, ``BERTH_NATS_URL``'s, or one started here on the
data directory's store for the time of the command) for a snapshot of each stream
(``$JS.API.STREAM.SNAPSHOT``): the server writes a consistent copy of the stream's messages and of its
consumers (their configuration, delivered and acknowledged sequences) while it keeps serving, so nothing
is stopped. The chunks are written to one file per stream as they arrive, each acknowledged for the
server's flow control; an empty message ends the snapshot, one with a status header reports its failure.

A restore starts a NATS server on the new data directory's store, as ``berth up`` runs it, and gives each
stream back (``$JS.API.STREAM.RESTORE`` with the recorded configuration and state, then the snapshot's
chunks, each one answered by the server, and an empty message that ends it): the messages and the
consumers come back as they were, so an unacknowledged command is delivered again once the platform runs.
The snapshots go into the archive in clear, as the dump does: secret values travel on the bus sealed with
the platform's key (``berth_common.sealing``), which the archive holds only in its sealed member.

The streams are snapshotted before the database is dumped, and the database's clock at that moment is
recorded (``taken_at``). A message consumed in between is pending in the snapshot and already recorded as
processed in the dump: it is delivered again and the handler's idempotency skips it. A message an outbox
published in between is in the dump as published but not in the snapshot: the restore marks every outbox
row published since ``taken_at`` unpublished (:func:`berth_cli.backup_pg.republish_since`), and the
services publish it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from berth_cli import backup_archive as fmt
from berth_cli.backup_archive import BackupError
from berth_cli.datadir import read_json, tail
from berth_cli.layout import Paths, resolve_ports

CHUNK = 128 * 1024
IDLE_TIMEOUT_S = 60.0  # the longest a snapshot or a restore waits for the server's next answer
READY_TIMEOUT_S = 30.0
_STREAM = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class StreamSnapshot:
    """One stream's snapshot: its configuration and state as the server gave them, and the file."""

    name: str
    config: dict[str, Any]
    state: dict[str, Any]
    path: Path

    @property
    def member(self) -> str:
        return stream_member(self.name)

    def entry(self) -> dict[str, Any]:
        return {"name": self.name, "member": self.member, "config": self.config, "state": self.state}


# --- the manifest's nats section (pure) -----------------------------------------------------------------


def stream_member(name: str) -> str:
    """The member holding the snapshot of the NATS stream ``name``."""
    return f"{fmt.NATS_PREFIX}{name}.snapshot"


def section(streams: list[StreamSnapshot], taken_at: str) -> dict[str, Any]:
    """The manifest's ``nats`` section: when the snapshots were taken (the database's clock) and each stream."""
    return {"taken_at": taken_at, "streams": [s.entry() for s in sorted(streams, key=lambda s: s.name)]}


def nats_streams(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The NATS streams the manifest lists (none before version 3), each checked: a stream name, its member
    ``nats/<name>.snapshot`` among the members, its configuration (of that name) and state objects."""
    found = manifest.get("nats")
    if found is None:
        return []
    streams = found.get("streams") if isinstance(found, dict) else None
    if not isinstance(streams, list) or not isinstance(found.get("taken_at"), str):
        raise BackupError("archive refused: the manifest's nats section is malformed")
    members = manifest.get("members") or {}
    for entry in streams:
        name = entry.get("name") if isinstance(entry, dict) else None
        if (
            not isinstance(entry, dict)
            or not isinstance(name, str)
            or not _STREAM.fullmatch(name)
            or entry.get("member") != stream_member(name)
            or entry["member"] not in members
            or not isinstance(entry.get("config"), dict)
            or entry["config"].get("name") != name
            or not isinstance(entry.get("state"), dict)
        ):
            raise BackupError(f"archive refused: the manifest's entry for NATS stream {name!r} is malformed")
    return streams


# --- the JetStream API ----------------------------------------------------------------------------------


def _api_error(what: str, reply: dict[str, Any]) -> BackupError | None:
    error = reply.get("error")
    if not error:
        return None
    detail = error.get("description", error) if isinstance(error, dict) else error
    return BackupError(f"{what} failed: {detail}")


async def _connect(url: str) -> Any:
    import nats

    from berth_cli.nats_auth import ADMIN, without_credentials
    from berth_common.bus import nats_servers

    try:  # replies and snapshot chunks come to the admin identity's own inbox (the one it may read)
        return await nats.connect(
            servers=nats_servers(url),
            connect_timeout=5,
            allow_reconnect=False,
            max_reconnect_attempts=0,
            inbox_prefix=f"_INBOX.{ADMIN}",
        )
    except Exception as exc:
        raise BackupError(f"cannot reach NATS at {without_credentials(url)}: {type(exc).__name__}: {exc}") from None


async def _request(nc: Any, subject: str, payload: dict[str, Any] | None, what: str) -> dict[str, Any]:
    body = json.dumps(payload).encode() if payload is not None else b""
    try:
        msg = await nc.request(subject, body, timeout=IDLE_TIMEOUT_S)
    except Exception as exc:
        raise BackupError(f"{what} failed: {type(exc).__name__}: {exc}") from None
    reply: dict[str, Any] = json.loads(msg.data or b"{}")
    problem = _api_error(what, reply)
    if problem is not None:
        raise problem
    return reply


async def _names(nc: Any) -> list[str]:
    names: list[str] = []
    while True:
        reply = await _request(nc, "$JS.API.STREAM.NAMES", {"offset": len(names)}, "listing the NATS streams")
        page = reply.get("streams") or []
        names += [str(n) for n in page]
        if not page or len(names) >= int(reply.get("total", 0)):
            return sorted(names)


async def _snapshot(nc: Any, name: str, path: Path) -> StreamSnapshot:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    last = [loop.time()]
    inbox = nc.new_inbox()
    with path.open("wb") as out:

        async def on_chunk(msg: Any) -> None:
            last[0] = loop.time()
            status = (msg.headers or {}).get("Status")
            if status and not done.done():
                detail = (msg.headers or {}).get("Description", "")
                done.set_exception(BackupError(f"the NATS snapshot of {name} failed: {status} {detail}".strip()))
            elif not msg.data:
                if not done.done():
                    done.set_result(None)
            else:
                out.write(msg.data)
                if msg.reply:
                    await nc.publish(msg.reply, b"")

        sub = await nc.subscribe(inbox, cb=on_chunk)
        try:
            request = {"deliver_subject": inbox, "chunk_size": CHUNK, "no_consumers": False}
            reply = await _request(nc, f"$JS.API.STREAM.SNAPSHOT.{name}", request, f"the NATS snapshot of {name}")
            while not done.done():
                if loop.time() - last[0] > IDLE_TIMEOUT_S:
                    raise BackupError(f"the NATS snapshot of {name} stalled: no chunk for {IDLE_TIMEOUT_S:g}s")
                await asyncio.wait({done}, timeout=1.0)
            done.result()
        finally:
            await sub.unsubscribe()
    return StreamSnapshot(name, reply["config"], reply["state"], path)


async def _snapshot_all(url: str, folder: Path) -> list[StreamSnapshot]:
    nc = await _connect(url)
    try:
        return [await _snapshot(nc, name, folder / f"{name}.snapshot") for name in await _names(nc)]
    finally:
        await nc.close()


def snapshot_streams(url: str, folder: Path) -> list[StreamSnapshot]:
    """A snapshot of every stream of the NATS server at ``url``, one file per stream in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    return asyncio.run(_snapshot_all(url, folder))


async def _restore_one(nc: Any, entry: Mapping[str, Any], path: Path) -> None:
    name = entry["name"]
    what = f"restoring NATS stream {name}"
    body = {"config": entry["config"], "state": entry["state"]}
    subject = (await _request(nc, f"$JS.API.STREAM.RESTORE.{name}", body, what))["deliver_subject"]
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            try:
                answer = await nc.request(subject, chunk, timeout=IDLE_TIMEOUT_S)
            except Exception as exc:
                raise BackupError(f"{what} failed: {type(exc).__name__}: {exc}") from None
            if answer.data:  # an error ends the restore early
                problem = _api_error(what, json.loads(answer.data))
                if problem is not None:
                    raise problem
    await _request(nc, subject, None, what)


async def _restore_all(url: str, entries: list[tuple[Mapping[str, Any], Path]]) -> None:
    nc = await _connect(url)
    try:
        for entry, path in entries:
            await _restore_one(nc, entry, path)
    finally:
        await nc.close()


def restore_streams(url: str, entries: list[tuple[Mapping[str, Any], Path]]) -> list[str]:
    """Each stream (its manifest entry and its snapshot's file) given back to the NATS server at ``url``."""
    asyncio.run(_restore_all(url, entries))
    return [str(entry["name"]) for entry, _ in entries]


# --- the server -----------------------------------------------------------------------------------------


def store(paths: Paths) -> Path:
    """The data directory's JetStream store (``components.nats_launch`` runs the server on it)."""
    return paths.root / "nats"


async def _jetstream_ready(url: str) -> None:
    nc = await _connect(url)
    try:
        await _request(nc, "$JS.API.INFO", None, "asking NATS for JetStream")
    finally:
        await nc.close()


@contextlib.contextmanager
def nats_on_store(paths: Paths, log: Path) -> Iterator[str]:
    """A NATS server with JetStream on the data directory's store and a free port, until the block ends; its
    URL carries the data directory's ``admin`` identity (never print it: ``nats_auth.without_credentials``)."""
    from berth_cli import components, nats_auth

    launch = components.nats_launch(paths.root, components.free_port(), config=nats_auth.write_config(paths.root))
    url = nats_auth.admin_url(paths.root, f"nats://127.0.0.1:{launch.argv[launch.argv.index('-p') + 1]}")
    with log.open("ab") as out:
        proc = subprocess.Popen(launch.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                asyncio.run(_jetstream_ready(url))
                break
            except BackupError:
                if proc.poll() is not None:
                    raise BackupError(f"nats-server did not start: {tail(log, 10)}") from None
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


@contextlib.contextmanager
def platform_nats(paths: Paths, env: Mapping[str, str], log: Path) -> Iterator[str | None]:
    """The platform's NATS: ``BERTH_NATS_URL`` when set (as ``BERTH_NATS_USER`` with ``BERTH_NATS_PASSWORD``
    when they are set, else as ``admin`` with the password derived from ``BERTH_SECRET_KEY``, as
    docker-compose.yml's NATS has it); the running platform's (as the data directory's ``admin`` identity); else a server
    started on the data directory's store for the time of the block; None when the data directory has no
    store. The URL may carry a password: never print it."""
    from berth_cli import nats_auth, platform

    if env.get("BERTH_NATS_URL"):
        url = env["BERTH_NATS_URL"]
        user, password = env.get("BERTH_NATS_USER"), env.get("BERTH_NATS_PASSWORD")
        if not (user and password) and env.get("BERTH_SECRET_KEY"):  # docker-compose.yml: derived, as its NATS has it
            user, password = nats_auth.ADMIN, nats_auth.derived_password(env["BERTH_SECRET_KEY"], nats_auth.ADMIN)
        if user and password:
            url = nats_auth.with_credentials(url, user, password)
        yield url
    elif platform.supervisor_pid(paths) is not None:
        state = read_json(paths.state) or {}
        port = (state.get("ports") or {}).get("nats") or resolve_ports(env)["nats"]
        yield nats_auth.admin_url(paths.root, f"nats://127.0.0.1:{int(port)}")
    elif store(paths).is_dir():
        with nats_on_store(paths, log) as url:
            yield url
    else:
        yield None
