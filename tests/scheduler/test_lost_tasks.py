"""The helper that ends a lost task's processes, as data (exact comparison), and the engine's words it
answers to."""

from __future__ import annotations

import pytest

from berth_scheduler.domain import lost_tasks as dom

ID = "ab" * 32


def test_the_reaper_is_busybox_in_the_hosts_process_namespace_with_kill_only():
    assert dom.reaper_body(ID) == {
        "Image": "berth/busybox:1",
        "Cmd": ["sh", "-c", dom.SCRIPT, "reaper", ID],
        "Entrypoint": [],
        "User": "0:0",
        "AttachStdout": True,
        "AttachStderr": True,
        "Tty": False,
        "Labels": {"berth.managed": "true", "berth.lost-task-reaper": ID},
        "HostConfig": {
            "PidMode": "host",
            "CgroupnsMode": "host",
            "NetworkMode": "none",
            "ReadonlyRootfs": True,
            "CapDrop": ["ALL"],
            "CapAdd": ["KILL"],
            "SecurityOpt": ["no-new-privileges", "apparmor=unconfined"],
            "AutoRemove": False,
        },
    }
    assert dom.reaper_name(ID) == "berth-reaper-abababababab"
    assert "$1" in dom.SCRIPT and ID not in dom.SCRIPT  # the id is an argument, never part of the script


@pytest.mark.parametrize("bad", ["", "ab" * 31, "AB" * 32, ID + "0", "a;b" + "0" * 61, f"{ID[:-1]}/"])
def test_only_a_full_container_id_makes_a_reaper(bad: str):
    with pytest.raises(ValueError):
        dom.reaper_body(bad)


@pytest.mark.parametrize(
    ("message", "lost"),
    [
        (f"docker start berth-a-web-1234abcd-1: task {ID}: already exists", True),
        ("docker start berth-chaosr0-web-b8a9fe7b-1: id already in use", True),
        ("docker start x: Bind for 0.0.0.0:8080 failed: port is already allocated", False),
        ("docker start x: container already exists", False),
        (f"docker start x: task {ID[:12]}: already exists", False),
        ("docker start x: no space left on device", False),
    ],
)
def test_the_engines_refusal_of_a_lost_task_is_told_from_others(message: str, lost: bool):
    assert dom.is_lost(message) is lost


def test_the_ended_processes_are_read_from_the_helpers_lines():
    assert dom.ended("12\n7\n12\n") == [7, 12]
    assert dom.ended("") == []
    assert dom.ended("sh: can't kill\n9\n") == [9]


def test_only_containers_whose_start_may_have_left_a_lost_task_get_the_helper():
    broke_created = dom.Removing("a", ID, "created", start_broke=True)
    broke_exited = dom.Removing("b", ID, "exited", start_broke=True)
    broke_but_runs = dom.Removing("c", ID, "running", start_broke=True)
    plain = [dom.Removing("e", ID, "created"), dom.Removing("f", ID, "running"), dom.Removing("g", ID, "exited")]
    assert dom.needing_helper([broke_created, plain[0], broke_exited, broke_but_runs, *plain[1:]]) == [
        (broke_created, "its start broke with the engine"),
        (broke_exited, "its start broke with the engine"),
    ]
    assert dom.needing_helper(plain) == []
    assert dom.suspicion(broke_but_runs) is None  # the engine knows its task: its forced removal kills it


def test_the_engines_refusal_to_remove_a_container_whose_task_it_holds_is_told():
    assert dom.is_lost(f"docker remove berth-a-web-1234abcd-1: task {ID}: already exists")
    assert not dom.is_lost("docker remove berth-a-web-1234abcd-1: removal of container is already in progress")


NEVER = "0001-01-01T00:00:00Z"  # the engine's StartedAt of a container it never started


def inspect_doc(status: str, *, running: bool = False, started: str = NEVER, error: str = "") -> dict:
    state = {"Status": status, "Running": running, "StartedAt": started, "Error": error, "ExitCode": 0}
    return {"Id": ID, "Name": "/berth-predeploy-d1", "State": state}


