"""Who may do what on the bus: each identity's NATS publish and subscribe permissions, derived from the
catalogue's ``PRODUCERS`` and ``CONSUMERS`` (pure data; nats-server enforces them).

One identity per service (named like the service); ``operator``, the catalogue's party of that name (a
monitoring probe sending the liveness command, a tool watching dead letters), held like a service;
``observer``, which reads every event as it is published and sends nothing (a dashboard of the platform,
the benchmarks); and ``admin``, the control-plane host's tooling (``berth backup`` / ``berth restore`` of
the JetStream streams). A service may publish only:

- the commands and events it produces (``evt.log.line`` goes on ``log.<id>``), the queries it asks
  (``rpc.<server>.<name>``) and the dead letters of what it consumes (``dlq.<subject>``);
- replies (``_INBOX.>``: answers to queries, the lines of a log follow);
- the JetStream API it needs: ``$JS.API.INFO``, stream info and create of Berth's streams (every service
  declares them at start; no update, delete or purge), and for each message it consumes, the info, create
  (with its filter in the subject, so the filter is checked), next-message and acknowledgement subjects of
  its own durable consumer (``<service>--<type>``). The reader of the log stream (``evt.log.line``'s
  consumer) makes ephemeral ordered consumers there, deletes them and reads the last line.

It may subscribe only to its own inbox (``_INBOX.<identity>.>``: its requests' replies and its consumers'
deliveries come there, see :func:`inbox_prefix`) and to the queries it serves (``rpc.<service>.<name>``).
Nothing else: no core subscription to ``cmd.>`` or ``evt.>``, no consumer on another's messages.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from berth_common.bus.consumer import durable_name
from berth_common.bus.streams import CMD_STREAM, DEAD_LETTER_PREFIX, DLQ_STREAM, EVT_STREAM, LOG_STREAM, stream_for
from berth_common.catalogue import REGISTRY, SERVICES, LogLine, Message, consumed_by, served_by

ADMIN = "admin"
OPERATOR = "operator"
OBSERVER = "observer"
IDENTITIES = (*SERVICES, OPERATOR, OBSERVER, ADMIN)
STREAMS = (CMD_STREAM, EVT_STREAM, LOG_STREAM, DLQ_STREAM)
# Messages published on another subject than their type (the log lines of one deployment, build or restore).
BUS_SUBJECTS = {LogLine.TYPE: "log.*"}


@dataclass(frozen=True)
class Permissions:
    """What one identity may publish and subscribe to (NATS subjects, wildcards allowed), sorted."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]

    def config(self) -> dict[str, Any]:
        """The ``permissions`` block of a user in nats-server's configuration (nothing to publish: every
        subject denied, an empty allow list would not restrict)."""
        publish = {"allow": list(self.publish)} if self.publish else {"deny": [">"]}
        return {"publish": publish, "subscribe": {"allow": list(self.subscribe)}}


def inbox_prefix(identity: str) -> str:
    """The inbox prefix of ``identity``'s connection: only it may subscribe below it."""
    return f"_INBOX.{identity}"


def bus_subject(model: type[Message]) -> str:
    return BUS_SUBJECTS.get(model.TYPE, model.TYPE)


def _consumer_api(service: str, model: type[Message]) -> list[str]:
    stream, name = stream_for(model.TYPE), durable_name(service, model.TYPE)
    return [
        f"$JS.API.CONSUMER.INFO.{stream}.{name}",
        f"$JS.API.CONSUMER.CREATE.{stream}.{name}.{model.TYPE}",
        f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{name}",
        f"$JS.ACK.{stream}.{name}.>",
    ]


def _log_reader_api() -> list[str]:
    return [
        f"$JS.API.CONSUMER.CREATE.{LOG_STREAM}",
        f"$JS.API.CONSUMER.DELETE.{LOG_STREAM}.*",
        f"$JS.API.STREAM.MSG.GET.{LOG_STREAM}",
        f"$JS.FC.{LOG_STREAM}.>",
    ]


def service_permissions(
    service: str, registry: Mapping[str, type[Message]] | None = None, streams: Iterable[str] = STREAMS
) -> Permissions:
    """The permissions of ``service``'s identity, from the catalogue (``registry``: REGISTRY by default)."""
    entries = REGISTRY if registry is None else registry
    publish = {"_INBOX.>", "$JS.API.INFO"}
    for stream in streams:
        publish |= {f"$JS.API.STREAM.INFO.{stream}", f"$JS.API.STREAM.CREATE.{stream}"}
    for model in entries.values():
        if service not in model.PRODUCERS:
            continue
        if model.KIND == "query":
            name = model.TYPE.removeprefix("rpc.")
            publish |= {f"rpc.{server}.{name}" for server in model.CONSUMERS}
        elif model.KIND in ("command", "event"):
            publish.add(bus_subject(model))
    for model in consumed_by(service, entries):
        if model.TYPE in BUS_SUBJECTS:  # read with ephemeral ordered consumers, never acknowledged
            publish |= set(_log_reader_api())
            continue
        publish.add(f"{DEAD_LETTER_PREFIX}{model.TYPE}")
        publish |= set(_consumer_api(service, model))
    subscribe = {f"{inbox_prefix(service)}.>"}
    subscribe |= {f"rpc.{service}.{model.TYPE.removeprefix('rpc.')}" for model in served_by(service, entries)}
    return Permissions(tuple(sorted(publish)), tuple(sorted(subscribe)))


def admin_permissions() -> Permissions:
    """The control-plane host's tooling: snapshots and restores of every stream (``berth backup``), and an
    inspection of what is stored: every stream's state, and the events read back through short-lived
    consumers of the event stream (never of the command work queue, whose messages it could take). The
    host's tooling reads the data directory, every identity's password included: this widens nothing."""
    publish = (
        "$JS.ACK.BERTH_EVT.>",
        "$JS.API.CONSUMER.CREATE.BERTH_EVT",
        "$JS.API.CONSUMER.CREATE.BERTH_EVT.>",
        "$JS.API.CONSUMER.DELETE.BERTH_EVT.*",
        "$JS.API.CONSUMER.MSG.NEXT.BERTH_EVT.*",
        "$JS.API.INFO",
        "$JS.API.STREAM.INFO.*",
        "$JS.API.STREAM.NAMES",
        "$JS.API.STREAM.RESTORE.*",
        "$JS.API.STREAM.SNAPSHOT.*",
        "$JS.SNAPSHOT.>",
    )
    return Permissions(publish, (f"{inbox_prefix(ADMIN)}.>",))


def observer_permissions() -> Permissions:
    """Every event as it is published (core NATS: nothing stored is read, nothing is acknowledged)."""
    return Permissions((), ("_INBOX.observer.>", "evt.>"))


def permissions(identity: str, registry: Mapping[str, type[Message]] | None = None) -> Permissions:
    if identity == ADMIN:
        return admin_permissions()
    if identity == OBSERVER:
        return observer_permissions()
    if identity not in (*SERVICES, OPERATOR):
        raise KeyError(f"no bus identity {identity!r} (known: {', '.join(IDENTITIES)})")
    return service_permissions(identity, registry)


def authorization(passwords: Mapping[str, str], registry: Mapping[str, type[Message]] | None = None) -> dict[str, Any]:
    """nats-server's ``authorization`` block: one user per identity in ``passwords``, with its permissions.

    No ``no_auth_user``: a client without credentials is refused."""
    users = [
        {"user": identity, "password": passwords[identity], "permissions": permissions(identity, registry).config()}
        for identity in sorted(passwords)
    ]
    return {"users": users}
