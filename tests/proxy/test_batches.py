"""Which waiting route commands go into a batch (``domain/batches.py``), by exact comparison."""

from __future__ import annotations

from dataclasses import dataclass

from berth_proxy_sync.domain.batches import claim_conflicts, lock_keys, next_batch, stale_reason, waits_for_batch


@dataclass(frozen=True)
class C:
    name: str
    route_id: str
    generation: int = 1
    hosts: tuple[str, ...] = ()
    valid: bool = True


def names(items: list[C]) -> list[str]:
    return [c.name for c in items]


def test_one_change_per_route_the_newest_with_the_older_riding_along():
    waiting = [C("a1", "a", 1), C("b1", "b", 1), C("a3", "a", 3), C("a2", "a", 2), C("b0", "b", 0)]
    batch = next_batch(waiting, 10)
    assert names(batch.changes) == ["a3", "b1"]
    assert {k: names(v) for k, v in batch.riders.items()} == {"a": ["a1", "a2"], "b": ["b0"]}
    assert batch.left == []


def test_the_same_generation_twice_waits_and_so_does_what_follows_on_that_route():
    waiting = [C("a1", "a", 1), C("a1bis", "a", 1), C("a2", "a", 2), C("b1", "b", 1)]
    batch = next_batch(waiting, 10)
    assert names(batch.changes) == ["a1", "b1"]
    assert names(batch.left) == ["a1bis", "a2"]  # in arrival order: the route's commands stay in order
    assert batch.riders == {}


def test_a_host_goes_to_the_route_that_asked_first():
    waiting = [
        C("a", "a", hosts=("h.x",)),
        C("b", "b", hosts=("h.x", "k.x")),  # h.x is a's: waits
        C("c", "c", hosts=("k.x",)),  # k.x is wanted by b, which waits: c waits behind it
        C("a2", "a", 2, hosts=("h.x", "k.x")),  # a newer a may not take k.x either
        C("d", "d", hosts=("m.x",)),
    ]
    batch = next_batch(waiting, 10)
    assert names(batch.changes) == ["a", "d"]
    assert names(batch.left) == ["b", "c", "a2"]


def test_invalid_commands_always_go_and_the_limit_counts_route_changes():
    waiting = [C("a", "a"), C("bad", "a", valid=False), C("b", "b"), C("c", "c"), C("a0", "a", 0)]
    batch = next_batch(waiting, 2)
    assert names(batch.changes) == ["bad", "a", "b"]
    assert names(batch.left) == ["c"]
    assert names(batch.riders["a"]) == ["a0"]


def test_keys_conflicts_and_staleness():
    assert lock_keys("r", ["b.x", "a.x", "a.x"]) == ["berth-route:r", "berth-host:a.x", "berth-host:b.x"]
    # a route on another server has its own key (the route id alone on the local one); a host's is the same
    assert lock_keys("r", ["a.x"], "srv1") == ["berth-route:srv1/r", "berth-host:a.x"]
    assert lock_keys("r", (), "local") == ["berth-route:r"]
    owners = {"a.x": "r", "b.x": "other", "c.x": "third"}
    assert claim_conflicts("r", ["a.x", "b.x", "d.x"], owners) == {"b.x": "other"}
    assert waits_for_batch({"b.x": "other"}, {"other", "x"}) is True
    assert waits_for_batch({"b.x": "other"}, {"x"}) is False
    assert stale_reason(3, 4) == "stale: generation 3 is older than the route's 4"
    assert stale_reason(4, 4) is None and stale_reason(0, None) is None
