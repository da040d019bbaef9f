"""The Swarm route follower never puts a route back on an older version: when a deployment starts and
succeeds while a pass probes the live version's tasks, the pass leaves the route to the newer version (its
rollout already set it), instead of pointing it at tasks that rollout drains and removes."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from berth_common.catalogue import WebService
from berth_scheduler.adapters.swarm_overlay import OverlayProbe
from berth_scheduler.usecases.rollout import swarm_follow
from berth_scheduler.usecases.rollout.swarm_follow import SwarmFollower


class _Session:
    async def __aenter__(self) -> _Session:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


class _Routes:
    def __init__(self) -> None:
        self.applied: list[list[str]] = []

    async def apply(self, server_id: str, route_id: str, hosts: Any, upstreams: list[str]) -> None:
        self.applied.append(upstreams)


def _follower(monkeypatch, finishes_meanwhile: bool) -> tuple[SwarmFollower, _Routes]:
    d1, d2 = SimpleNamespace(id="d1", spec="spec-1"), SimpleNamespace(id="d2", spec="spec-2")
    state = {"last": d1}
    routes = _Routes()
    overlays: list[Any] = []
    web = WebService(name="web", port=8080, hosts=["shop.test"])
    version = SimpleNamespace(route_id="r-web", hosts=["shop.test"], replica=SimpleNamespace(container_port=None))

    async def ready_tasks(_version: Any) -> list[Any]:
        if finishes_meanwhile:  # the next deployment starts, switches the route and succeeds during the probe
            state["last"] = d2
        return ["task"]

    rollout = SimpleNamespace(ready_tasks=ready_tasks, routes=routes)

    async def rollout_of(*args: Any) -> tuple[Any, Any]:
        overlays.append(args[-1])  # the overlay probe the pass checks unreached nodes' tasks through
        return rollout, version

    async def places_of(*_: Any) -> dict[str, Any]:
        return {"web": SimpleNamespace(manager_server_id="mgr", network="berth")}

    async def last_succeeded(_s: Any, _app: str) -> Any:
        return state["last"]

    async def unfinished(_s: Any) -> set[str]:
        return set()

    async def inactive(_s: Any, _app: str) -> bool:
        return False

    monkeypatch.setattr(swarm_follow, "places_of", places_of)
    monkeypatch.setattr(swarm_follow.store, "rollout_of", lambda row: SimpleNamespace(application_id="app"))
    monkeypatch.setattr(swarm_follow.store, "last_succeeded", last_succeeded)
    monkeypatch.setattr(swarm_follow.store, "unfinished_applications", unfinished)
    monkeypatch.setattr(swarm_follow.removals, "is_active", inactive)
    monkeypatch.setattr(swarm_follow.dom, "upstreams", lambda tasks, port: [f"10.0.0.{len(tasks)}:{port}"])
    rt = SimpleNamespace(
        sessionmaker=_Session, sealer=SimpleNamespace(open=lambda spec: SimpleNamespace(services=[web]))
    )
    follower = SwarmFollower(rt=rt, starting=SimpleNamespace(rollout_of=rollout_of), leading=lambda: True)  # type: ignore[arg-type]

    async def live() -> list[tuple[str, object]]:
        return [("app", d1)]

    follower.live_on_swarms = live  # type: ignore[method-assign]
    follower.seen_overlays = overlays  # type: ignore[attr-defined]
    return follower, routes


async def test_a_pass_sets_the_live_versions_route_to_its_ready_tasks(monkeypatch) -> None:
    follower, routes = _follower(monkeypatch, finishes_meanwhile=False)
    await follower.tick()
    assert routes.applied == [["10.0.0.1:8080"]]


async def test_a_pass_leaves_the_route_when_a_newer_version_succeeded_while_it_probed(monkeypatch) -> None:
    follower, routes = _follower(monkeypatch, finishes_meanwhile=True)
    await follower.tick()
    assert routes.applied == []


async def test_every_pass_checks_through_the_same_overlay_probe(monkeypatch) -> None:
    """The follower keeps one overlay probe per manager and overlay network from pass to pass, so its relay
    (one exec on the manager) serves every pass instead of each pass starting one of its own."""
    follower, _ = _follower(monkeypatch, finishes_meanwhile=False)
    for _ in range(3):
        await follower.tick()
    seen = follower.seen_overlays  # type: ignore[attr-defined]
    assert len(seen) == 3 and isinstance(seen[0], OverlayProbe) and all(o is seen[0] for o in seen)
    assert seen[0].name == "berth-probe-berth"
    assert list(follower.overlays) == [("mgr", "berth")]


async def test_an_application_that_fails_leaves_the_others_followed_in_the_same_pass(monkeypatch) -> None:
    """An application whose Swarm service was removed outside Berth (its look raises) is left for the next
    pass; the applications after it still get their routes set in this one."""
    follower, routes = _follower(monkeypatch, finishes_meanwhile=False)
    gone, live = SimpleNamespace(id="d0", spec="gone"), SimpleNamespace(id="d1", spec="spec-1")
    ok_places = swarm_follow.places_of

    async def places_of(rt: Any, r: Any, spec: Any) -> dict[str, Any]:
        if spec.gone:
            raise LookupError("no such service: berth-gone-web")
        return await ok_places(rt, r, spec)

    monkeypatch.setattr(swarm_follow, "places_of", places_of)
    follower.rt.sealer = SimpleNamespace(  # type: ignore[attr-defined]
        open=lambda spec: SimpleNamespace(
            services=[WebService(name="web", port=8080, hosts=["shop.test"])], gone=spec == "gone"
        )
    )

    async def lives() -> list[tuple[str, object]]:
        return [("gone", gone), ("app", live)]

    follower.live_on_swarms = lives  # type: ignore[method-assign]
    await follower.tick()
    assert routes.applied == [["10.0.0.1:8080"]]
