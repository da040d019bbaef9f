"""Volume data moving with its service, as exact data: which volumes a deployment moves and from where, the
helper containers and the Engine API calls of the copy, the test of a target holding files, and the
deployment's progress. The copy between two servers is tested end to end in tests/servers/test_volume_move.py."""

from __future__ import annotations

import io
import tarfile
from typing import Any

from berth_common.catalogue import ApplicationSpec
from berth_common.image_delivery import EngineCall
from berth_scheduler.domain import machine
from berth_scheduler.domain import volume_moves as dom
from berth_scheduler.domain.machine import Rollout, State, Timeouts
from berth_scheduler.domain.volume_moves import Move


def _spec(*services: dict[str, Any]) -> ApplicationSpec:
    return ApplicationSpec.model_validate(
        {"name": "shop", "source": {"kind": "image", "image": "x:1"}, "services": list(services)}
    )


def _web(servers: list[str], *volumes: str, name: str = "web") -> dict[str, Any]:
    vols = [{"name": v, "path": f"/{v}"} for v in volumes]
    return {"kind": "web", "name": name, "port": 80, "servers": servers, "volumes": vols}


def test_a_volume_moves_from_the_server_it_left_to_the_server_it_arrives_on():
    before = _spec(_web(["a"], "data"))
    assert dom.moves(before, _spec(_web(["b"], "data"))) == [Move("data", "a", "b", ("web",))]
    # a drained server among several: replaced where it stood, the one left is the source of the new one
    assert dom.moves(_spec(_web(["a", "c"], "data")), _spec(_web(["b", "c"], "data"))) == [
        Move("data", "a", "b", ("web",))
    ]
    # no other server: the control plane
    assert dom.moves(before, _spec(_web([], "data"))) == [Move("data", "a", "local", ("web",))]
    # two volumes, one of them shared by a worker: each moves once, with every service mounting it
    worker = {"kind": "worker", "name": "jobs", "servers": ["a"], "volumes": [{"name": "data", "path": "/d"}]}
    after = _spec(_web(["b"], "data", "cache"), {**worker, "servers": ["b"]})
    assert dom.moves(_spec(_web(["a"], "data", "cache"), worker), after) == [
        Move("data", "a", "b", ("web", "jobs")),
        Move("cache", "a", "b", ("web",)),
    ]
    assert dom.moved_services(dom.moves(_spec(_web(["a"], "data", "cache"), worker), after)) == ["web", "jobs"]


def test_nothing_moves_when_no_server_was_left_or_nothing_ran():
    assert dom.moves(None, _spec(_web(["b"], "data"))) == []  # a first deployment
    assert dom.moves(_spec(_web(["a"], "data")), _spec(_web(["a"], "data"))) == []  # a redeploy
    assert dom.moves(_spec(_web(["a"], "data")), _spec(_web(["a", "b"], "data"))) == []  # spread: b starts empty
    assert dom.moves(_spec(_web(["a", "b"], "data")), _spec(_web(["b"], "data"))) == []  # b keeps its own
    assert dom.moves(_spec(_web(["a"]), _web(["a"], name="api")), _spec(_web(["b"]), _web(["b"], name="api"))) == []
    # a volume only the new deployment has starts empty where it is made
    assert dom.moves(_spec(_web(["a"])), _spec(_web(["b"], "data"))) == []


def test_the_helpers_and_the_calls_of_the_copy_exactly():
    assert dom.helper_name("0123456789abcdef", "data", "source") == "berth-move-0123456789ab-data-source"
    assert dom.helper_body("app1", "dep1", "data", "sha256:abc", "source") == {
        "Image": "sha256:abc",
        "Cmd": ["berth-volume-move"],
        "Labels": {
            "berth.app": "app1",
            "berth.deployment": "dep1",
            "berth.managed": "true",
            "berth.volume-move": "source",
        },
        "HostConfig": {
            "NetworkMode": "none",
            "Mounts": [{"Type": "volume", "Source": "berth-app1-data", "Target": "/berth-volume", "ReadOnly": True}],
        },
    }
    target = dom.helper_body("app1", "dep1", "data", "shop:2", "target")
    assert target["HostConfig"]["Mounts"][0]["ReadOnly"] is False and target["Image"] == "shop:2"
    assert dom.read_call("h1") == EngineCall("GET", "/v1.41/containers/h1/archive", (("path", "/berth-volume"),))
    assert dom.write_call("h2") == EngineCall(
        "PUT", "/v1.41/containers/h2/archive", (("path", "/"), ("copyUIDGID", "1")), "application/x-tar"
    )


def _tar(*files: str) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        root = tarfile.TarInfo("berth-volume")
        root.type = tarfile.DIRTYPE
        tar.addfile(root)
        for name in files:
            info = tarfile.TarInfo(f"berth-volume/{name}")
            info.size = 3000
            tar.addfile(info, io.BytesIO(b"x" * 3000))
    return out.getvalue()


def test_a_target_volume_holds_files_when_its_tar_has_more_than_its_own_directory():
    assert dom.holds_files(_tar()) is False
    assert dom.holds_files(_tar("note.txt")) is True
    assert dom.holds_files(_tar("a", "b")[:1500]) is True  # a stream cut short: read as far as it goes
    assert dom.holds_files(b"") is False


