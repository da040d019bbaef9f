"""The catalogue's ``PRODUCERS`` and ``CONSUMERS`` are the map of who sends and who receives what: these
read the code of every service (and of the cli) and fail where the two disagree (``catalogue_map`` says
how the code is read)."""

from __future__ import annotations

import ast
from dataclasses import replace

from berth_common.catalogue import PARTIES, SERVICES, consumed_by, served_by
from tests.common.catalogue_map import (
    NOT_SENT_YET,
    ROOT,
    SHARED,
    Entry,
    disagreements,
    entries,
    read_source,
    read_tree,
    usage,
)

# Services whose ``usecases/`` modules name, in their docstrings, every subject the service carries out.
USECASES_NAME_THEIR_SUBJECTS = SERVICES


def test_the_catalogue_agrees_with_the_code():
    table = entries()
    found = usage(table)
    assert "cmd.build.start" in found["builder"].receives and "cmd.build.start" in found["scheduler"].sends
    assert disagreements(table, found) == []


def test_every_party_is_known_and_every_service_has_code():
    assert set(SERVICES) == {p.name for p in (ROOT / "services").iterdir() if (p / "src").is_dir()}
    for e in entries().values():
        assert set(e.producers) | set(e.consumers) <= set(PARTIES), e.type


def test_a_wrong_table_fails():
    table = entries()

    def wrong(type_: str, **change: tuple[str, ...]) -> dict[str, Entry]:
        return {**table, type_: replace(table[type_], **change)}

    def problems(changed: dict[str, Entry]) -> list[str]:
        return disagreements(changed, usage(changed))

    assert problems(wrong("cmd.build.start", consumers=("metrics",))) == [
        "builder receives cmd.build.start, but it is not among its CONSUMERS ('metrics',)",
        "cmd.build.start names metrics among its CONSUMERS, but metrics never receives it",
    ]
    assert problems(wrong("evt.deployment.queued", producers=("scheduler",))) == [
        "api sends evt.deployment.queued, but it is not among its PRODUCERS ('scheduler',)",
        "evt.deployment.queued names scheduler among its PRODUCERS, but scheduler never sends it",
    ]
    # The notifier consumes what the real catalogue lists for it: a table that leaves it out disagrees.
    assert problems(wrong("evt.deployment.failed", consumers=("api",))) == [
        "notifier receives evt.deployment.failed, but it is not among its CONSUMERS ('api',)"
    ]
    assert problems(wrong("rpc.alert.list", consumers=("api",))) == [
        "rpc.alert.list names api among its CONSUMERS, but api never receives it",
        "metrics receives rpc.alert.list, but it is not among its CONSUMERS ('api',)",
        "metrics handles rpc.alert.list, but it is neither among its PRODUCERS nor CONSUMERS",
    ]
    assert problems(wrong("evt.route.applied", producers=("traefik",))) == [
        "evt.route.applied: 'traefik' is no party (known: " + ", ".join(PARTIES) + ")",
        "proxy-sync sends evt.route.applied, but it is not among its PRODUCERS ('traefik',)",
    ]
    # Each message the catalogue lists ahead of its producer is one disagreement without NOT_SENT_YET.
    assert disagreements(table, usage(table), not_sent_yet={}) == [
        f"{type_} names {party} among its PRODUCERS, but {party} never sends it"
        for type_, party in sorted(NOT_SENT_YET.items())
    ]
    # A message its producer sends now is a disagreement while NOT_SENT_YET still lists it.
    assert disagreements(table, usage(table), not_sent_yet={"evt.certificate.expiring": "proxy-sync"}) == [
        "proxy-sync sends evt.certificate.expiring now: take it out of NOT_SENT_YET"
    ]


SAMPLE = """
from berth_common import catalogue
from berth_common.catalogue import AlertList, ApplyRoutes as Apply, BuildFailed, MetricsQuery, RemoveRoute
from berth_common.catalogue import StartBuild

TABLE = ((RemoveRoute, "x"), (catalogue.RoutesApplied, "y"))
QUERIES = {"alert.list": 1}


async def register(bus, names):
    await bus.consume(Apply, handler)
    for model, _ in TABLE:
        await bus.consume(model, handler)
    for model in consumed_by("builder"):
        await bus.consume(model, handler)
    for name, h in QUERIES.items():
        await bus.serve(name, h)
    await bus.serve(AlertList.TYPE.removeprefix("rpc."), h)
    await unit.emit(BuildFailed(build_id="b"))
    await unit.emit(catalogue.BuildCancelled(build_id="b"))
    catalogue.LogLine.model_validate(data)
    machine.BuildSucceeded("an input of a state machine, not the event")
    delete_route(router, query=MetricsQuery, fields=FIELDS)
    def typed(x: StartBuild) -> BuildFailed: ...
    isinstance(x, StartBuild)
    await bus.consume("evt.build.>", handler)
    for name in names:
        await bus.serve(name, h)
"""


def test_the_reader_follows_tables_loops_and_lookups():
    uses = read_source(SAMPLE, "sample.py", entries())
    assert uses.receives == {"cmd.route.apply", "cmd.route.remove", "evt.route.applied", "rpc.alert.list"} | {
        "cmd.build.start",
        "cmd.build.cancel",
        "evt.server.changed",
    }
    assert uses.sends == {"evt.build.failed", "evt.build.cancelled"}
    assert uses.handles == {"evt.log.line", "cmd.route.remove", "evt.route.applied", "rpc.query"}
    assert uses.unreadable == [
        "sample.py:26: consume('evt.build.>') is no catalogue message",
        "sample.py:28: cannot tell what this serve() receives",
    ]


def test_usecases_name_the_subjects_they_carry_out():
    """The catalogue names a subject's consumer; that consumer's ``usecases/`` names the subject."""
    for service in USECASES_NAME_THEIR_SUBJECTS:
        package = ROOT / "services" / service / "src" / f"berth_{service.replace('-', '_')}" / "usecases"
        docs = " ".join(ast.get_docstring(ast.parse(p.read_text())) or "" for p in package.rglob("*.py"))
        subjects = [m.TYPE for m in consumed_by(service)]
        shared = read_tree(SHARED.rglob("*.py"), entries()).receives  # the runtime's health query
        subjects += [f"rpc.{service}.{m.TYPE.removeprefix('rpc.')}" for m in served_by(service) if m.TYPE not in shared]
        missing = [s for s in subjects if s not in docs]
        assert subjects and missing == [], f"{service}: no usecases module names {missing}"
