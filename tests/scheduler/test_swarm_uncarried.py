"""A compose service's keys on a Swarm: capabilities added and dropped are carried (``CapabilityAdd`` and
``CapabilityDrop``, Engine API 1.41), and every key a Swarm service has no place for (a runtime, a pinned
address, ``privileged``, devices, ...) is named in the refusal, exactly, never dropped without a word."""

from __future__ import annotations

from typing import Any

from berth_common.catalogue import ApplicationSpec
from berth_scheduler.domain import swarm
from berth_scheduler.domain.containers import container_spec

APP = "app-1"
DEP = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"


def _replica(**service: Any):
    spec = ApplicationSpec.model_validate(
        {
            "name": "pin",
            "source": {"kind": "image", "image": "x:1"},
            "private_network": True,
            "network_options": {"subnet": "10.77.0.0/24"},
            "services": [{"kind": "worker", "name": "db", "strategy": "recreate", **service}],
        }
    )
    return container_spec(APP, DEP, spec, spec.services[0], 1, "x:1")


def test_capabilities_are_carried_into_the_swarm_task_exactly():
    replica = _replica(privileges={"cap_add": ["NET_ADMIN", "SYS_TIME"]}, host_limits={"cap_drop": ["MKNOD"]})
    container = swarm.service_body(replica, 1, "berth-overlay").body["TaskTemplate"]["ContainerSpec"]
    assert (container["CapabilityAdd"], container["CapabilityDrop"]) == (["NET_ADMIN", "SYS_TIME"], ["MKNOD"])
    assert swarm.uncarried(replica) == [] and swarm.refusal("db", replica) is None
    plain = swarm.service_body(_replica(), 1, "berth-overlay").body["TaskTemplate"]["ContainerSpec"]
    assert not {"CapabilityAdd", "CapabilityDrop"} & set(plain)


def test_each_key_a_swarm_service_cannot_carry_is_named():
    replica = _replica(
        ipv4_address="10.77.0.10",
        privileges={
            "privileged": True,
            "devices": [{"source": "/dev/fuse", "target": "/dev/fuse", "permissions": "rwm"}],
            "security_opt": ["seccomp=unconfined"],
            "pid_host": True,
            "ipc_host": True,
            "runtime": "runc",
        },
        host_limits={"shm_size_bytes": 1024 * 1024, "sysctls": {"net.core.somaxconn": "1024"}},
    )
    assert swarm.uncarried(replica) == [
        "privileged",
        "devices",
        "security_opt",
        "pid: host",
        "ipc: host",
        "runtime",
        "shm_size",
        "sysctls",
        "ipv4_address",
    ]
    assert swarm.refusal("db", replica) == (
        "service db: a Swarm service cannot carry its privileged, devices, security_opt, pid: host, ipc: host, "
        "runtime, shm_size, sysctls, ipv4_address: place the service on a server, or remove these keys"
    )


def test_a_runtime_alone_or_an_address_alone_is_refused_by_name():
    assert swarm.refusal("db", _replica(privileges={"runtime": "runc"})) == (
        "service db: a Swarm service cannot carry its runtime: place the service on a server, or remove these keys"
    )
    assert swarm.uncarried(_replica(ipv4_address="10.77.0.10")) == ["ipv4_address"]


async def test_a_deployment_placing_such_a_service_on_a_swarm_fails_naming_its_keys(monkeypatch):
    """``SwarmStarting`` refuses before it makes anything on the Swarm (nor runs a pre-deploy job)."""
    from types import SimpleNamespace

    import pytest

    from berth_scheduler.usecases.rollout import swarm_step
    from berth_scheduler.usecases.swarm_rollout import SwarmRolloutFailed

    spec = ApplicationSpec.model_validate(
        {
            "name": "pin",
            "source": {"kind": "image", "image": "x:1"},
            "services": [
                {"kind": "worker", "name": "app"},
                {"kind": "worker", "name": "gpu", "privileges": {"runtime": "nvidia", "cap_add": ["SYS_NICE"]}},
            ],
        }
    )

    async def on_a_swarm(rt, r, given):
        return {svc.name: SimpleNamespace(network="berth-overlay") for svc in given.services}

    monkeypatch.setattr(swarm_step, "places_of", on_a_swarm)
    rt = SimpleNamespace(sealer=SimpleNamespace(open=lambda stored: spec))
    r = SimpleNamespace(application_id=APP, deployment_id=DEP, run_image="x:1", team_id="t1")
    with pytest.raises(SwarmRolloutFailed) as caught:
        await swarm_step.SwarmStarting(swarms=None)(rt, r, SimpleNamespace(spec={}), None)  # type: ignore[arg-type]
    assert str(caught.value) == (
        "service gpu: a Swarm service cannot carry its runtime: place the service on a server, or remove these keys"
    )