def _rollout() -> Rollout:
    return Rollout(
        deployment_id="d1",
        application_id="a1",
        team_id="t1",
        state=State.STARTING,
        needs_build=False,
        timeouts=Timeouts(build_s=60, readiness_s=30, route_s=10, drain_grace_s=1),
        created_at=0.0,
        deadline_at=40.0,
    )


def test_a_move_is_expected_downtime_and_its_copy_restarts_the_readiness_deadline():
    r = _rollout()
    stopped, events = machine.transition(
        r, machine.OldStoppedForRecreate(("web",), 1, 1, "volume data moves to another server"), 10.0
    )
    assert events[0].step == "expected downtime"
    assert events[0].detail == (
        "volume data moves to another server: the old replica(s) of web left 1 route(s) and 1 stopped before the "
        "new ones start; expected downtime until the new version is routed"
    )
    kept = dom.kept_note([Move("data", "s-a", "s-b", ("web",))])
    moved, events = machine.transition(stopped, machine.VolumeMoved("data", "s-a", "s-b", 10240, 0.5, kept), 100.0)
    assert moved.deadline_at == 130.0 and moved.state == State.STARTING
    assert (events[0].step, events[0].detail) == (
        "volume data moved",
        "volume data: 10240 bytes copied from server s-a to server s-b in 0.50s; "
        "volume data stays on server s-a (volumes are never deleted implicitly)",
    )


def test_only_the_part_a_volume_leaves_stops_before_the_copy():
    # [a, c] -> [b, c]: the data leaves a; the replica on c goes on serving
    found = dom.moves(_spec(_web(["a", "c"], "data")), _spec(_web(["b", "c"], "data")))
    scope = dom.stopped_on(found, [])
    assert scope == {"web": frozenset({"a"})}
    assert [s for s in ("a", "b", "c") if dom.stops(scope, "web", s)] == ["a"]
    # strategy recreate stops a service everywhere, even when its data also moves
    assert dom.stopped_on(found, ["web"]) == {"web": None}
    assert dom.stops({"web": None}, "web", "c") and not dom.stops({"web": None}, "api", "c")
    # two volumes leaving two servers; a worker mounting one of them on a kept server stops nowhere it runs
    two = [Move("data", "a", "b", ("web", "jobs")), Move("cache", "d", "b", ("web",))]
    scope = dom.stopped_on(two, ["db"])
    assert scope == {"db": None, "web": frozenset({"a", "d"}), "jobs": frozenset({"a"})}
    assert not dom.stops(scope, "jobs", "c") and dom.stops(scope, "db", "c")
    assert dom.stopped_on([], []) == {}


def test_a_move_off_a_server_that_does_not_answer_names_each_volume_and_the_server():
    found = [Move("data", "a", "b", ("web",)), Move("cache", "a", "b", ("web",)), Move("logs", "c", "b", ("api",))]
    assert dom.unreachable_reason(found, ["a"], "app1") == (
        "server a does not answer: the data of its named volumes cannot be copied (volume data (berth-app1-data) "
        "from server a to server b; volume cache (berth-app1-cache) from server a to server b); bring the server "
        "back, or drain it again with abandon_volume_data to start these volumes empty"
    )
    assert dom.unreachable_reason(found, ["d"], "app1") == ""  # every source answers
    assert dom.unreachable_reason([], ["a"], "app1") == ""
    assert dom.abandoned_note(found[:1]) == (
        "volume data starts empty on server b (abandon_volume_data: its data on server a is not copied)"
    )


def test_the_copies_run_by_volume_and_say_their_progress_exactly():
    a_b, a_c = Move("data", "a", "b", ("web",)), Move("data", "a", "c", ("web",))
    cache = Move("cache", "a", "b", ("web",))
    # different volumes at once; one volume's moves (one helper on its source) one after the other
    assert dom.copy_groups([a_b, cache, a_c]) == [[a_b, a_c], [cache]]
    assert dom.copy_groups([]) == []
    sizes = [0, 1023, 1024, 1536, 32 << 20, (5 << 30) // 2, 3 << 40, 5000 << 40]
    assert [dom.size_text(n) for n in sizes] == [
        "0 B",
        "1023 B",
        "1.0 KiB",
        "1.5 KiB",
        "32.0 MiB",
        "2.50 GiB",
        "3.00 TiB",
        "5000.00 TiB",
    ]
    assert dom.progress_line(a_b, 48 << 20, 12.4) == (
        "[starting] volume data: 48.0 MiB copied so far from server a to server b (12s)"
    )
    assert dom.timeout_reason(a_b, 21600.0) == (
        "the data of volume data could not be copied from server a to server b: the copy did not finish within "
        "21600s (the scheduler's BERTH_VOLUME_MOVE_TIMEOUT_S)"
    )


def test_a_copy_says_its_progress_at_most_once_per_interval():
    pacer = dom.ProgressPacer(5.0, started=100.0)
    seen = [t for t in (100.0, 101.0, 104.9, 105.0, 105.1, 109.9, 110.2, 111.0, 130.0, 130.5) if pacer.due(t)]
    assert seen == [105.0, 110.2, 130.0]


def test_the_copy_settings_and_their_defaults():
    from berth_scheduler.settings import SchedulerSettings

    settings = SchedulerSettings(nats_url="nats://x", database_url="postgresql://x/y", secret_key="k" * 32)
    assert (settings.volume_move_concurrency, settings.volume_move_timeout_s, settings.volume_move_progress_s) == (
        2,
        6 * 3600.0,
        5.0,
    )
