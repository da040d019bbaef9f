"""One-off runs on the real scheduler, bus, Postgres and Docker: a command in a fresh container of the live
deployment's image, its exit code and last lines, its timeout, and a scheduler restart in the middle."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from typing import Any

import pytest

from berth_common.catalogue import ReplicasQuery, ReplicasReply, StartRun
from tests.scheduler.platform import worker_app
from tests.support.bus_helpers import EventLog

pytestmark = [pytest.mark.slow, pytest.mark.docker]


class RunEvents(EventLog):
    """Every ``evt.run.*`` on the bus, in arrival order, once per message id."""

    async def subscribe(self, nc: Any) -> RunEvents:
        await self.follow(nc, "evt.run.>")
        return self

    def of(self, run_id: str, type_: str) -> list[dict[str, Any]]:
        return [e["data"] for e in self.events if e["type"] == type_ and e["data"]["run_id"] == run_id]

    async def wait(self, run_id: str, type_: str = "evt.run.finished", timeout: float = 60) -> dict[str, Any]:
        await self.until(lambda: self.of(run_id, type_), timeout)
        return self.of(run_id, type_)[0]


def run_containers(run_id: str) -> list[str]:
    out = subprocess.run(
        [
            "docker",
            "ps",
            "-a",
            "--filter",
            f"label=berth.run={run_id}",
            "--format",
            '{{.Names}} {{.Label "berth.kind"}}',
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line for line in out.splitlines() if line.strip()]


@pytest.fixture
async def live(platform, busybox, app_id):
    """A worker application deployed (its variables: GREETING=hello) and the run events collected."""
    spec = worker_app(busybox, "v1")
    spec["env"] = [{"name": "GREETING", "value": "hello"}, {"name": "TOKEN", "value": "s3cret", "secret": True}]
    dep = await platform.deploy(app_id, spec)
    assert (await platform.wait(dep))["type"] == "evt.deployment.succeeded"
    events = await RunEvents().subscribe(platform.nc)
    return dep, events


async def start_run(platform, app_id: str, dep: str, command: list[str], timeout_s: int = 60) -> str:
    run_id = uuid.uuid4().hex
    cmd = StartRun(
        run_id=run_id,
        team_id="team-1",
        application_id=app_id,
        deployment_id=dep,
        service="worker",
        command=command,
        timeout_s=timeout_s,
    )
    await platform.api.publish(cmd, id=f"run-start-{run_id}")
    return run_id


async def test_a_run_succeeds_with_the_applications_variables(platform, app_id, live):
    dep, events = live
    run_id = await start_run(platform, app_id, dep, ["sh", "-c", "echo $GREETING; echo token=$TOKEN"])
    done = await events.wait(run_id)
    started = events.of(run_id, "evt.run.started")
    assert len(started) == 1 and started[0]["container"] == f"berth-run-{run_id}"
    assert (done["status"], done["exit_code"], done["reason"]) == ("succeeded", 0, "")
    assert done["last_lines"] == ["hello", "token=[redacted]"]  # the secret variable is set, and redacted
    assert done["server_id"] == "local" and done["container"] == f"berth-run-{run_id}"
    assert run_containers(run_id) == [f"berth-run-{run_id} run"]  # kept for its logs


async def test_a_command_sent_again_runs_nothing_twice(platform, app_id, live):
    dep, events = live
    run_id = await start_run(platform, app_id, dep, ["echo", "once"])
    await events.wait(run_id)
    again = StartRun(
        run_id=run_id,
        team_id="team-1",
        application_id=app_id,
        deployment_id=dep,
        service="worker",
        command=["echo", "twice"],
    )
    await platform.api.publish(again, id=f"another-message-{run_id}")  # the same run in a new message
    await asyncio.sleep(2)
    assert [e["last_lines"] for e in events.of(run_id, "evt.run.finished")] == [["once"]]
    assert len(events.of(run_id, "evt.run.started")) == 1
    assert run_containers(run_id) == [f"berth-run-{run_id} run"]


async def test_a_failed_run_has_its_exit_code_and_last_lines(platform, app_id, live):
    dep, events = live
    script = "for i in $(seq 1 30); do echo line $i; done; sleep 0.2; echo oops >&2; exit 3"
    run_id = await start_run(platform, app_id, dep, ["sh", "-c", script])
    done = await events.wait(run_id)
    assert (done["status"], done["exit_code"], done["reason"]) == ("failed", 3, "exited with code 3")
    assert len(done["last_lines"]) == 20
    assert done["last_lines"][-1] == "oops" and done["last_lines"][0] == "line 12"


async def test_a_run_past_its_timeout_is_killed(platform, app_id, live):
    dep, events = live
    run_id = await start_run(platform, app_id, dep, ["sleep", "300"], timeout_s=1)
    done = await events.wait(run_id, timeout=30)
    assert done["status"] == "timed_out"
    assert done["reason"] == "timed out after 1 s (killed)"
    assert done["duration_s"] < 15
    state = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Running}}", f"berth-run-{run_id}"], capture_output=True, text=True
    ).stdout.strip()
    assert state == "false"


async def test_a_command_that_cannot_start_fails_saying_why(platform, app_id, live):
    dep, events = live
    run_id = await start_run(platform, app_id, dep, ["/no/such/program"])
    done = await events.wait(run_id)
    assert (done["status"], done["exit_code"]) == ("failed", 127), done
    assert done["reason"] == "exited with code 127", done  # the init process runs, and says why it cannot exec
    assert any("/no/such/program" in line for line in done["last_lines"]), done


async def test_a_scheduler_restart_during_a_run_finishes_it_once(platform, app_id, live):
    dep, events = live
    run_id = await start_run(platform, app_id, dep, ["sh", "-c", "sleep 4; echo done"])
    await events.wait(run_id, "evt.run.started")
    await platform.scheduler.stop()
    assert not events.of(run_id, "evt.run.finished")
    await platform.scheduler.start()
    done = await events.wait(run_id)
    assert (done["status"], done["exit_code"], done["last_lines"]) == ("succeeded", 0, ["done"])
    await asyncio.sleep(1.5)  # a second finished event would come now
    assert len(events.of(run_id, "evt.run.started")) == 1
    assert len(events.of(run_id, "evt.run.finished")) == 1
    assert run_containers(run_id) == [f"berth-run-{run_id} run"]


async def test_a_run_of_an_unknown_deployment_fails_at_once(platform, app_id, live):
    _, events = live
    run_id = await start_run(platform, app_id, "no-such-deployment", ["true"])
    done = await events.wait(run_id)
    assert done["status"] == "failed" and done["exit_code"] is None
    assert done["reason"] == "deployment no-such-deployment of the application is not known to the scheduler"
    assert run_containers(run_id) == []


async def test_only_the_newest_finished_run_containers_are_kept(platform, app_id, live):
    dep, events = live
    await platform.scheduler.stop()
    platform.scheduler.settings = platform.scheduler.settings.model_copy(update={"run_keep": 1})
    await platform.scheduler.start()
    first = await start_run(platform, app_id, dep, ["echo", "one"])
    await events.wait(first)
    second = await start_run(platform, app_id, dep, ["echo", "two"])
    assert (await events.wait(second))["last_lines"] == ["two"]
    for _ in range(50):
        if not run_containers(first):
            break
        await asyncio.sleep(0.1)
    assert run_containers(first) == []
    assert run_containers(second) == [f"berth-run-{second} run"]


async def test_a_run_outlives_a_deployment_and_is_no_replica(platform, busybox, app_id, live):
    dep, events = live
    run_id = await start_run(platform, app_id, dep, ["sh", "-c", "sleep 5; echo still here"])
    await events.wait(run_id, "evt.run.started")
    replicas = await platform.api.request("scheduler", "replicas", ReplicasQuery(application_id=app_id), ReplicasReply)
    assert [(r.service, r.container.startswith("berth-run-")) for r in replicas.replicas] == [("worker", False)]
    d2 = await platform.deploy(app_id, worker_app(busybox, "v2"))
    assert (await platform.wait(d2))["type"] == "evt.deployment.succeeded"
    done = await events.wait(run_id)  # the new version's rollout stopped the old replicas, not the run
    assert (done["status"], done["last_lines"]) == ("succeeded", ["still here"])
    assert run_containers(run_id) == [f"berth-run-{run_id} run"]


async def test_a_run_of_an_application_removed_meanwhile_ends_saying_so(platform, app_id, live):
    dep, events = live
    run_id = await start_run(platform, app_id, dep, ["sleep", "300"])
    await events.wait(run_id, "evt.run.started")
    await platform.remove(app_id, drain_grace_s=0)
    assert (await platform.wait_app(app_id))["type"] == "evt.application.removed"
    done = await events.wait(run_id)
    # None when the container was gone before the run saw it end, 143 when the removal's SIGTERM ended it first.
    assert done["status"] == "failed" and done["exit_code"] in (None, 143)
    assert done["reason"] == "the application was removed while the run was going (its containers with it)"
    assert run_containers(run_id) == []


ADD_USER = "echo app:x:1000:1000::/:/bin/sh >> /etc/passwd && echo app:x:1000: >> /etc/group"


async def test_a_run_the_engine_refuses_to_start_fails_at_once_with_the_engines_words(platform, busybox, app_id):
    """The container of a run is created but the engine refuses to start it (here: its user is not in the
    image any more, as after the tag was rebuilt): the run ends failed at once, with the engine's words."""
    tag = f"berth/runuser-{uuid.uuid4().hex[:8]}:1"
    maker = f"berth-test-adduser-{uuid.uuid4().hex[:8]}"
    docker = ["docker"]
    try:
        subprocess.run([*docker, "run", "--name", maker, busybox, "sh", "-c", ADD_USER], check=True, timeout=60)
        subprocess.run([*docker, "commit", maker, tag], check=True, capture_output=True, timeout=60)
        spec = worker_app(tag, "v1")
        spec["services"][0]["user"] = "app"
        dep = await platform.deploy(app_id, spec)
        assert (await platform.wait(dep))["type"] == "evt.deployment.succeeded"
        events = await RunEvents().subscribe(platform.nc)
        subprocess.run([*docker, "tag", busybox, tag], check=True, timeout=60)  # the tag now lacks the user
        run_id = await start_run(platform, app_id, dep, ["true"])
        done = await events.wait(run_id, timeout=30)
        assert done["status"] == "failed", done
        assert done["reason"].startswith("could not start"), done
        assert "unable to find user app" in done["reason"], done
        assert events.of(run_id, "evt.run.started") == []  # it never ran
    finally:
        subprocess.run([*docker, "rm", "-f", maker], capture_output=True, timeout=60)
        subprocess.run([*docker, "rmi", tag], capture_output=True, timeout=60)
