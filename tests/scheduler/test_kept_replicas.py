"""A deployment that changes only the placement keeps the replicas that stay where they are, as exact data
(``domain/kept_replicas.py``); end to end with two test servers in tests/servers/test_drain_moves.py."""

from __future__ import annotations

from typing import Any

from berth_common.catalogue import ApplicationSpec
from berth_scheduler.domain.kept_replicas import LiveReplica, kept_in_place, placement_only


def _spec(*services: dict[str, Any], env: list[dict[str, Any]] | None = None) -> ApplicationSpec:
    return ApplicationSpec.model_validate(
        {"name": "shop", "source": {"kind": "image", "image": "x:1"}, "services": list(services), "env": env or []}
    )


def _web(servers: list[str], replicas: int = 1, **more: Any) -> dict[str, Any]:
    return {"kind": "web", "name": "web", "port": 80, "servers": servers, "replicas": replicas, **more}


def _worker(servers: list[str]) -> dict[str, Any]:
    return {"kind": "worker", "name": "jobs", "command": ["run"], "servers": servers}


def _live(service: str, *placed: str) -> list[LiveReplica]:
    return [LiveReplica(service, n, server, f"{service}-{n}-{server}") for n, server in enumerate(placed, start=1)]


def test_a_server_replaced_keeps_the_replica_on_the_server_that_stays():
    before, after = _spec(_web(["a", "c"], 2)), _spec(_web(["b", "c"], 2))
    running = _live("web", "a", "c")
    assert placement_only(before, "x:1", after, "x:1", running)
    assert kept_in_place(before, "x:1", after, "x:1", running) == {("web", 2): LiveReplica("web", 2, "c", "web-2-c")}
    # four replicas: those on c (2 and 4) are kept, a's (1 and 3) replaced by b's
    before, after = _spec(_web(["a", "c"], 4)), _spec(_web(["b", "c"], 4))
    assert sorted(kept_in_place(before, "x:1", after, "x:1", _live("web", "a", "c", "a", "c"))) == [
        ("web", 2),
        ("web", 4),
    ]
    # a worker whose placement did not change is kept whole with it
    before, after = _spec(_web(["a", "c"], 2), _worker(["c"])), _spec(_web(["b", "c"], 2), _worker(["c"]))
    got = kept_in_place(before, "x:1", after, "x:1", [*running, *_live("jobs", "c")])
    assert got == {("web", 2): running[1], ("jobs", 1): LiveReplica("jobs", 1, "c", "jobs-1-c")}
    # a slot the new deployment already recorded (its kept replica was found stopped) is made again
    assert kept_in_place(before, "x:1", after, "x:1", running, {("web", 2)}) == {}


def test_nothing_is_kept_when_the_version_changes_or_the_placement_does_not():
    before, after = _spec(_web(["a", "c"], 2)), _spec(_web(["b", "c"], 2))
    running = _live("web", "a", "c")
    assert kept_in_place(before, "x:1", after, "x:2", running) == {}  # another image
    # the same tag, pulled again: another digest is another version; the same one (or none known yet) is not
    assert kept_in_place(before, "x:1", after, "x:1", running, (), ("sha256:1", "sha256:2")) == {}
    assert len(kept_in_place(before, "x:1", after, "x:1", running, (), ("sha256:1", "sha256:1"))) == 1
    assert len(kept_in_place(before, "x:1", after, "x:1", running, (), ("sha256:1", None))) == 1
    changed = _spec(_web(["b", "c"], 2), env=[{"name": "MODE", "value": "fast"}])
    assert not placement_only(before, "x:1", changed, "x:1", running)  # another environment
    assert kept_in_place(before, "x:1", changed, "x:1", running) == {}
    other = _spec(_web(["b", "c"], 2, health_path="/up"))
    assert kept_in_place(before, "x:1", other, "x:1", running) == {}  # another service definition
    assert kept_in_place(before, "x:1", before, "x:1", running) == {}  # a redeploy replaces every replica
    # a secret compared by its value, whatever its sealing
    secret = [{"name": "TOKEN", "value": "s3cret", "secret": True}]
    assert placement_only(
        _spec(_web(["a"]), env=secret), "x:1", _spec(_web(["b"]), env=secret), "x:1", _live("web", "a")
    )
    # scaled to four since the live deployment (its records, not its spec): four again is a redeploy
    scaled = _live("web", "a", "c", "a", "c")
    assert kept_in_place(before, "x:1", _spec(_web(["a", "c"], 4)), "x:1", scaled) == {}
    assert len(kept_in_place(before, "x:1", _spec(_web(["a", "c"], 3)), "x:1", scaled)) == 3  # one fewer


def test_the_replicas_on_a_server_that_stays_take_its_new_slots_in_order():
    # [a, b, c] -> [a, c]: a's replica stays number 1; c's (number 3) becomes number 2; b's is gone
    before, after = _spec(_web(["a", "b", "c"], 3)), _spec(_web(["a", "c"], 2))
    running = _live("web", "a", "b", "c")
    assert kept_in_place(before, "x:1", after, "x:1", running) == {("web", 1): running[0], ("web", 2): running[2]}
    # six replicas on [a, b, c] -> four on [a, c]: each server's replicas in order take its new slots
    before, after = _spec(_web(["a", "b", "c"], 6)), _spec(_web(["a", "c"], 4))
    running = _live("web", "a", "b", "c", "a", "b", "c")
    got = {slot: c.name for slot, c in kept_in_place(before, "x:1", after, "x:1", running).items()}
    assert got == {("web", 1): "web-1-a", ("web", 3): "web-4-a", ("web", 2): "web-3-c", ("web", 4): "web-6-c"}
    # a recorded slot is left out, the others keep their pairs (the same decision when a step is repeated)
    got = {slot: c.name for slot, c in kept_in_place(before, "x:1", after, "x:1", running, {("web", 2)}).items()}
    assert got == {("web", 1): "web-1-a", ("web", 3): "web-4-a", ("web", 4): "web-6-c"}
    # one replica more on the same servers: the running ones are kept, the new one starts
    before, after = _spec(_web(["a", "c"], 2)), _spec(_web(["a", "c"], 3))
    assert sorted(kept_in_place(before, "x:1", after, "x:1", _live("web", "a", "c"))) == [("web", 1), ("web", 2)]
    # [a, c] -> [c, a]: each server keeps its replica under the number it now has
    got = {slot: c.name for slot, c in kept_in_place(before, "x:1", _spec(_web(["c", "a"], 2)), "x:1",
                                                     _live("web", "a", "c")).items()}  # fmt: skip
    assert got == {("web", 1): "web-2-c", ("web", 2): "web-1-a"}
