"""Compose services as data: their exact create bodies, the networks they join, their start layers, what a
dependency's container state says about its condition, and when a stateful service's definition changed."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from berth_common.catalogue import ApplicationSpec
from berth_scheduler.domain import compose
from berth_scheduler.domain.containers import container_spec, definition

DEP = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
APP = "app-1"


def compose_spec(**over) -> ApplicationSpec:
    data = {
        "name": "stats",
        "source": {"kind": "image", "image": "berth/stats:v1"},
        "private_network": True,
        "restart_policy": "unless-stopped",
        "services": [
            {
                "kind": "web",
                "name": "web",
                "port": 8000,
                "hosts": ["web-stats.localhost"],
                "depends_on": [
                    {"service": "db", "condition": "service_healthy"},
                    {"service": "migrate", "condition": "service_completed_successfully"},
                ],
                "env": [{"name": "MODE", "value": "web"}, {"name": "EXTRA", "value": "1"}],
            },
            {
                "kind": "worker",
                "name": "db",
                "image": {"image": "berth/db:15", "pull_policy": "if-missing"},
                "entrypoint": ["/entry.sh"],
                "command": ["serve", "--data", "/data"],
                "aliases": ["stats_db", "database"],
                "healthcheck": {
                    "test": ["/bin/sh", "-c", "test -f /data/ready"],
                    "interval_s": 0.5,
                    "timeout_s": 2,
                    "retries": 5,
                    "start_period_s": 1.5,
                },
                "user": "999:999",
                "working_dir": "/data",
                "volumes": [{"name": "db-data", "path": "/data", "single_writer": True}],
                "strategy": "recreate",
            },
            {
                "kind": "worker",
                "name": "migrate",
                "command": ["migrate"],
                "restart": "no",
                "depends_on": [{"service": "db", "condition": "service_healthy"}],
            },
        ],
        "env": [{"name": "MODE", "value": "app"}, {"name": "TOKEN", "value": "s3cret", "secret": True}],
        "stop_timeout_s": 5,
    }
    data.update(over)
    return ApplicationSpec.model_validate(data)


def labels(service: str, kind: str) -> dict[str, str]:
    return {
        "berth.app": APP,
        "berth.service": service,
        "berth.deployment": DEP,
        "berth.replica": "1",
        "berth.kind": kind,
        "berth.managed": "true",
    }


def test_a_stateful_compose_service_body_is_exact():
    spec = compose_spec()
    db = spec.services[1]
    cs = container_spec(APP, DEP, spec, db, 1, "berth/stats:v1")
    assert cs.name == "berth-stats-db-0f1e2d3c-1"
    assert cs.body == {
        "Image": "berth/db:15",
        "Entrypoint": ["/entry.sh"],
        "Cmd": ["serve", "--data", "/data"],
        "Env": ["MODE=app", "TOKEN=s3cret"],
        "User": "999:999",
        "WorkingDir": "/data",
        "Healthcheck": {
            "Test": ["CMD", "/bin/sh", "-c", "test -f /data/ready"],
            "Interval": 500_000_000,
            "Timeout": 2_000_000_000,
            "Retries": 5,
            "StartPeriod": 1_500_000_000,
        },
        "Labels": labels("db", "worker"),
        "StopTimeout": 5,
        "HostConfig": {
            "RestartPolicy": {"Name": "unless-stopped"},
            "Init": True,
            "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}},
            "Mounts": [{"Type": "volume", "Source": "berth-app-1-db-data", "Target": "/data", "ReadOnly": False}],
        },
        "NetworkingConfig": {"EndpointsConfig": {"berth-app-app-1": {"Aliases": ["db", "stats_db", "database"]}}},
    }
    assert cs.connects == ()
    assert not cs.completes


def test_a_web_compose_service_layers_its_environment_and_keeps_the_application_image():
    spec = compose_spec()
    web = spec.services[0]
    cs = container_spec(APP, DEP, spec, web, 1, "berth/stats:v1", host_port=41000)
    assert cs.body == {
        "Image": "berth/stats:v1",
        "Env": ["MODE=web", "TOKEN=s3cret", "EXTRA=1", "PORT=8000"],
        "Labels": labels("web", "web"),
        "StopTimeout": 5,
        "ExposedPorts": {"8000/tcp": {}},
        "HostConfig": {
            "RestartPolicy": {"Name": "unless-stopped"},
            "Init": True,
            "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}},
            "PortBindings": {"8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "41000"}]},
        },
        "NetworkingConfig": {"EndpointsConfig": {"berth-app-app-1": {"Aliases": ["web"]}}},
    }
    assert cs.upstream == "http://127.0.0.1:41000"


def test_a_one_shot_service_keeps_its_own_restart_policy_and_completes():
    spec = compose_spec()
    cs = container_spec(APP, DEP, spec, spec.services[2], 1, "berth/stats:v1")
    assert cs.body["HostConfig"]["RestartPolicy"] == {"Name": "no"}
    assert cs.completes


def test_other_networks_are_connected_after_creation():
    spec = compose_spec(network="berth-team-t1")
    cs = container_spec(APP, DEP, spec, spec.services[1], 1, "img")
    assert cs.body["NetworkingConfig"] == {
        "EndpointsConfig": {"berth-app-app-1": {"Aliases": ["db", "stats_db", "database"]}}
    }
    assert cs.connects == (("berth-team-t1", ("db.stats",)),)
    remote = container_spec(APP, DEP, spec, spec.services[0], 1, "img", server_id="srv-2")
    assert remote.connects == (("berth", ("berth-stats-web-0f1e2d3c-1",)),)
    assert compose.connect_body(remote.name, remote.connects[0][1]) == {
        "Container": "berth-stats-web-0f1e2d3c-1",
        "EndpointConfig": {"Aliases": ["berth-stats-web-0f1e2d3c-1"]},
    }


def test_a_spec_without_compose_fields_dumps_and_builds_as_before():
    spec = ApplicationSpec.model_validate(
        {
            "name": "shop",
            "source": {"kind": "image", "image": "berth/shop:v1"},
            "services": [{"kind": "worker", "name": "jobs", "command": ["run"]}],
            "restart_policy": "no",
        }
    )
    dumped = spec.model_dump(mode="json")
    assert dumped["services"] == [
        {"kind": "worker", "name": "jobs", "replicas": 1, "command": ["run"], "health_command": None, "limits": None}
    ]
    assert "private_network" not in dumped
    cs = container_spec(APP, DEP, spec, spec.services[0], 1, "berth/shop:v1")
    assert "NetworkingConfig" not in cs.body and cs.connects == () and not cs.completes


def test_start_layers_follow_depends_on():
    spec = compose_spec()
    assert compose.layers(spec) == [["db"], ["migrate"], ["web"]]
    assert compose.waits_before(spec, ["db"]) == []
    assert compose.waits_before(spec, ["migrate"]) == [("db", "service_healthy")]
    assert compose.waits_before(spec, ["web"]) == [
        ("db", "service_healthy"),
        ("migrate", "service_completed_successfully"),
    ]


@pytest.mark.parametrize(
    ("services", "why"),
    [
        (
            [
                {"kind": "worker", "name": "a", "depends_on": [{"service": "b"}]},
                {"kind": "worker", "name": "b", "depends_on": [{"service": "a"}]},
            ],
            "depends_on has a cycle between a, b",
        ),
        ([{"kind": "worker", "name": "a", "depends_on": [{"service": "zz"}]}], "service a depends on zz, which is not"),
        ([{"kind": "worker", "name": "a", "depends_on": [{"service": "a"}]}], "service a depends on itself"),
        (
            [{"kind": "worker", "name": "a", "aliases": ["b"]}, {"kind": "worker", "name": "b"}],
            "the alias b of service a is already the name or an alias of b",
        ),
        ([{"kind": "worker", "name": "a", "aliases": ["no spaces"]}], "aliases.0"),
        ([{"kind": "worker", "name": "a", "working_dir": "relative"}], "absolute path"),
        (
            [{"kind": "worker", "name": "a", "depends_on": [{"service": "a", "condition": "service_ready"}]}],
            "condition",
        ),
    ],
)
def test_bad_dependencies_and_aliases_are_refused_by_the_model(services, why):
    with pytest.raises(ValidationError) as err:
        ApplicationSpec.model_validate({"name": "x", "source": {"kind": "image", "image": "a"}, "services": services})
    assert why in str(err.value)


def state(status: str, code: int = 0, health: str | None = None, output: str = "") -> dict:
    found: dict = {"Status": status, "Running": status == "running", "ExitCode": code}
    if health is not None:
        found["Health"] = {"Status": health, "Log": [{"ExitCode": 1, "Output": output}] if output else []}
    return {"State": found}


@pytest.mark.parametrize(
    ("condition", "info", "expected"),
    [
        ("service_started", state("running"), compose.Look(met=True)),
        ("service_started", state("exited", 0), compose.Look(met=True)),
        ("service_started", state("created"), compose.Look(seen="service db is created")),
        ("service_healthy", state("running", health="healthy"), compose.Look(met=True)),
        (
            "service_healthy",
            state("running", health="starting", output="no ready file"),
            compose.Look(seen="service db is starting (the health command exited with code 1: no ready file)"),
        ),
        (
            "service_healthy",
            state("running", health="unhealthy", output="down"),
            compose.Look(failed="service db is unhealthy (the health command exited with code 1: down)"),
        ),
        (
            "service_healthy",
            state("running"),
            compose.Look(failed="service db has no healthcheck, which service_healthy needs"),
        ),
        (
            "service_healthy",
            state("exited", 3, health="starting"),
            compose.Look(failed="service db exited with code 3 before it was healthy"),
        ),
        ("service_completed_successfully", state("exited", 0), compose.Look(met=True)),
        (
            "service_completed_successfully",
            state("exited", 2),
            compose.Look(failed="service db did not complete successfully: it exited with code 2"),
        ),
        (
            "service_completed_successfully",
            state("running"),
            compose.Look(seen="service db is running, not completed yet"),
        ),
        ("service_started", None, compose.Look(failed="service db: its container is gone")),
    ],
)
def test_a_dependency_state_against_its_condition(condition, info, expected):
    assert compose.condition_look(condition, "db", info) == expected


def test_the_definition_changes_only_with_what_makes_the_container():
    spec = compose_spec()
    db = spec.services[1]
    same = definition(APP, spec, db, "berth/stats:v1")
    # another deployment, the web service changed: the db's container would be the same
    web_changed = compose_spec(
        services=[
            {**spec.services[0].model_dump(mode="json"), "command": ["serve", "--v2"]},
            *[s.model_dump(mode="json") for s in spec.services[1:]],
        ]
    )
    assert definition(APP, web_changed, web_changed.services[1], "berth/stats:v2") == same
    for change in ({"command": ["serve", "--other"]}, {"image": {"image": "berth/db:16"}}, {"user": "1000"}):
        changed = compose_spec(
            services=[
                spec.services[0].model_dump(mode="json"),
                {**db.model_dump(mode="json"), **change},
                spec.services[2].model_dump(mode="json"),
            ]
        )
        assert definition(APP, changed, changed.services[1], "berth/stats:v1") != same, change
    env_changed = compose_spec(env=[{"name": "MODE", "value": "other"}])
    assert definition(APP, env_changed, env_changed.services[1], "berth/stats:v1") != same
    # a service without its own image runs the deployment's: a new image is a new definition
    migrate = spec.services[2]
    assert definition(APP, spec, migrate, "berth/stats:v1") != definition(APP, spec, migrate, "berth/stats:v2")


def test_what_an_administrator_allowed_is_in_the_host_config():
    spec = compose_spec()
    db = spec.services[1].model_dump(mode="json")
    db["privileges"] = {
        "privileged": True,
        "cap_add": ["NET_ADMIN"],
        "devices": [{"source": "/dev/fuse", "target": "/dev/fuse"}],
        "security_opt": ["no-new-privileges:true"],
        "pid_host": True,
        "ipc_host": True,
    }
    others = [s.model_dump(mode="json") for s in spec.services]
    allowed = compose_spec(services=[others[0], db, others[2]])
    hc = container_spec(APP, DEP, allowed, allowed.services[1], 1, "img").body["HostConfig"]
    assert {k: hc[k] for k in ("Privileged", "CapAdd", "Devices", "SecurityOpt", "PidMode", "IpcMode")} == {
        "Privileged": True,
        "CapAdd": ["NET_ADMIN"],
        "Devices": [{"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse", "CgroupPermissions": "rwm"}],
        "SecurityOpt": ["no-new-privileges:true"],
        "PidMode": "host",
        "IpcMode": "host",
    }
    plain = container_spec(APP, DEP, spec, spec.services[1], 1, "img").body["HostConfig"]
    assert not {"Privileged", "CapAdd", "Devices", "SecurityOpt", "PidMode", "IpcMode"} & set(plain)


def test_a_secret_argument_is_put_in_place_only_in_the_create_body():
    spec = compose_spec()
    data = spec.model_dump(mode="json")  # as the scheduler receives it: the value sealed
    db = data["services"][1]
    db["command"] = ["serve", "--requirepass", "${REDIS_PASSWORD}"]
    db["entrypoint"] = ["/entry.sh", "--key=${KEY}"]
    db["secret_args"] = [
        {"argv": "command", "index": 2, "value": "pw-in-place"},
        {"argv": "entrypoint", "index": 1, "value": "--key=k3y"},
    ]
    received = ApplicationSpec.model_validate_json(ApplicationSpec.model_validate(data).model_dump_json())
    wire = received.model_dump_json()
    assert "pw-in-place" not in wire and "k3y" not in wire  # sealed on the bus
    svc = received.services[1]
    body = container_spec(APP, DEP, received, svc, 1, "berth/stats:v1").body
    assert body["Cmd"] == ["serve", "--requirepass", "pw-in-place"]
    assert body["Entrypoint"] == ["/entry.sh", "--key=k3y"]
    assert svc.command == ["serve", "--requirepass", "${REDIS_PASSWORD}"]  # the spec keeps the reference
    assert {"pw-in-place", "--key=k3y"} <= set(received.secret_values())


def test_a_services_own_container_limits_are_exact():
    data = compose_spec().model_dump(mode="json")
    data["services"][1]["host_limits"] = {
        "shm_size_bytes": 268435456,
        "ulimits": [{"name": "nofile", "soft": 20000, "hard": 40000}],
        "cap_drop": ["NET_RAW"],
    }
    spec = ApplicationSpec.model_validate(data)
    hc = container_spec(APP, DEP, spec, spec.services[1], 1, "berth/stats:v1").body["HostConfig"]
    assert (hc["ShmSize"], hc["Ulimits"], hc["CapDrop"]) == (
        268435456,
        [{"Name": "nofile", "Soft": 20000, "Hard": 40000}],
        ["NET_RAW"],
    )
    plain = container_spec(APP, DEP, compose_spec(), compose_spec().services[1], 1, "berth/stats:v1").body
    assert not {"ShmSize", "Ulimits", "CapDrop"} & set(plain["HostConfig"])


def test_a_services_hosts_resolvers_tmpfs_groups_sysctls_and_stop_signal_are_exact():
    data = compose_spec().model_dump(mode="json")
    data["services"][1]["host_limits"] = {
        "extra_hosts": ["host.docker.internal:host-gateway", "ldap.example:10.0.0.5"],
        "dns": ["192.168.203.254"],
        "tmpfs": {"/tmp": "", "/var/run/postgresql": "size=64m,mode=1777"},
        "group_add": ["988"],
        "sysctls": {"net.core.somaxconn": "1024"},
        "stop_signal": "SIGINT",
        "pids_limit": 200,
    }
    spec = ApplicationSpec.model_validate(data)
    body = container_spec(APP, DEP, spec, spec.services[1], 1, "berth/stats:v1").body
    hc = body["HostConfig"]
    assert {k: hc[k] for k in ("ExtraHosts", "Dns", "Tmpfs", "GroupAdd", "Sysctls", "PidsLimit")} == {
        "ExtraHosts": ["host.docker.internal:host-gateway", "ldap.example:10.0.0.5"],
        "Dns": ["192.168.203.254"],
        "Tmpfs": {"/tmp": "", "/var/run/postgresql": "size=64m,mode=1777"},
        "GroupAdd": ["988"],
        "Sysctls": {"net.core.somaxconn": "1024"},
        "PidsLimit": 200,
    }
    assert body["StopSignal"] == "SIGINT" and hc["Init"] is True  # compose's init: true is every container's
    plain = container_spec(APP, DEP, compose_spec(), compose_spec().services[1], 1, "berth/stats:v1").body
    assert "StopSignal" not in plain and not {"ExtraHosts", "Dns", "Tmpfs", "GroupAdd", "Sysctls", "PidsLimit"} & set(
        plain["HostConfig"]
    )
    for bad in ({"sysctls": {"kernel.shmmax": "1"}}, {"tmpfs": {"tmp": ""}}, {"extra_hosts": ["a b:1.2.3.4"]}):
        data["services"][1]["host_limits"] = bad
        with pytest.raises(ValidationError):
            ApplicationSpec.model_validate(data)
