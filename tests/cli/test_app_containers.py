"""`berth down --all` stops this platform's containers (found by Berth's labels and its teams), keeps their
volumes, says what it stopped, and `berth up` starts exactly those again; `berth down` leaves them serving.
The Docker calls are compared as data; the containers are real (busybox, labelled as the scheduler labels)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth_cli import appcontainers as ac
from berth_cli.baseimages import DOCKER
from berth_common import labels
from tests.support.images import TEST_LABEL, busybox_image

BERTH = str(Path(sys.executable).parent / "berth")


def c(cid: str, kind: str, state: str = "running", team: str = "t1", app: str = "a1") -> ac.Container:
    return ac.Container(id=cid, name=f"n-{cid}", state=state, team=team, app=app, kind=kind)


def test_the_docker_calls_as_data():
    assert ac.list_argv("/usr/bin/docker") == [
        "/usr/bin/docker", "ps", "--all", "--no-trunc", "--filter", "label=berth.managed=true", "--format",
        '{{.ID}}\t{{.Names}}\t{{.State}}\t{{.Label "berth.team"}}\t{{.Label "berth.app"}}\t{{.Label "berth.kind"}}'
        '\t{{.Label "com.docker.swarm.task.id"}}',
    ]  # fmt: skip
    listed = ac.parse("id1\tweb-1\trunning\tt1\ta1\tweb\t\nid2\tpg\texited\tt1\td1\tdatabase\ttask9\n\nnot a line\n")
    assert listed == [
        ac.Container("id1", "web-1", "running", "t1", "a1", "web"),
        ac.Container("id2", "pg", "exited", "t1", "d1", "database", "task9"),
    ]
    containers = [
        c("db", "database"),
        c("w2", "worker", state="restarting"),
        c("web", "web"),
        c("old", "web", state="exited"),  # stopped by a rollout: not this command's
        c("theirs", "web", team="t9"),  # another platform's (or test's) team
        c("db2", "database", team="t2"),
        ac.Container("task", "n-task", "running", "t1", "a1", "web", "task-id"),  # Swarm's: it would replace it
    ]
    chosen = ac.to_stop(containers, ["t1", "t2"])
    assert [x.id for x in chosen] == ["w2", "web", "db", "db2"]  # applications first, databases last
    assert ac.stop_argvs("docker", chosen) == [["docker", "stop", "w2", "web"], ["docker", "stop", "db", "db2"]]
    assert ac.stop_argvs("docker", [c("web", "web")]) == [["docker", "stop", "web"]]
    assert ac.stop_argvs("docker", []) == []
    stopped = [c("db", "database", "exited"), c("web", "web", "exited"), c("old", "web", "exited"), c("x", "web")]
    again = ac.to_start(stopped, ["web", "db", "x", "gone"])  # x runs already, gone no longer exists
    assert [x.id for x in again] == ["db", "web"]  # databases first
    assert ac.start_argvs("docker", again) == [["docker", "start", "db"], ["docker", "start", "web"]]


def test_stop_and_start_make_exactly_these_calls_and_keep_the_record_until_started(tmp_path: Path):
    calls: list[list[str]] = []
    state = {"db": "running", "web": "running", "old": "exited", "theirs": "running"}
    teams = {"db": "t1", "web": "t1", "old": "t1", "theirs": "t9"}
    kinds = {"db": "database", "web": "web", "old": "web", "theirs": "web"}

    def run(argv: list[str]) -> tuple[int, str]:
        calls.append(argv)
        if argv[1] == "ps":
            return 0, "".join(f"{i}\tn-{i}\t{state[i]}\t{teams[i]}\ta\t{kinds[i]}\t\n" for i in state)
        for i in argv[2:]:
            state[i] = "exited" if argv[1] == "stop" else "running"
        return 0, ""

    stopped = ac.stop(tmp_path, ["t1"], "docker", run)
    assert [x.id for x in stopped] == ["web", "db"]
    assert calls == [ac.list_argv("docker"), ["docker", "stop", "web"], ["docker", "stop", "db"]]
    assert json.loads(ac.record_path(tmp_path).read_text())["containers"][0]["id"] == "web"
    calls.clear()
    assert ac.stop(tmp_path, ["t1"], "docker", run) == [] and calls == [ac.list_argv("docker")]
    assert ac.record_path(tmp_path).exists()  # a second `down --all` keeps what the first stopped

    calls.clear()
    started = ac.start_recorded(tmp_path, "docker", run)
    assert [x.id for x in started] == ["db", "web"] and state["old"] == "exited" and state["theirs"] == "running"
    assert calls == [ac.list_argv("docker"), ["docker", "start", "db"], ["docker", "start", "web"]]
    assert not ac.record_path(tmp_path).exists()
    calls.clear()
    assert ac.start_recorded(tmp_path, "docker", run) == [] and calls == []  # nothing recorded: no call

    # the engine refuses a start: the record stays for the next `berth up`
    ac.stop(tmp_path, ["t1"], "docker", run)
    done, message = ac.up_again(tmp_path, "docker", lambda argv: run(argv) if argv[1] == "ps" else (1, ""))
    assert done is False and "were not started" in (message or "")
    assert ac.record_path(tmp_path).exists()
    # no engine at all: nothing of it runs, nothing to stop
    assert ac.down_all(tmp_path, ["t1"], "docker", lambda argv: (127, "")) == (
        True,
        "the Docker engine does not answer: no application container to stop",
    )


def docker(*args: str) -> str:
    return subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=60, check=True).stdout.strip()


def state_of(cid: str) -> str:
    return docker("inspect", "--format", "{{.State.Status}}", cid)


@pytest.fixture
def made() -> Iterator[list[str]]:
    """Container ids and volume names the test made; removed at the end."""
    things: list[str] = []
    yield things
    for thing in things:
        subprocess.run([DOCKER, "rm", "-f", thing], capture_output=True, timeout=60, check=False)
        subprocess.run([DOCKER, "volume", "rm", "-f", thing], capture_output=True, timeout=60, check=False)


def run_labelled(made: list[str], team: str, kind: str, *extra: str, managed: bool = True) -> str:
    """A container labelled as the scheduler labels a replica (``--init``, as Berth runs them: it stops at once)."""
    ours = {labels.TEAM: team, labels.APP: f"app-{team}", labels.KIND: kind}
    if managed:
        ours[labels.MANAGED] = "true"
    name = f"berth-down-{uuid.uuid4().hex[:10]}"
    argv = ["run", "-d", "--init", "--name", name, "--label", TEST_LABEL]
    for key, value in ours.items():
        argv += ["--label", f"{key}={value}"]
    cid = docker(*argv, *extra, busybox_image(), "sleep", "600")
    made.append(cid)
    return cid


def berth(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BERTH, "down", *args, "--data-dir", str(root)], capture_output=True, text=True, timeout=120, check=False
    )


def test_down_all_stops_this_platforms_containers_keeps_volumes_and_up_starts_them(tmp_path: Path, made):
    team, other = f"team-{uuid.uuid4().hex[:8]}", f"team-{uuid.uuid4().hex[:8]}"
    volume = f"berth-down-{uuid.uuid4().hex[:10]}"
    made.append(volume)
    db = run_labelled(made, team, "database", "-v", f"{volume}:/data")
    docker("exec", db, "sh", "-c", "echo kept > /data/file")
    web = run_labelled(made, team, "web")
    worker = run_labelled(made, team, "worker")
    old = run_labelled(made, team, "web")
    docker("stop", old)  # an old version a rollout stopped: `berth up` must not start it
    theirs = run_labelled(made, other, "web")  # another platform's
    unmanaged = run_labelled(made, team, "web", managed=False)  # not Berth's to manage
    root = tmp_path / "data"

    # the teams are not known (the platform never ran): nothing is stopped, and it says why
    proc = berth(root, "--all")
    assert proc.returncode == 1 and "teams are not known" in proc.stderr
    assert {state_of(x) for x in (db, web, worker)} == {"running"}

    ac.teams_path(root).parent.mkdir(parents=True)
    ac.teams_path(root).write_text(json.dumps({"teams": [team]}))
    # `berth down`: the control plane only, applications keep serving (this platform's are counted)
    proc = berth(root)
    assert proc.returncode == 0, proc.stderr
    assert "3 application container(s) of this platform stay up" in proc.stdout, proc.stdout
    assert {state_of(x) for x in (db, web, worker)} == {"running"}

    proc = berth(root, "--all")
    assert proc.returncode == 0, proc.stderr
    assert "stopped 3 application container(s), volumes and data kept" in proc.stdout
    names = {x: docker("inspect", "--format", "{{.Name}}", x).lstrip("/") for x in (db, web, worker)}
    assert all(
        f"{names[x]} ({kind})" in proc.stdout for x, kind in ((db, "database"), (web, "web"), (worker, "worker"))
    )
    assert {x: state_of(x) for x in (db, web, worker, old)} == dict.fromkeys((db, web, worker, old), "exited")
    assert state_of(theirs) == "running" and state_of(unmanaged) == "running"
    assert {x["id"] for x in json.loads(ac.record_path(root).read_text())["containers"]} == {db, web, worker}
    # stopped, not removed: a second `down --all` has nothing left to stop
    proc = berth(root, "--all")
    assert proc.returncode == 0 and "no application container of this platform was running" in proc.stdout

    # what `berth up` does once the platform is ready: start exactly those again, databases first
    done, message = ac.up_again(root, DOCKER)
    assert done is True and message is not None and message.startswith("started 3 application container(s)")
    assert message.index(names[db]) < message.index(names[web])
    assert {x: state_of(x) for x in (db, web, worker)} == dict.fromkeys((db, web, worker), "running")
    assert state_of(old) == "exited"
    assert docker("exec", db, "cat", "/data/file") == "kept"
    assert not ac.record_path(root).exists()
