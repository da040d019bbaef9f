"""Each bus identity's permissions, derived from the catalogue's producers and consumers (pure, exact)."""

from __future__ import annotations

from typing import ClassVar

import pytest

from berth_common.bus.permissions import (
    ADMIN,
    IDENTITIES,
    Permissions,
    authorization,
    permissions,
    service_permissions,
)
from berth_common.catalogue import REGISTRY, SERVICES, Command, Event, LogLine, Message, Query

JS_STREAMS = [
    "$JS.API.INFO",
    "$JS.API.STREAM.CREATE.BERTH_CMD",
    "$JS.API.STREAM.CREATE.BERTH_DLQ",
    "$JS.API.STREAM.CREATE.BERTH_EVT",
    "$JS.API.STREAM.CREATE.BERTH_LOG",
    "$JS.API.STREAM.INFO.BERTH_CMD",
    "$JS.API.STREAM.INFO.BERTH_DLQ",
    "$JS.API.STREAM.INFO.BERTH_EVT",
    "$JS.API.STREAM.INFO.BERTH_LOG",
]


class Start(Command):
    TYPE: ClassVar[str] = "cmd.thing.start"
    PRODUCERS: ClassVar[tuple[str, ...]] = ("api",)
    CONSUMERS: ClassVar[tuple[str, ...]] = ("builder",)


class Started(Event):
    TYPE: ClassVar[str] = "evt.thing.started"
    PRODUCERS: ClassVar[tuple[str, ...]] = ("builder",)
    CONSUMERS: ClassVar[tuple[str, ...]] = ("api", "notifier")


class Look(Query):
    TYPE: ClassVar[str] = "rpc.thing.get"
    PRODUCERS: ClassVar[tuple[str, ...]] = ("api",)
    CONSUMERS: ClassVar[tuple[str, ...]] = ("builder", "scheduler")


TABLE: dict[str, type[Message]] = {m.TYPE: m for m in (Start, Started, Look, LogLine)}


def test_a_service_publishes_what_it_produces_and_consumes_with_its_own_durables():
    assert service_permissions("builder", TABLE) == Permissions(
        publish=(
            "$JS.ACK.BERTH_CMD.builder--cmd_thing_start.>",
            "$JS.API.CONSUMER.CREATE.BERTH_CMD.builder--cmd_thing_start.cmd.thing.start",
            "$JS.API.CONSUMER.INFO.BERTH_CMD.builder--cmd_thing_start",
            "$JS.API.CONSUMER.MSG.NEXT.BERTH_CMD.builder--cmd_thing_start",
            *JS_STREAMS,
            "_INBOX.>",
            "dlq.cmd.thing.start",
            "evt.thing.started",
            "log.*",  # LogLine: the real catalogue lists builder among its producers
        ),
        subscribe=("_INBOX.builder.>", "rpc.builder.thing.get"),
    )


def test_the_asker_publishes_each_servers_query_and_the_log_reader_makes_ephemeral_consumers():
    assert service_permissions("api", TABLE) == Permissions(
        publish=(
            "$JS.ACK.BERTH_EVT.api--evt_thing_started.>",
            "$JS.API.CONSUMER.CREATE.BERTH_EVT.api--evt_thing_started.evt.thing.started",
            "$JS.API.CONSUMER.CREATE.BERTH_LOG",
            "$JS.API.CONSUMER.DELETE.BERTH_LOG.*",
            "$JS.API.CONSUMER.INFO.BERTH_EVT.api--evt_thing_started",
            "$JS.API.CONSUMER.MSG.NEXT.BERTH_EVT.api--evt_thing_started",
            *JS_STREAMS,
            "$JS.API.STREAM.MSG.GET.BERTH_LOG",
            "$JS.FC.BERTH_LOG.>",
            "_INBOX.>",
            "cmd.thing.start",
            "dlq.evt.thing.started",
            "rpc.builder.thing.get",
            "rpc.scheduler.thing.get",
        ),
        subscribe=("_INBOX.api.>",),
    )


def test_a_party_of_nothing_only_declares_streams():
    assert service_permissions("proxy-sync", TABLE) == Permissions(
        publish=(*JS_STREAMS, "_INBOX.>"), subscribe=("_INBOX.proxy-sync.>",)
    )


def test_admin_snapshots_restores_and_inspects_streams_only():
    assert permissions(ADMIN) == Permissions(
        publish=(
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
        ),
        subscribe=("_INBOX.admin.>",),
    )
    assert permissions("observer") == Permissions(publish=(), subscribe=("_INBOX.observer.>", "evt.>"))
    assert permissions("observer").config() == {
        "publish": {"deny": [">"]},
        "subscribe": {"allow": ["_INBOX.observer.>", "evt.>"]},
    }
    with pytest.raises(KeyError, match="no bus identity 'traefik'"):
        permissions("traefik")


def test_the_operator_sends_the_liveness_probe_and_reads_what_the_catalogue_names_it_for():
    operator = permissions("operator")
    sent = [s for s in operator.publish if not s.startswith(("$JS.", "_INBOX", "dlq."))]
    assert sent == ["cmd.system.ping"]
    assert [s for s in operator.publish if s.startswith("$JS.API.CONSUMER.CREATE")] == [
        "$JS.API.CONSUMER.CREATE.BERTH_EVT.operator--evt_backup_started.evt.backup.started",
        "$JS.API.CONSUMER.CREATE.BERTH_EVT.operator--evt_bus_dead_lettered.evt.bus.dead_lettered",
        "$JS.API.CONSUMER.CREATE.BERTH_EVT.operator--evt_schedule_fired.evt.schedule.fired",
        "$JS.API.CONSUMER.CREATE.BERTH_EVT.operator--evt_system_pinged.evt.system.pinged",
    ]
    assert operator.subscribe == ("_INBOX.operator.>",)


def test_on_the_real_catalogue_a_service_sends_only_its_own_messages():
    for service in SERVICES:
        allowed = set(permissions(service).publish)
        for type_, model in REGISTRY.items():
            if model.KIND not in ("command", "event") or type_ == LogLine.TYPE:
                continue
            assert (type_ in allowed) == (service in model.PRODUCERS), (service, type_)
        # no wildcard over messages, no stream deletion or purge, no other service's subscriptions
        assert not {"cmd.>", "evt.>", ">", "$JS.API.>"} & allowed
        assert not [s for s in allowed if ".DELETE." in s and not s.startswith("$JS.API.CONSUMER.DELETE.BERTH_LOG")]
        assert not [s for s in allowed if "PURGE" in s or "UPDATE" in s]
        subscribe = permissions(service).subscribe
        assert subscribe[0] == f"_INBOX.{service}.>"
        assert all(s.startswith(f"rpc.{service}.") for s in subscribe[1:])
    assert "cmd.deployment.start" in permissions("api").publish
    assert "cmd.deployment.start" not in permissions("notifier").publish


def test_the_servers_authorization_has_one_user_per_identity_and_no_anonymous_user():
    assert IDENTITIES == (
        *("api", "builder", "scheduler", "proxy-sync", "metrics", "notifier"),
        *("operator", "observer", "admin"),
    )
    block = authorization({i: f"pw-{i}" for i in IDENTITIES})
    assert [(u["user"], u["password"]) for u in block["users"]] == [(i, f"pw-{i}") for i in sorted(IDENTITIES)]
    assert block["users"][0]["permissions"] == permissions("admin").config()
    assert set(block) == {"users"}  # no no_auth_user
