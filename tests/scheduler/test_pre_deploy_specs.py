"""The pre-deploy job as data (``domain/runs.py``, ``domain/machine.py``): its container body compared
whole, the service it takes, the reason a failed job gives, the engine's start time, and the machine's
``PreDeploySucceeded``; on a Swarm, the network the job joins."""

from __future__ import annotations

from dataclasses import replace

import pytest

from berth_common.catalogue import ApplicationSpec, PreDeployJob
from berth_scheduler.domain import machine as m
from berth_scheduler.domain import runs
from berth_scheduler.domain.machine import RefusedError, State, transition
from tests.scheduler.test_container_specs import DEP, app_spec
from tests.scheduler.test_machine import new, run, steps_of

LOG_CONFIG = {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}}


def test_the_job_container_is_a_runs_body_named_and_labelled_after_the_deployment():
    spec = app_spec()
    cs = runs.job_spec(DEP, "app-1", "team-1", spec, spec.services[0], "berth/shop:v2", ["rake", "db:migrate"])
    assert cs.name == f"berth-predeploy-{DEP}" == runs.job_container_name(DEP)
    assert cs.kind == "run" and cs.completes is True
    assert (cs.container_port, cs.host_port, cs.health_path, cs.health_command, cs.connects) == (
        None,
        None,
        None,
        None,
        (),
    )
    assert cs.body == {
        "Image": "berth/shop:v2",
        "Cmd": ["rake", "db:migrate"],
        "Env": ["MODE=prod", "DB_PASSWORD=hunter2", "PORT=8080"],
        "Labels": {
            "berth.team": "team-1",
            "berth.app": "app-1",
            "berth.kind": "run",
            "berth.managed": "true",
            "berth.pre-deploy": DEP,
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
    assert runs.one_off(cs.body["Labels"])  # no replica: nothing that acts on replicas takes it
    same = runs.run_spec(DEP, "app-1", "team-1", DEP, spec, spec.services[0], "berth/shop:v2", ["rake", "db:migrate"])
    assert {k: v for k, v in cs.body.items() if k != "Labels"} == {k: v for k, v in same.body.items() if k != "Labels"}


def test_the_job_takes_the_named_service_else_the_first_web_else_the_first_worker():
    spec = app_spec()
    assert runs.job_service(spec, None) is spec.services[0]
    assert runs.job_service(spec, "jobs") is spec.services[1]
    assert runs.job_service(spec, "absent") is None
    workers = app_spec(services=[app_spec().services[1].model_dump(mode="json")])
    assert runs.job_service(workers, None) is workers.services[0]


@pytest.mark.parametrize(
    ("result", "reason"),
    [
        (
            runs.Outcome("failed", 3, "exited with code 3", ("step 1", "boom")),
            "the pre-deploy job exited with code 3; its last lines:\nstep 1\nboom",
        ),
        (runs.Outcome("failed", 1, "exited with code 1"), "the pre-deploy job exited with code 1"),
        (
            runs.Outcome("failed", 137, "exited with code 137: out of memory (killed)", ("alloc",)),
            "the pre-deploy job exited with code 137: out of memory (killed); its last lines:\nalloc",
        ),
        (
            runs.Outcome("timed_out", 143, "timed out after 60 s (killed)", ("waiting",)),
            "the pre-deploy job timed out after 60 s (killed); its last lines:\nwaiting",
        ),
        (runs.lost("no such image"), "the pre-deploy job could not run: no such image"),
    ],
)
def test_a_failed_job_says_its_exit_code_and_last_lines(result, reason):
    assert runs.job_failure(result, 60) == reason


@pytest.mark.parametrize(
    ("raw", "at"),
    [
        ("2026-12-05T12:00:00.250000000Z", 1796472000.25),
        ("2026-12-05T12:00:00Z", 1796472000.0),
        ("0001-01-01T00:00:00Z", None),
        ("", None),
        ("not a time", None),
    ],
)
def test_the_engines_start_time_in_epoch_seconds(raw, at):
    assert runs.started_at({"State": {"StartedAt": raw}}) == at


def test_the_spec_field_is_left_out_of_a_dump_while_there_is_no_job():
    spec = app_spec()
    assert "pre_deploy" not in spec.model_dump(mode="json")
    job = app_spec(pre_deploy={"command": ["migrate"], "service": "jobs"})
    assert job.pre_deploy == PreDeployJob(command=["migrate"], service="jobs", timeout_s=600)
    assert job.model_dump(mode="json")["pre_deploy"] == {"command": ["migrate"], "service": "jobs", "timeout_s": 600}
    assert ApplicationSpec.model_validate(job.model_dump(mode="json")) == job
    plain = app_spec(pre_deploy={"command": ["migrate"]}).model_dump(mode="json")["pre_deploy"]
    assert plain == {"command": ["migrate"], "timeout_s": 600}


def test_a_job_that_succeeded_restarts_the_readiness_deadline_while_starting():
    r, _ = run(new(), m.Admit(None), m.BuildSucceeded("img"), now=20.0)
    assert r.deadline_at == 80.0
    after, events = transition(r, m.PreDeploySucceeded("migrate: exited with code 0"), 500.0)
    assert (after.state, after.deadline_at, after.version) == (State.STARTING, 560.0, r.version + 1)
    assert steps_of(events) == [("starting", "pre-deploy job succeeded")]
    assert events[0].detail == "migrate: exited with code 0"
    with pytest.raises(RefusedError):
        transition(replace(r, state=State.VERIFYING), m.PreDeploySucceeded(), 500.0)
    aborting, _ = run(r, m.Fail("x"), now=30.0)
    with pytest.raises(RefusedError):
        transition(aborting, m.PreDeploySucceeded(), 500.0)


def test_on_a_swarm_the_job_and_runs_join_the_swarms_overlay_network_alone():
    """On a Swarm's manager the job (and a run) joins the Swarm's overlay network, where the application's
    tasks answer by their service names, and no other network; the rest of its body is a run's."""
    spec = app_spec(network="shopnet")
    cs = runs.job_spec(DEP, "app-1", "team-1", spec, spec.services[0], "berth/shop:v2", ["migrate"], "mgr-1")
    assert cs.body["NetworkingConfig"] == {"EndpointsConfig": {"berth": {}}}  # the server's own network
    swarm = runs.on_network(cs, "appsnet")
    assert swarm.body == {**cs.body, "NetworkingConfig": {"EndpointsConfig": {"appsnet": {}}}}
    assert (swarm.name, swarm.connects, swarm.completes) == (cs.name, (), True)
