"""Ports a compose service publishes on its server, as data: the exact create body of its container (bound
on every address, beside a web replica's loopback binding), a Swarm service's host-mode ports, the rollout
recreating such a service (never two containers on one port), its definition following its ports, and the
catalogue refusing a second replica or server (an older message without the field still parses)."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from berth_common.catalogue import ApplicationSpec, WorkerService
from berth_scheduler.domain import swarm, volumes
from berth_scheduler.domain.containers import container_spec, definition

DEP = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
APP = "app-1"
LOG = {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}}
PORTS = [
    {"target": 7000, "published": 27000},
    {"target": 7001, "published": 27001, "protocol": "udp"},
]


def spec_of(*, echo: dict | None = None, web: dict | None = None) -> ApplicationSpec:
    return ApplicationSpec.model_validate(
        {
            "name": "relay",
            "source": {"kind": "image", "image": "berth/relay:1"},
            "private_network": True,
            "services": [
                {"kind": "web", "name": "web", "port": 8080, "hosts": ["relay.localhost"], **(web or {})},
                {
                    "kind": "worker",
                    "name": "echo",
                    "command": ["nc", "-ll", "-p", "7000", "-e", "cat"],
                    "published_ports": PORTS,
                    **(echo or {}),
                },
            ],
        }
    )


def labels(service: str, kind: str) -> dict[str, str]:
    return {
        "berth.app": APP,
        "berth.service": service,
        "berth.deployment": DEP,
        "berth.replica": "1",
        "berth.kind": kind,
        "berth.managed": "true",
    }


def test_a_worker_binds_its_published_ports_on_every_address() -> None:
    spec = spec_of()
    cs = container_spec(APP, DEP, spec, spec.services[1], 1, "berth/relay:1")
    assert cs.body == {
        "Image": "berth/relay:1",
        "Cmd": ["nc", "-ll", "-p", "7000", "-e", "cat"],
        "Env": [],
        "Labels": labels("echo", "worker"),
        "StopTimeout": 10,
        "ExposedPorts": {"7000/tcp": {}, "7001/udp": {}},
        "HostConfig": {
            "RestartPolicy": {"Name": "unless-stopped"},
            "Init": True,
            "LogConfig": LOG,
            "PortBindings": {
                "7000/tcp": [{"HostIp": "", "HostPort": "27000"}],
                "7001/udp": [{"HostIp": "", "HostPort": "27001"}],
            },
        },
        "NetworkingConfig": {"EndpointsConfig": {"berth-app-app-1": {"Aliases": ["echo"]}}},
    }
    assert cs.published == ((7000, 27000, "tcp"), (7001, 27001, "udp"))


def test_a_web_replica_keeps_its_loopback_port_beside_its_published_ones() -> None:
    spec = spec_of(web={"published_ports": [{"target": 8080, "published": 28080, "protocol": "udp"}]})
    cs = container_spec(APP, DEP, spec, spec.services[0], 1, "berth/relay:1", host_port=41000)
    assert cs.body["ExposedPorts"] == {"8080/tcp": {}, "8080/udp": {}}
    assert cs.body["HostConfig"]["PortBindings"] == {
        "8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "41000"}],
        "8080/udp": [{"HostIp": "", "HostPort": "28080"}],
    }
    remote = container_spec(APP, DEP, spec, spec.services[0], 1, "berth/relay:1", server_id="srv-2")
    assert remote.body["HostConfig"]["PortBindings"] == {"8080/udp": [{"HostIp": "", "HostPort": "28080"}]}


def test_a_service_without_published_ports_binds_none() -> None:
    spec = spec_of(echo={"published_ports": []})
    cs = container_spec(APP, DEP, spec, spec.services[1], 1, "berth/relay:1")
    assert "PortBindings" not in cs.body["HostConfig"] and "ExposedPorts" not in cs.body
    assert cs.published == ()
    assert "published_ports" not in spec.services[1].model_dump()  # a dump without them is as before


def test_a_publishing_service_is_recreated_and_its_definition_follows_its_ports() -> None:
    spec = spec_of()
    assert volumes.recreated_services(spec) == ["echo"]
    assert volumes.recreated_services(spec_of(echo={"published_ports": []})) == []
    same = definition(APP, spec, spec.services[1], "berth/relay:1")
    assert definition(APP, spec_of(), spec_of().services[1], "berth/relay:1") == same
    moved = spec_of(echo={"published_ports": [{"target": 7000, "published": 27002}]})
    assert definition(APP, moved, moved.services[1], "berth/relay:1") != same


def test_a_swarm_service_publishes_in_host_mode_and_updates_stop_first() -> None:
    spec = spec_of()
    cs = container_spec(APP, DEP, spec, spec.services[1], 1, "berth/relay:1", server_id="swarm-1")
    body = swarm.service_body(cs, 1, "berth-app-app-1").body
    assert body["EndpointSpec"] == {
        "Mode": "dnsrr",
        "Ports": [
            {"Protocol": "tcp", "TargetPort": 7000, "PublishedPort": 27000, "PublishMode": "host"},
            {"Protocol": "udp", "TargetPort": 7001, "PublishedPort": 27001, "PublishMode": "host"},
        ],
    }
    assert body["UpdateConfig"] == {"Parallelism": 1, "Order": "stop-first"}
    plain = spec_of(echo={"published_ports": []})
    other = swarm.service_body(container_spec(APP, DEP, plain, plain.services[1], 1, "x:1"), 1, "net").body
    assert other["EndpointSpec"] == {"Mode": "dnsrr"} and "UpdateConfig" not in other


@pytest.mark.parametrize(
    ("over", "why"),
    [
        ({"replicas": 2}, "a service publishing ports (27000/tcp, 27001/udp) runs 1 replica"),
        ({"servers": ["a", "b"]}, "a service publishing ports (27000/tcp, 27001/udp) runs on one server"),
        ({"published_ports": [*PORTS, {"target": 9, "published": 27000}]}, "the port 27000/tcp is published twice"),
    ],
)
def test_the_catalogue_refuses_two_containers_on_one_port(over: dict, why: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(why)):
        spec_of(echo=over)


def test_an_older_service_without_the_field_parses() -> None:
    svc = WorkerService.model_validate({"kind": "worker", "name": "echo"})
    assert svc.published_ports == [] and WorkerService.model_validate(svc.model_dump()) == svc
