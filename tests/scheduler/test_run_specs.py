"""A one-off run's container is data: the exact create body, compared whole, and the runner's decisions
after a restart (``domain/runs.py``)."""

from __future__ import annotations

import pytest

from berth_scheduler.domain import runs
from berth_scheduler.domain.containers import container_spec
from berth_scheduler.domain.runs import Step, next_step, outcome, run_spec
from tests.scheduler.test_container_specs import DEP, app_spec

LOG_CONFIG = {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}}


def test_a_run_of_a_web_service_publishes_nothing_and_runs_the_command():
    spec = app_spec()
    cs = run_spec("r-123", "app-1", "team-1", DEP, spec, spec.services[0], "berth/shop:v1", ["rake", "db:migrate"])
    assert cs.name == "berth-run-r-123"
    assert cs.kind == "run"
    assert (cs.container_port, cs.host_port, cs.health_path, cs.health_command, cs.upstream) == (
        None,
        None,
        None,
        None,
        None,
    )
    assert cs.connects == ()
    assert cs.body == {
        "Image": "berth/shop:v1",
        "Cmd": ["rake", "db:migrate"],
        "Env": ["MODE=prod", "DB_PASSWORD=hunter2", "PORT=8080"],
        "Labels": {
            "berth.team": "team-1",
            "berth.app": "app-1",
            "berth.kind": "run",
            "berth.run": "r-123",
            "berth.managed": "true",
        },
        "StopTimeout": 7,
        "HostConfig": {
            "RestartPolicy": {"Name": "no"},
            "Init": True,
            "LogConfig": LOG_CONFIG,
            "NanoCpus": 500_000_000,
            "Memory": 256 * 1024 * 1024,
        },
    }


def test_a_run_of_a_worker_replaces_its_command_keeps_its_healthless_body_and_networks_without_aliases():
    spec = app_spec(network="berth-shop", restart_policy="on-failure", limits={})
    cs = run_spec("r-9", "app-1", "team-1", DEP, spec, spec.services[1], "berth/shop:v1", ["sh", "-c", "echo $MODE"])
    assert cs.body == {
        "Image": "berth/shop:v1",
        "Cmd": ["sh", "-c", "echo $MODE"],
        "Env": ["MODE=prod", "DB_PASSWORD=hunter2"],
        "Labels": {
            "berth.team": "team-1",
            "berth.app": "app-1",
            "berth.kind": "run",
            "berth.run": "r-9",
            "berth.managed": "true",
        },
        "StopTimeout": 7,
        "HostConfig": {"RestartPolicy": {"Name": "no"}, "Init": True, "LogConfig": LOG_CONFIG},
        "NetworkingConfig": {"EndpointsConfig": {"berth-shop": {}}},
    }


def test_a_run_on_a_remote_server_joins_its_networks_under_no_name():
    spec = app_spec(private_network=True, limits={})
    cs = run_spec("r-7", "app-1", "team-1", DEP, spec, spec.services[0], "img:1", ["true"], server_id="srv-2")
    assert cs.server_id == "srv-2"
    assert cs.body["NetworkingConfig"] == {"EndpointsConfig": {"berth-app-app-1": {}}}
    assert cs.connects == (("berth", ()),)
    assert "ExposedPorts" not in cs.body and "PortBindings" not in cs.body["HostConfig"]


def test_a_compose_service_keeps_its_entrypoint_user_and_mounts_but_not_its_healthcheck():
    spec = app_spec(
        services=[
            {
                "kind": "worker",
                "name": "db",
                "image": {"image": "postgres:16"},
                "entrypoint": ["docker-entrypoint.sh"],
                "user": "999",
                "working_dir": "/srv",
                "healthcheck": {"test": ["pg_isready"]},
                "volumes": [{"name": "data", "path": "/var/lib/postgresql/data"}],
            }
        ],
        limits={},
    )
    cs = run_spec("r-1", "app-1", "team-1", DEP, spec, spec.services[0], "unused:1", ["psql", "-c", "select 1"])
    assert cs.body["Image"] == "postgres:16"
    assert cs.body["Entrypoint"] == ["docker-entrypoint.sh"]
    assert (cs.body["User"], cs.body["WorkingDir"]) == ("999", "/srv")
    assert "Healthcheck" not in cs.body
    assert [m["Target"] for m in cs.body["HostConfig"]["Mounts"]] == ["/var/lib/postgresql/data"]


