"""The port sweeper as data (exact comparison): the Berth bridges it is given, its body, what it says it
deleted. Its behaviour on a real engine is ``tests/servers/test_stale_ports.py``'s."""

from __future__ import annotations

import pytest

from berth_scheduler.domain import stale_ports as dom


def network(name: str, net_id: str, *, driver: str = "bridge", berth: bool = True, bridge: str = "") -> dict:
    return {
        "Name": name,
        "Id": net_id,
        "Driver": driver,
        "Labels": {"berth.managed": "true"} if berth else {"other": "x"},
        "Options": {"com.docker.network.bridge.name": bridge} if bridge else {},
    }


def test_the_bridges_are_the_berth_networks_linux_bridges_each_once():
    networks = [
        network("berth", "f2aac088c6c4d501" + "0" * 48),
        network("berth-app", "0123456789ab" + "1" * 52, bridge="berth0"),
        network("mine", "aaaaaaaaaaaa" + "2" * 52, berth=False),  # not Berth's
        network("bridge", "bbbbbbbbbbbb" + "3" * 52, berth=False, bridge="docker0"),
        network("overlay", "cccccccccccc" + "4" * 52, driver="overlay"),  # no Linux bridge of its own here
        network("again", "f2aac088c6c4d501" + "0" * 48),
        network("odd", "dddddddddddd", bridge="a b;c"),  # not an interface name: left out
        {"Name": "bare", "Driver": "bridge", "Labels": {"berth.managed": "true"}},  # no id, no name
        {"Name": "nothing"},
    ]
    assert dom.berth_bridges(networks) == ["berth0", "br-f2aac088c6c4"]
    assert dom.berth_bridges([]) == []


def test_the_port_sweeper_is_the_helper_in_the_servers_network_namespace_with_net_admin_only():
    assert dom.port_sweeper_body(["br-f2aac088c6c4", "berth0", "berth0"]) == {
        "Image": "berth/busybox:1",
        "Cmd": ["sh", "-c", dom.PORTS_SCRIPT, "port-sweeper", "berth0", "br-f2aac088c6c4"],  # sorted, once each
        "Entrypoint": [],
        "User": "0:0",
        "AttachStdout": True,
        "AttachStderr": True,
        "Tty": False,
        "Labels": {"berth.managed": "true", "berth.port-sweeper": "true"},
        "HostConfig": {
            "PidMode": "host",
            "CgroupnsMode": "host",
            "NetworkMode": "host",
            "ReadonlyRootfs": True,
            "CapDrop": ["ALL"],
            "CapAdd": ["NET_ADMIN"],
            "SecurityOpt": ["no-new-privileges", "apparmor=unconfined"],
            "AutoRemove": False,
        },
    }
    assert dom.PORT_SWEEPER_NAME == "berth-port-sweeper"
    assert "br-" not in dom.PORTS_SCRIPT and '"$*"' in dom.PORTS_SCRIPT  # the bridges are arguments
    assert f"sleep {dom.APART_S};" in dom.PORTS_SCRIPT and dom.APART_S == 5


@pytest.mark.parametrize("bad", ["", "a" * 16, "br-x y", "br;rm", "$(x)", "-br", "br/0", "*"])
def test_only_interface_names_make_a_port_sweeper(bad: str):
    with pytest.raises(ValueError, match="not a bridge name"):
        dom.port_sweeper_body(["berth0", bad])


def test_the_deleted_ports_are_read_from_the_helpers_lines():
    assert dom.deleted("vethd501015\nveth5919e9b\n\nvethd501015\n") == ["veth5919e9b", "vethd501015"]
    assert dom.deleted("") == []
    assert dom.deleted("a-name-far-too-long-for-linux\n$(x)\n") == []
