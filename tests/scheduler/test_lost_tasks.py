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
            "NetworkMode": "none",
            "ReadonlyRootfs": True,
            "CapDrop": ["ALL"],
            "CapAdd": ["KILL"],
            "SecurityOpt": ["no-new-privileges"],
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
