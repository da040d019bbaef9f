"""The chaos suite's own parts, without a platform: its plan replays from a seed, the local engine's blow is
the run's restart of its own engine (started with nothing that touches the machine's), and each invariant it
checks after the storm does report the violation it names (a check that cannot fail proves nothing)."""

from __future__ import annotations

import asyncio
import random

from benchmarks.support import chaos_checks as checks
from benchmarks.support.chaos_storm import ENGINE, INFRA, SERVICES, Storm, plan
from berth_proxy_sync.domain.routes import SENTINEL_FILE, Route, render
from tests.support.private_engine import _proxies_to, dockerd_argv

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


async def test_the_engine_blow_is_the_run_s_restart_of_its_own_engine(tmp_path):
    restarted: list[str] = []

    def restart() -> tuple[float, int | None]:
        restarted.append("engine")
        return 1.25, 4242

    storm = Storm(tmp_path / "supervisor.json", [[ENGINE]], random.Random(1), (0.0, 0.0), engine_restart=restart)
    await storm.run(asyncio.Event())
    assert restarted == ["engine"] and storm.restarts == 1 and storm.kills == 0
    assert [(b.target, b.pid, b.back_after_s) for b in storm.done] == [(ENGINE, 4242, 1.25)]
    without = Storm(tmp_path / "supervisor.json", [[ENGINE]], random.Random(1), (0.0, 0.0))
    await without.run(asyncio.Event())  # a run without an engine of its own never restarts the machine's
    assert without.restarts == 0 and without.done[0].pid is None


def test_the_private_engine_touches_nothing_of_the_machine_s(tmp_path):
    assert dockerd_argv(tmp_path, "btb42") == [
        "dockerd",
        "--data-root",
        f"{tmp_path}/data",
        "--exec-root",
        f"{tmp_path}/exec",
        "--pidfile",
        f"{tmp_path}/docker.pid",
        "--config-file",
        f"{tmp_path}/daemon.json",
        "-H",
        f"unix://{tmp_path}/docker.sock",
        "--bridge",
        "btb42",
        "--iptables=false",
        "--ip-forward=false",
        "--ip-masq=false",
    ]
    proxy = ["/usr/sbin/docker-proxy", "-proto", "tcp", "-host-ip", "127.0.0.1", "-host-port", "40001"]
    assert _proxies_to([*proxy, "-container-ip", "10.77.42.2", "-container-port", "8080"], "10.77.42.")
    assert not _proxies_to([*proxy, "-container-ip", "172.17.0.2", "-container-port", "8080"], "10.77.42.")
    assert not _proxies_to([*proxy, "-container-ip"], "10.77.42.")


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


def test_a_problem_found_before_a_later_blow_still_counts_after_it():
    from benchmarks.chaos import merged

    before = checks.Findings()
    checks.check_app(_app(), [_dep(1)], [_container("old", deployment=OLD, state="exited")], before)
    assert before.orphans
    both = merged(before, checks.Findings())  # the checks after the later blow found nothing wrong
    assert both.problems() == before.problems()
    again = merged(before, merged(before, checks.Findings()))
    assert again.problems() == before.problems()  # each problem once