def test_a_pre_deploy_jobs_container_is_judged_from_its_inspect_document_and_its_deployments_mark():
    """The job's container has no container record: the engine's inspect document gives its id and state,
    its deployment's record the mark of a broken start, and the replicas' rule judges it."""
    name = "berth-predeploy-d1"
    lost_start = dom.inspected(name, inspect_doc("created"), True)  # the engine keeps no trace of the start
    refused = dom.inspected(name, inspect_doc("created", error=f"task {ID}: already exists"), True)
    exited = dom.inspected(name, inspect_doc("exited", started="2026-12-07T10:00:00Z"), True)
    back_running = dom.inspected(name, inspect_doc("running", running=True, started="2026-12-07T10:00:00Z"), True)
    unmarked = [dom.inspected(name, inspect_doc(s)) for s in ("created", "exited", "running")]
    assert lost_start == dom.Removing(name, ID, "created", start_broke=True)
    assert refused == dom.Removing(name, ID, "created", start_broke=True)
    assert exited == dom.Removing(name, ID, "exited", start_broke=True)
    assert back_running == dom.Removing(name, ID, "running", start_broke=True)
    assert unmarked == [dom.Removing(name, ID, s) for s in ("created", "exited", "running")]
    assert dom.needing_helper([lost_start, refused, exited, back_running, *unmarked]) == [
        (lost_start, "its start broke with the engine"),
        (refused, "its start broke with the engine"),
        (exited, "its start broke with the engine"),
    ]
    assert dom.inspected(name, {"Id": ID}) == dom.Removing(name, ID, "")  # no state: no mark, no helper
    assert dom.suspicion(dom.inspected(name, {"Id": ID})) is None


def test_the_sweeper_is_the_same_helper_given_the_engines_clock_and_every_container_it_listed():
    other = "cd" * 32
    body = dom.sweeper_body(1796673480, [other, ID, other])
    assert body["Cmd"] == ["sh", "-c", dom.SWEEP_SCRIPT, "sweeper", "1796673480", ID, other]  # sorted, once each
    assert body["Labels"] == {"berth.managed": "true", "berth.orphan-sweeper": "true"}
    assert body["HostConfig"] == dom.reaper_body(ID)["HostConfig"]
    assert {k: v for k, v in body.items() if k not in ("Cmd", "Labels")} == {
        k: v for k, v in dom.reaper_body(ID).items() if k not in ("Cmd", "Labels")
    }
    assert dom.sweeper_body(1, [])["Cmd"] == ["sh", "-c", dom.SWEEP_SCRIPT, "sweeper", "1"]  # an engine with none
    assert "$1" in dom.SWEEP_SCRIPT and ID not in dom.SWEEP_SCRIPT  # what it is given are arguments


@pytest.mark.parametrize("bad", ["", "ab" * 31, "AB" * 32, ID + "0", "a;b" + "0" * 61, "$(reboot)"])
def test_only_full_container_ids_make_a_sweeper(bad: str):
    with pytest.raises(ValueError):
        dom.sweeper_body(1796673480, [ID, bad])


def test_a_sweeper_needs_a_time():
    with pytest.raises(ValueError):
        dom.sweeper_body(0, [ID])


@pytest.mark.parametrize(
    "text,seconds",
    [
        ("2026-12-07T19:58:00.123456789Z", 1796673480),
        ("2026-12-07T19:58:00Z", 1796673480),
        ("2026-12-07T20:58:00.5+01:00", 1796673480),
        ("2026-12-07T14:58:00-05:00", 1796673480),
    ],
)
def test_an_engines_clock_is_read_in_whole_seconds(text: str, seconds: int):
    assert dom.engine_seconds(text) == seconds


@pytest.mark.parametrize("bad", ["", "now", "2026-12-07 19:58:00Z", "2026-12-07T19:58:00", "1796673480"])
def test_what_is_not_an_engines_clock_is_refused(bad: str):
    with pytest.raises(ValueError):
        dom.engine_seconds(bad)
