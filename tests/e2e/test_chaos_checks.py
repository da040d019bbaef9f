"""The chaos suite's own parts, without a platform: its plan replays from a seed, and each invariant it
checks after the storm does report the violation it names (a check that cannot fail proves nothing)."""

from __future__ import annotations

import random

from benchmarks.support import chaos_checks as checks
from benchmarks.support.chaos_storm import INFRA, SERVICES, plan
from berth_proxy_sync.domain.routes import SENTINEL_FILE, Route, render

LIVE, OLD = "d" * 32, "e" * 32


def _app(live: str | None = LIVE, replicas: int = 1) -> dict:
    return {
        "id": "a" * 32,
        "name": "shop",
        "services": [{"name": "web", "replicas": replicas, "hosts": ["web-shop-production.localhost"]}],
        "live": {"deployment_id": live} if live else None,
        "runtime": {"available": True, "live_deployment_id": live, "replicas": []},
    }


def _container(name: str, deployment: str = LIVE, state: str = "running", port: int = 40001) -> checks.Container:
    return checks.Container("id-" + name, name, state, "a" * 32, "web", deployment, f"127.0.0.1:{port}->8080/tcp")


def _dep(n: int, status: str = "succeeded", reason: str | None = None) -> dict:
    return {"id": f"{n:032d}", "number": n, "status": status, "state": status, "step": "x", "reason": reason}


def test_the_plan_replays_from_its_seed_and_strikes_every_infra_component_once():
    first, again = plan(random.Random(7), 10), plan(random.Random(7), 10)
    assert first == again and first != plan(random.Random(8), 10)
    flat = [t for blow in first for t in blow]
    assert sorted(t for t in flat if t in INFRA) == sorted(INFRA)
    assert len([t for t in flat if t in SERVICES]) == 10 and {"scheduler", "builder"} <= set(flat)
    assert all(len(set(blow)) == len(blow) <= 2 for blow in first)


def test_a_healthy_application_has_no_findings():
    f = checks.Findings()
    app = _app()
    app["runtime"]["replicas"] = [{"container": "c1", "state": "running"}]
    checks.check_app(app, [_dep(1), _dep(2, "failed", "build failed: exit 1")], [_container("c1")], f)
    assert f.problems() == {} and f.checked["deployments"] == 2 and f.checked["containers"] == 1


def test_stuck_reasonless_two_versions_leftovers_and_a_wrong_api_view_are_reported():
    f = checks.Findings()
    running = [_container("c1"), _container("c2", OLD, port=40002), _container("c3", OLD, state="exited")]
    deployments = [_dep(1), _dep(2, "in_progress"), _dep(3, "failed", " ")]
    checks.check_app(_app(), deployments, running, f)
    assert len(f.stuck) == 1 and "#2" in f.stuck[0]
    assert len(f.no_reason) == 1 and "#3" in f.no_reason[0]
    assert any("2 versions" in d for d in f.duplicates) and any("2 replicas" in d for d in f.duplicates)
    assert len(f.orphans) == 2  # the old version's running container and the exited one
    assert any("Docker runs" in m for m in f.api_mismatches)  # the API listed none of them


def test_routes_must_be_an_applications_live_replicas(tmp_path):
    route = Route.create("r" * 32, ["web-shop-production.localhost"], ["http://127.0.0.1:40001"])
    stray = Route.create("s" * 32, ["nobody.localhost"], ["http://127.0.0.1:40009"])
    (tmp_path / route.file_name).write_text(render(route))
    (tmp_path / stray.file_name).write_text(render(stray))
    (tmp_path / SENTINEL_FILE).write_text("http: {}\n")
    files = checks.route_files(tmp_path)
    assert files[route.file_name] == ({"web-shop-production.localhost"}, {"http://127.0.0.1:40001"})
    assert SENTINEL_FILE not in files
    f = checks.Findings()
    checks.check_routes(files, [_app()], [_container("c1")], f)
    assert len(f.orphans) == 1 and "belongs to no application" in f.orphans[0]
    f = checks.Findings()
    checks.check_routes({route.file_name: files[route.file_name]}, [_app()], [_container("c1", port=40002)], f)
    assert len(f.orphans) == 1 and "sends to" in f.orphans[0]  # an upstream that is no live replica


def test_a_deployment_ended_twice_or_otherwise_than_the_api_says_is_reported():
    deployments = {"1": {"status": "succeeded"}, "2": {"status": "failed"}, "3": {"status": "succeeded"}}
    ends = {"1": [("succeeded", "x")], "2": [("succeeded", "y"), ("failed", "z")], "3": []}
    f = checks.Findings()
    checks.check_ends(deployments, ends, f)
    assert len(f.done_twice) == 1 and "deployment 2" in f.done_twice[0]
    assert len(f.end_mismatch) == 2  # 2: ended both ways; 3: no end on the bus
