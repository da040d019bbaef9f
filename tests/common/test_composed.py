"""The compose fields of the catalogue's services: left out of every dump while unset, validated in the model
(aliases, dependencies, cycles, paths), and the start layers of ``depends_on``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from berth_common import sealing
from berth_common.catalogue import (
    ApplicationSpec,
    StartDeployment,
    WebService,
    WorkerService,
    dependency_refusal,
    start_layers,
)


def test_unset_fields_leave_every_dump_as_it_was():
    web = WebService(name="web", port=8080)
    worker = WorkerService(name="jobs")
    assert web.model_dump(mode="json") == {
        "kind": "web",
        "name": "web",
        "port": 8080,
        "replicas": 1,
        "health_path": "/",
        "command": None,
        "hosts": [],
        "limits": None,
    }
    assert worker.model_dump(mode="json") == {
        "kind": "worker",
        "name": "jobs",
        "replicas": 1,
        "command": None,
        "health_command": None,
        "limits": None,
    }
    spec = ApplicationSpec(name="a", source={"kind": "image", "image": "x"}, services=[web])
    assert "private_network" not in spec.model_dump(mode="json")


@pytest.fixture
def ring() -> Iterator[None]:
    """A process-wide keyring for one test (the one before is put back after)."""
    before = sealing.install(sealing.Keyring.from_secrets("composed-test-secret-key-0123456789"))
    yield
    sealing.install(before)


def test_a_compose_service_round_trips_on_the_wire_with_its_secrets_sealed(ring):
    spec = ApplicationSpec.model_validate(
        {
            "name": "a",
            "source": {"kind": "image", "image": "x"},
            "private_network": True,
            "services": [
                {
                    "kind": "worker",
                    "name": "db",
                    "image": {"image": "berth/db:1", "pull_policy": "if-missing"},
                    "env": [{"name": "PASSWORD", "value": "hunter2", "secret": True}],
                    "aliases": ["app_db"],
                    "healthcheck": {"test": ["true"], "interval_s": 1},
                    "user": "999",
                    "working_dir": "/data",
                    "restart": "no",
                    "privileges": {"cap_add": ["NET_ADMIN"]},
                },
                {"kind": "worker", "name": "jobs", "depends_on": [{"service": "db", "condition": "service_healthy"}]},
            ],
        }
    )
    cmd = StartDeployment(deployment_id="d1", application_id="a1", team_id="t1", spec=spec)
    wire = cmd.model_dump_json()
    assert "hunter2" not in wire
    back = StartDeployment.model_validate_json(wire).spec
    assert back.services[0].env[0].reveal() == "hunter2"
    assert back == spec
    assert "hunter2" in spec.secret_values()


@pytest.mark.parametrize("alias", ["db", "plausible_db", "db.internal", "a-b_c"])
def test_aliases_accept_dns_labels_and_compose_names(alias):
    assert WorkerService(name="db", aliases=[alias]).aliases == [alias]


@pytest.mark.parametrize("alias", ["", "-db", "db-", "a b", "db..x", "x" * 64])
def test_aliases_refuse_what_is_not_a_name(alias):
    with pytest.raises(ValidationError):
        WorkerService(name="db", aliases=[alias])


def test_start_layers_and_refusals():
    assert start_layers({"web": ["db", "migrate"], "migrate": ["db"], "db": [], "worker": []}) == [
        ["db", "worker"],
        ["migrate"],
        ["web"],
    ]
    with pytest.raises(ValueError, match="cycle between a, b"):
        start_layers({"a": ["b"], "b": ["a"], "c": []})
    assert dependency_refusal([("a", [], ["x"]), ("b", ["a"], ["y"])]) is None
    assert dependency_refusal([("a", ["a"], [])]) == "service a depends on itself"
    assert dependency_refusal([("a", [], ["x"]), ("b", [], ["x"])]) == (
        "the alias x of service b is already the name or an alias of a"
    )
