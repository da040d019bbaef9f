"""A compose application's volume options, private network options, pinned addresses and runtime as the
scheduler's Docker calls (exact bodies), and on the real engine: a tmpfs volume is made with its options, a
changed option of an existing volume is reported (Docker keeps the old ones and says nothing), a network is
made with its pinned subnet, gateway and MTU (a change reported likewise), and a service holds its pinned
address there."""

from __future__ import annotations

import subprocess
import uuid
from dataclasses import replace

import pytest
from pydantic import ValidationError

from berth_common.catalogue import ApplicationSpec, NetworkOptions, VolumeOptions
from berth_scheduler.adapters.docker import DockerExecutor
from berth_scheduler.domain import compose, swarm, volumes
from berth_scheduler.domain.containers import container_spec

APP = "app-1"
DEP = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
TMPFS = VolumeOptions(type="tmpfs", device="tmpfs", o="size=10m,uid=1000")
PINNED = NetworkOptions(subnet="10.77.0.0/24", gateway="10.77.0.1", mtu=1400)


def _spec(image: str = "x:1") -> ApplicationSpec:
    return ApplicationSpec.model_validate(
        {
            "name": "pin",
            "source": {"kind": "image", "image": image},
            "restart_policy": "no",
            "private_network": True,
            "services": [
                {
                    "kind": "worker",
                    "name": "db",
                    "ipv4_address": "10.77.0.10",
                    "strategy": "recreate",
                    "privileges": {"runtime": "runc"},
                    "volumes": [{"name": "cache", "path": "/cache", "single_writer": True}],
                },
                {"kind": "worker", "name": "app", "aliases": ["api"]},
            ],
            "volume_options": {"cache": TMPFS.model_dump()},
            "network_options": PINNED.model_dump(),
        }
    )


def test_a_volumes_options_are_its_driver_opts_and_a_change_is_reported():
    assert volumes.create_body(APP, "cache", "t1", TMPFS) == {
        "Name": "berth-app-1-cache",
        "Driver": "local",
        "Labels": {"berth.team": "t1", "berth.app": APP, "berth.volume": "cache", "berth.managed": "true"},
        "DriverOpts": {"type": "tmpfs", "device": "tmpfs", "o": "size=10m,uid=1000"},
    }
    assert "DriverOpts" not in volumes.create_body(APP, "cache", "t1")
    body = volumes.create_body(APP, "cache", "t1", TMPFS)
    same = {"Options": {"device": "tmpfs", "o": "size=10m,uid=1000", "type": "tmpfs"}}
    assert volumes.options_change("cache", "local", body, same) is None
    assert volumes.options_change("data", "local", volumes.create_body(APP, "data", None), {"Options": None}) is None
    old = {"Options": {"device": "tmpfs", "o": "size=5m", "type": "tmpfs"}}
    assert volumes.options_change("cache", "local", body, old) == (
        "[preparing] volume cache on server local keeps the options it was made with (device=tmpfs, o=size=5m, "
        "type=tmpfs), not the ones asked now (device=tmpfs, o=size=10m,uid=1000, type=tmpfs): Docker cannot change "
        "a volume's options; remove the application with delete_volumes=true, or the volume on the server, to "
        "make it anew (its data is lost)"
    )
    assert "options it was made with (none)" in str(volumes.options_change("cache", "srv-2", body, {"Options": {}}))


