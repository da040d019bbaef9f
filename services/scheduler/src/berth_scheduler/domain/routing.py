"""The upstream set of each route at each step of a rollout, and how to put routes back on failure.

Step 1 adds the new replicas next to the old ones (routes that had no old version get the new ones
only); step 2 takes the old ones out and removes the routes of web services the new version no longer
has. A failure restores every touched route to exactly what it was (same hosts, same upstreams in the
same order), so the proxy renders the same bytes as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class RouteTarget:
    """A route's confirmed (or desired) state."""

    route_id: str
    hosts: tuple[str, ...]
    upstreams: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"route_id": self.route_id, "hosts": list(self.hosts), "upstreams": list(self.upstreams)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RouteTarget:
        return cls(str(data["route_id"]), tuple(data["hosts"]), tuple(data["upstreams"]))


@dataclass(frozen=True)
class RouteOp:
    """One command to proxy-sync: set a route (``apply``) or stop routing it (``remove``)."""

    kind: Literal["apply", "remove"]
    route_id: str
    hosts: tuple[str, ...] = ()
    upstreams: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "route_id": self.route_id,
            "hosts": list(self.hosts),
            "upstreams": list(self.upstreams),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RouteOp:
        kind = data["kind"]
        if kind not in ("apply", "remove"):
            raise ValueError(f"unknown route op {kind!r}")
        return cls(kind, str(data["route_id"]), tuple(data["hosts"]), tuple(data["upstreams"]))


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


def _merge(old: Iterable[str], new: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for u in (*old, *new):
        seen.setdefault(u, None)
    return tuple(seen)


def plan_routes(before: Iterable[RouteTarget], desired: Iterable[RouteTarget]) -> RoutePlan:
    """Steps from the application's current routes (``before``) to ``desired`` (the new version's)."""
    before_t = tuple(sorted(before, key=lambda t: t.route_id))
    old = {t.route_id: t for t in before_t if t.upstreams}
    desired_t = sorted(desired, key=lambda t: t.route_id)
    ids = [t.route_id for t in desired_t]
    if len(set(ids)) != len(ids):
        raise ValueError("a route id appears twice in the new version")
    step1: list[RouteOp] = []
    step2: list[RouteOp] = []
    for target in desired_t:
        if not target.hosts or not target.upstreams:
            continue  # a web service without hosts is not routed
        prev = old.get(target.route_id)
        if prev is None:
            step1.append(RouteOp("apply", target.route_id, target.hosts, target.upstreams))
            continue
        step1.append(RouteOp("apply", target.route_id, target.hosts, _merge(prev.upstreams, target.upstreams)))
        step2.append(RouteOp("apply", target.route_id, target.hosts, target.upstreams))
    routed = {op.route_id for op in step1}
    step2 += [RouteOp("remove", rid) for rid in sorted(old) if rid not in routed]
    steps = tuple(tuple(s) for s in (step1, step2) if s)
    return RoutePlan(before=before_t, steps=steps)


def restore_ops(plan: RoutePlan, touched: Iterable[str]) -> tuple[RouteOp, ...]:
    """What puts every touched route back as it was before the rollout."""
    old = {t.route_id: t for t in plan.before if t.upstreams}
    ops = []
    for rid in sorted(set(touched)):
        prev = old.get(rid)
        ops.append(RouteOp("apply", rid, prev.hosts, prev.upstreams) if prev else RouteOp("remove", rid))
    return tuple(ops)