def test_a_runs_container_is_told_from_a_replica_by_its_labels():
    spec = app_spec()
    cs = run_spec("r-1", "app-1", "team-1", DEP, spec, spec.services[0], "img:1", ["true"])
    assert runs.one_off(cs.body["Labels"])
    assert not runs.one_off(container_spec("app-1", DEP, spec, spec.services[0], 1, "img:1", 4000).body["Labels"])


def test_the_container_name_follows_from_the_run_id():
    assert runs.container_name("01HX-abc_d.e") == "berth-run-01HX-abc_d.e"
    assert runs.container_name("a/b c") == "berth-run-a-b-c"


@pytest.mark.parametrize(
    ("status", "info", "step"),
    [
        ("queued", None, Step.CREATE),
        ("running", None, Step.LOST),
        ("queued", {"State": {"Status": "created"}}, Step.START),
        ("running", {"State": {"Status": "created"}}, Step.LOST),
        ("queued", {"State": {"Status": "running", "Running": True}}, Step.WAIT),
        ("running", {"State": {"Status": "running", "Running": True}}, Step.WAIT),
        ("running", {"State": {"Status": "exited", "ExitCode": 3}}, Step.RECORD),
        ("queued", {"State": {"Status": "exited", "ExitCode": 0}}, Step.RECORD),
    ],
)
def test_what_the_runner_does_after_a_restart(status, info, step):
    assert next_step(status, info) is step


def test_outcomes():
    lines = [f"line {i}" for i in range(30)]
    ok = outcome({"State": {"ExitCode": 0}}, lines)
    assert (ok.status, ok.exit_code, ok.reason) == ("succeeded", 0, "")
    assert ok.last_lines == tuple(f"line {i}" for i in range(10, 30))
    bad = outcome({"State": {"ExitCode": 3}}, ["boom"])
    assert (bad.status, bad.exit_code, bad.reason, bad.last_lines) == ("failed", 3, "exited with code 3", ("boom",))
    late = outcome({"State": {"ExitCode": 137}}, [], timed_out_after=2)
    assert (late.status, late.exit_code, late.reason) == ("timed_out", 137, "timed out after 2 s (killed)")
    oom = outcome({"State": {"ExitCode": 137, "OOMKilled": True}}, [])
    assert oom.reason == "exited with code 137, killed for exceeding its memory limit"
    said = outcome({"State": {"ExitCode": 1, "Error": "exec format error"}}, [])
    assert (said.status, said.reason) == ("failed", "exited with code 1: exec format error")


def test_a_run_the_engine_could_not_start_is_told_with_its_error_and_exit_code():
    state = {"State": {"Status": "created", "ExitCode": 127, "Error": 'exec: "nope": executable file not found'}}
    assert runs.not_started(state, "start failed (400)") == runs.Outcome(
        "failed", 127, 'could not start (exit code 127): exec: "nope": executable file not found'
    )
    assert runs.not_started(None, "no such image") == runs.Outcome("failed", None, "could not start: no such image")
    stopped = runs.removed_with_application(outcome({"State": {"ExitCode": 143}}, ["bye"]))
    assert stopped == runs.Outcome("failed", 143, runs.REMOVED_WITH_APPLICATION, ("bye",))
    assert runs.to_prune(["c", "b", "a"], 2) == ["a"]
    assert runs.to_prune(["a"], 0) == ["a"]