def test_the_private_network_is_made_with_its_pinned_subnet_and_mtu():
    extra = compose.network_extra(PINNED)
    assert extra == {
        "IPAM": {"Driver": "default", "Config": [{"Subnet": "10.77.0.0/24", "Gateway": "10.77.0.1"}]},
        "Options": {"com.docker.network.driver.mtu": "1400"},
    }
    assert compose.network_extra(None) == {} and compose.network_extra(NetworkOptions(mtu=1500)) == {
        "Options": {"com.docker.network.driver.mtu": "1500"}
    }
    found = {
        "IPAM": {"Driver": "default", "Options": None, "Config": [{"Subnet": "10.77.0.0/24", "Gateway": "10.77.0.1"}]},
        "Options": {"com.docker.network.driver.mtu": "1400"},
    }
    assert compose.network_change("berth-app-app-1", "local", extra, found) is None
    assert compose.network_change("berth-app-app-1", "local", extra, {}) is None  # made now
    assert compose.network_change("berth-app-app-1", "local", {}, found) is None  # nothing pinned
    engine = {"IPAM": {"Config": [{"Subnet": "172.18.0.0/16", "Gateway": "172.18.0.1"}]}, "Options": {}}
    assert compose.network_change("berth-app-app-1", "local", extra, engine) == (
        "[preparing] network berth-app-app-1 on server local keeps what it was made with (subnet 172.18.0.0/16 "
        "gateway 172.18.0.1, MTU of the engine), not what the compose file pins (subnet 10.77.0.0/24 gateway "
        "10.77.0.1, MTU 1400): Docker cannot change a network; it is made anew once the application is removed"
    )


def test_a_pinned_address_and_a_runtime_are_exact_in_the_create_body():
    spec = _spec()
    db, app = (container_spec(APP, DEP, spec, svc, 1, "x:1") for svc in spec.services)
    assert db.body["NetworkingConfig"] == {
        "EndpointsConfig": {"berth-app-app-1": {"Aliases": ["db"], "IPAMConfig": {"IPv4Address": "10.77.0.10"}}}
    }
    assert app.body["NetworkingConfig"] == {"EndpointsConfig": {"berth-app-app-1": {"Aliases": ["app", "api"]}}}
    assert db.body["HostConfig"]["Runtime"] == "runc" and "Runtime" not in app.body["HostConfig"]
    driver = {"Name": "local", "Options": {"type": "tmpfs", "device": "tmpfs", "o": "size=10m,uid=1000"}}
    assert db.body["HostConfig"]["Mounts"] == [
        {
            "Type": "volume",
            "Source": "berth-app-1-cache",
            "Target": "/cache",
            "ReadOnly": False,
            "VolumeOptions": {"DriverConfig": driver},
        }
    ]
    # a Swarm task's node makes the volume with its options, labelled as the application's volumes are
    (mount,) = swarm.service_body(db, 1, "berth-overlay").body["TaskTemplate"]["ContainerSpec"]["Mounts"]
    assert mount["VolumeOptions"] == {
        "DriverConfig": driver,
        "Labels": {"berth.app": APP, "berth.volume": "cache", "berth.managed": "true"},
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ipv4_address": "10.78.0.10"}, "not in the private network's subnet"),
        ({"ipv4_address": "10.77.0.1"}, "is the network's gateway"),
        ({"strategy": "rolling"}, "1 replica with strategy recreate"),
    ],
)
def test_a_pinned_address_the_network_cannot_give_is_refused_by_the_catalogue(change, message):
    data = _spec().model_dump(mode="json")
    data["services"][0].update(change)
    if change.get("strategy") == "rolling":
        data["services"][0]["volumes"] = []
    with pytest.raises(ValidationError, match=message):
        ApplicationSpec.model_validate(data)
    data = _spec().model_dump(mode="json")
    data["services"][1]["ipv4_address"] = "10.77.0.10"
    data["services"][1]["strategy"] = "recreate"
    with pytest.raises(ValidationError, match="pinned by services db and app"):
        ApplicationSpec.model_validate(data)


def _run(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False).stdout.strip()


