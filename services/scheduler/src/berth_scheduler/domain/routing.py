"""The upstream set of each route at each step of a rollout, and how to put routes back on failure.

Step 1 adds the new replicas next to the old ones (routes that had no old version get the new ones
only); step 2 takes the old ones out and removes the routes of web services the new version no longer
has. A failure restores every touched route to exactly what it was (same hosts, same upstreams in the
same order), so the proxy renders the same bytes as before.

A route lives on one server's Traefik: a route is (server id, route id), and an application's route on
several servers is planned as one route per server (``key``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

LOCAL = "local"
RouteKey = tuple[str, str]  # (server id, route id)


def _server_json(server_id: str) -> dict[str, Any]:
    return {} if server_id == LOCAL else {"server_id": server_id}


@dataclass(frozen=True)
class RouteTarget:
    """A route's confirmed (or desired) state."""

    route_id: str
    hosts: tuple[str, ...]
    upstreams: tuple[str, ...]
    server_id: str = LOCAL

    @property
    def key(self) -> RouteKey:
        return (self.server_id, self.route_id)

    def to_json(self) -> dict[str, Any]:
        return {
            "route_id": self.route_id,
            "hosts": list(self.hosts),
            "upstreams": list(self.upstreams),
            **_server_json(self.server_id),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RouteTarget:
        server = str(data.get("server_id", LOCAL))
        return cls(str(data["route_id"]), tuple(data["hosts"]), tuple(data["upstreams"]), server)


@dataclass(frozen=True)
class RouteOp:
    """One command to proxy-sync: set a route (``apply``) or stop routing it (``remove``)."""

    kind: Literal["apply", "remove"]
    route_id: str
    hosts: tuple[str, ...] = ()
    upstreams: tuple[str, ...] = ()
    server_id: str = LOCAL

    @property
    def key(self) -> RouteKey:
        return (self.server_id, self.route_id)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "route_id": self.route_id,
            "hosts": list(self.hosts),
            "upstreams": list(self.upstreams),
            **_server_json(self.server_id),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RouteOp:
        kind = data["kind"]
        if kind not in ("apply", "remove"):
            raise ValueError(f"unknown route op {kind!r}")
        server = str(data.get("server_id", LOCAL))
        return cls(kind, str(data["route_id"]), tuple(data["hosts"]), tuple(data["upstreams"]), server)


@dataclass(frozen=True)
class RoutePlan:
    before: tuple[RouteTarget, ...]
    steps: tuple[tuple[RouteOp, ...], ...]

    @property
    def has_old_upstreams(self) -> bool:
        """Whether traffic went to a previous version (then there is something to drain)."""
        return any(t.upstreams for t in self.before)

    def to_json(self) -> dict[str, Any]:
        return {
            "before": [t.to_json() for t in self.before],
            "steps": [[op.to_json() for op in step] for step in self.steps],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RoutePlan:
        return cls(
            tuple(RouteTarget.from_json(t) for t in data["before"]),
            tuple(tuple(RouteOp.from_json(op) for op in step) for step in data["steps"]),
        )


def _order(t: RouteTarget) -> tuple[str, str]:
    """Routes in the order of their ids, then of their servers (one server: the order of the ids)."""
    return (t.route_id, t.server_id)


def _flip(key: RouteKey) -> tuple[str, str]:
    return (key[1], key[0])


def _merge(old: Iterable[str], new: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for u in (*old, *new):
        seen.setdefault(u, None)
    return tuple(seen)


def plan_routes(before: Iterable[RouteTarget], desired: Iterable[RouteTarget]) -> RoutePlan:
    """Steps from the application's current routes (``before``) to ``desired`` (the new version's)."""
    before_t = tuple(sorted(before, key=_order))
    old = {t.key: t for t in before_t if t.upstreams}
    desired_t = sorted(desired, key=_order)
    ids = [t.key for t in desired_t]
    if len(set(ids)) != len(ids):
        raise ValueError("a route id appears twice on one server in the new version")
    step1: list[RouteOp] = []
    step2: list[RouteOp] = []
    for target in desired_t:
        if not target.hosts or not target.upstreams:
            continue  # a web service without hosts is not routed
        prev = old.get(target.key)
        sid = target.server_id
        if prev is None:
            step1.append(RouteOp("apply", target.route_id, target.hosts, target.upstreams, sid))
            continue
        step1.append(RouteOp("apply", target.route_id, target.hosts, _merge(prev.upstreams, target.upstreams), sid))
        step2.append(RouteOp("apply", target.route_id, target.hosts, target.upstreams, sid))
    routed = {op.key for op in step1}
    step2 += [RouteOp("remove", rid, server_id=sid) for sid, rid in sorted(old, key=_flip) if (sid, rid) not in routed]
    steps = tuple(tuple(s) for s in (step1, step2) if s)
    return RoutePlan(before=before_t, steps=steps)


def restore_ops(plan: RoutePlan, touched: Iterable[RouteKey | str]) -> tuple[RouteOp, ...]:
    """What puts every touched route (server id, route id; a bare route id: on ``local``) back as it was
    before the rollout."""
    old = {t.key: t for t in plan.before if t.upstreams}
    keys = {(LOCAL, k) if isinstance(k, str) else k for k in touched}
    ops = []
    for sid, rid in sorted(keys, key=_flip):
        prev = old.get((sid, rid))
        ops.append(
            RouteOp("apply", rid, prev.hosts, prev.upstreams, sid) if prev else RouteOp("remove", rid, server_id=sid)
        )
    return tuple(ops)


def left_behind(ops: Iterable[RouteOp], gone: Iterable[str]) -> tuple[tuple[RouteOp, ...], tuple[RouteOp, ...]]:
    """(the ops sent, the ops skipped) of a route step: the removals of routes on the servers ``gone`` (left
    by the deployment, and not answering: their Traefik cannot be reached) are skipped, so a dead server's
    cleanup does not hold up the move of its applications; everything else is sent."""
    dead = set(gone) - {LOCAL}
    sent = tuple(op for op in ops if not (op.kind == "remove" and op.server_id in dead))
    skipped = tuple(op for op in ops if op.kind == "remove" and op.server_id in dead)
    return sent, skipped


def skipped_note(skipped: Iterable[RouteOp]) -> str:
    """The deployment log's note of the removals ``left_behind`` skipped ("" when none)."""
    by_server: dict[str, list[str]] = {}
    for op in skipped:
        by_server.setdefault(op.server_id, []).append(op.route_id)
    return "; ".join(
        f"server {server} does not answer: route(s) {', '.join(ids)} there not removed (its cleanup is skipped)"
        for server, ids in sorted(by_server.items())
    )