@pytest.mark.docker
async def test_the_engine_makes_the_volume_and_network_as_pinned_and_a_change_is_reported(
    docker: DockerExecutor, busybox, app_id
):
    spec = _spec(busybox)
    subnet = f"10.{77 + uuid.uuid4().int % 100}.{uuid.uuid4().int % 250}.0/24"
    prefix = subnet.rsplit(".", 1)[0]
    pinned = NetworkOptions(subnet=subnet, gateway=f"{prefix}.1", mtu=1400)
    data = spec.model_dump(mode="json")
    data["network_options"] = pinned.model_dump()
    data["services"][0]["ipv4_address"] = f"{prefix}.10"
    spec = ApplicationSpec.model_validate(data)
    body = volumes.create_body(app_id, "cache", None, TMPFS)
    network = compose.network_name(app_id)
    extra = compose.network_extra(spec.network_options)
    try:
        assert volumes.options_change("cache", "local", body, await docker.made_volume(body)) is None
        changed = {**body, "DriverOpts": {**body["DriverOpts"], "o": "size=20m"}}
        line = volumes.options_change("cache", "local", changed, await docker.made_volume(changed))
        assert line is not None and "(device=tmpfs, o=size=10m,uid=1000, type=tmpfs)" in line
        assert await docker.ensure_network(network, {"berth.app": app_id}, extra=extra) == {}
        again = await docker.ensure_network(network, {"berth.app": app_id}, extra=extra)
        assert compose.network_change(network, "local", extra, again) is None
        other = compose.network_extra(NetworkOptions(subnet="10.250.250.0/24"))
        assert "keeps what it was made with (subnet " + subnet in str(
            compose.network_change(network, "local", other, again)
        )
        cs = container_spec(app_id, uuid.uuid4().hex[:8], spec, spec.services[0], 1, busybox)
        cs = replace(cs, body={**cs.body, "Cmd": ["sleep", "30"]})
        await docker.create(cs)
        await docker.start(cs.name)
        info = await docker.inspect(cs.name)
        assert info["NetworkSettings"]["Networks"][network]["IPAddress"] == f"{prefix}.10"
        mounts = _run(["docker", "exec", cs.name, "grep", " /cache ", "/proc/mounts"])
        assert mounts.startswith("tmpfs /cache tmpfs ") and "size=10240k" in mounts, mounts
        assert _run(["docker", "exec", cs.name, "cat", "/sys/class/net/eth0/mtu"]) == "1400"
    finally:
        subprocess.run(
            [
                "docker",
                "rm",
                "-f",
                *[c for c in _run(["docker", "ps", "-aq", "--filter", f"label=berth.app={app_id}"]).split()],
            ],
            capture_output=True,
            check=False,
        )
        subprocess.run(["docker", "volume", "rm", "-f", body["Name"]], capture_output=True, check=False)
        subprocess.run(["docker", "network", "rm", network], capture_output=True, check=False)


def test_a_shares_password_reaches_the_engine_only_and_is_masked_in_the_report():
    secret = {"option": "password", "value": "pa55-w0rd"}
    share = VolumeOptions.model_validate(
        {"type": "cifs", "device": "//files.example.com/share", "o": "username=u", "secret": secret}
    )
    body = volumes.create_body(APP, "files", "t1", share)
    assert body["DriverOpts"] == {
        "type": "cifs",
        "device": "//files.example.com/share",
        "o": "username=u,password=pa55-w0rd",
    }
    made = {"Options": {"type": "cifs", "device": "//files.example.com/share", "o": "username=old,pass=old-pw"}}
    line = volumes.options_change("files", "local", body, made)
    assert line == (
        "[preparing] volume files on server local keeps the options it was made with (device=//files.example.com/share, "
        "o=username=old,pass=**********, type=cifs), not the ones asked now (device=//files.example.com/share, "
        "o=username=u,password=**********, type=cifs): Docker cannot change a volume's options; remove the "
        "application with delete_volumes=true, or the volume on the server, to make it anew (its data is lost)"
    )
    assert "pa55-w0rd" not in share.model_dump_json() and "pa55-w0rd" not in str(share)


def test_a_shares_password_is_among_the_values_redacted_from_what_the_scheduler_emits():
    data = _spec().model_dump()
    data["volume_options"]["cache"] = {
        "type": "cifs",
        "device": "//files.example.com/share",
        "secret": {"option": "pass", "value": "pa55-w0rd"},
    }
    assert ApplicationSpec.model_validate(data).secret_values() == ["pa55-w0rd"]
    assert _spec().secret_values() == []
