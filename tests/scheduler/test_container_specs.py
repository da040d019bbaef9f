"""Container specs are data: the exact Docker Engine API create bodies, compared whole."""

from __future__ import annotations

import pytest

from berth_common.catalogue import ApplicationSpec
from berth_scheduler.domain import names
from berth_scheduler.domain.containers import container_spec, replica_slots

DEP = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"


def app_spec(**over) -> ApplicationSpec:
    data = {
        "name": "shop",
        "source": {"kind": "image", "image": "berth/shop:v1"},
        "services": [
            {
                "kind": "web",
                "name": "web",
                "port": 8080,
                "replicas": 2,
                "health_path": "/up",
                "hosts": ["web-shop.localhost"],
            },
            {
                "kind": "worker",
                "name": "jobs",
                "command": ["sh", "-c", "run-jobs"],
                "health_command": ["test", "-f", "/tmp/ok"],
            },
        ],
        "env": [{"name": "MODE", "value": "prod"}, {"name": "DB_PASSWORD", "value": "hunter2", "secret": True}],
        "limits": {"cpus": 0.5, "memory_mb": 256},
        "stop_timeout_s": 7,
    }
    data.update(over)
    return ApplicationSpec.model_validate(data)


def test_web_replica_body_is_exact():
    spec = app_spec()
    web = spec.services[0]
    cs = container_spec("app-1", DEP, spec, web, 2, "berth/shop:v1", host_port=41234)
    assert cs.name == "berth-shop-web-0f1e2d3c-2"
    assert cs.upstream == "http://127.0.0.1:41234"
    assert cs.body == {
        "Image": "berth/shop:v1",
        "Env": ["MODE=prod", "DB_PASSWORD=hunter2", "PORT=8080"],
        "Labels": {
            "berth.app": "app-1",
            "berth.service": "web",
            "berth.deployment": DEP,
            "berth.replica": "2",
            "berth.kind": "web",
            "berth.managed": "true",
        },
        "StopTimeout": 7,
        "ExposedPorts": {"8080/tcp": {}},
        "HostConfig": {
            "RestartPolicy": {"Name": "unless-stopped"},
            "Init": True,
            "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}},
            "NanoCpus": 500_000_000,
            "Memory": 256 * 1024 * 1024,
            "PortBindings": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "41234"}]},
        },
    }


def test_worker_body_has_command_no_ports_and_network_when_asked():
    spec = app_spec(network="berth-shop", restart_policy="on-failure", limits={})
    worker = spec.services[1]
    cs = container_spec("app-1", DEP, spec, worker, 1, "berth/shop:v1")
    assert cs.name == "berth-shop-jobs-0f1e2d3c-1"
    assert cs.health_command == ("test", "-f", "/tmp/ok")
    assert cs.upstream is None
    assert cs.body == {
        "Image": "berth/shop:v1",
        "Cmd": ["sh", "-c", "run-jobs"],
        "Env": ["MODE=prod", "DB_PASSWORD=hunter2"],
        "Labels": {
            "berth.app": "app-1",
            "berth.service": "jobs",
            "berth.deployment": DEP,
            "berth.replica": "1",
            "berth.kind": "worker",
            "berth.managed": "true",
        },
        "StopTimeout": 7,
        "HostConfig": {
            "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 5},
            "Init": True,
            "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}},
        },
        "NetworkingConfig": {"EndpointsConfig": {"berth-shop": {"Aliases": ["jobs.shop"]}}},
    }


def test_service_limits_override_the_application_and_user_port_wins():
    spec = app_spec(env=[{"name": "PORT", "value": "9000"}])
    web = spec.services[0].model_copy(
        update={"limits": spec.limits.model_copy(update={"cpus": 2.0, "memory_mb": None})}
    )
    body = container_spec("a", DEP, spec, web, 1, "img:1", host_port=40000).body
    assert body["HostConfig"]["NanoCpus"] == 2_000_000_000
    assert "Memory" not in body["HostConfig"]
    assert body["Env"] == ["PORT=9000"]


def test_web_replica_needs_a_host_port():
    spec = app_spec()
    with pytest.raises(ValueError, match="host port"):
        container_spec("a", DEP, spec, spec.services[0], 1, "img:1")
    with pytest.raises(names.InvalidNameError):
        container_spec("a", DEP, spec, spec.services[0], 1, "img:1", host_port=70000)


def test_replica_slots_in_stable_order():
    spec = app_spec()
    assert [(s.name, n) for s, n in replica_slots(spec)] == [("web", 1), ("web", 2), ("jobs", 1)]


@pytest.mark.parametrize(
    ("app", "service", "dep", "replica", "expected"),
    [
        ("shop", "web", DEP, 1, "berth-shop-web-0f1e2d3c-1"),
        ("a", "b", "12345678-90ab-cdef-1234-567890abcdef", 12, "berth-a-b-12345678-12"),
        ("my-app", "api-v2", "DEP", 3, f"berth-my-app-api-v2-{names.short_id('DEP')}-3"),
    ],
)
def test_container_names(app, service, dep, replica, expected):
    assert names.container_name(app, service, dep, replica) == expected
    assert names.CONTAINER_NAME_RE.fullmatch(expected)


@pytest.mark.parametrize(
    ("app", "service", "replica"),
    [
        ("Shop", "web", 1),
        ("shop", "-web", 1),
        ("shop", "web", 0),
        ("shop", "we b", 1),
        ("a" * 33, "web", 1),
        ("shop", "web;rm", 1),
    ],
)
def test_bad_container_names_are_refused(app, service, replica):
    with pytest.raises(names.InvalidNameError):
        names.container_name(app, service, DEP, replica)


def test_short_ids_are_stable_and_hash_odd_ids():
    assert names.short_id(DEP) == "0f1e2d3c"
    odd = names.short_id("Deploy #7!")
    assert len(odd) == 8 and odd == names.short_id("Deploy #7!") and odd != names.short_id("Deploy #8!")


def test_route_ids_are_stable_and_valid():
    assert names.route_id("0123abcd", "web") == "app-0123abcd-web"
    weird = names.route_id("App/ID with spaces", "web")
    assert names.ROUTE_ID_RE.fullmatch(weird) and weird == names.route_id("App/ID with spaces", "web")
    assert names.image_tag("shop", DEP) == "berth/shop:0f1e2d3c"


def test_redact_replaces_longest_secret_first():
    assert names.redact("pw=hunter2 and hunter", ["hunter", "hunter2", ""]) == "pw=[redacted] and [redacted]"


def test_team_label_scopes_the_container_for_team_wide_alert_rules():
    from berth_scheduler.domain.containers import labels

    assert labels("app-1", "web", DEP, 1, "web", "team-7") == {
        "berth.team": "team-7",
        "berth.app": "app-1",
        "berth.service": "web",
        "berth.deployment": DEP,
        "berth.replica": "1",
        "berth.kind": "web",
        "berth.managed": "true",
    }
    assert "berth.team" not in labels("app-1", "web", DEP, 1, "web")


def test_dotted_variable_names_reach_the_container_as_docker_takes_them():
    """Elasticsearch reads ``discovery.type``; Docker's ``Env`` carries any name without '='."""
    spec = app_spec(env=[{"name": "discovery.type", "value": "single-node"}, {"name": "http.cors-on", "value": "1"}])
    body = container_spec("a", DEP, spec, spec.services[0], 1, "img:1", host_port=40000).body
    assert body["Env"] == ["discovery.type=single-node", "http.cors-on=1", "PORT=8080"]


def test_tty_and_stdin_open_are_dockers_tty_and_open_stdin():
    """Compose's ``tty`` / ``stdin_open`` (a game server's console, ClickHouse's tools) reach the create body."""
    console = {"kind": "worker", "name": "jobs", "command": ["sh", "-c", "run-jobs"], "tty": True, "stdin_open": True}
    spec = app_spec(network="berth-shop", limits={}, services=[console])
    cs = container_spec("app-1", DEP, spec, spec.services[0], 1, "berth/shop:v1")
    assert cs.body == {
        "Image": "berth/shop:v1",
        "Cmd": ["sh", "-c", "run-jobs"],
        "Env": ["MODE=prod", "DB_PASSWORD=hunter2"],
        "Tty": True,
        "OpenStdin": True,
        "Labels": {
            "berth.app": "app-1",
            "berth.service": "jobs",
            "berth.deployment": DEP,
            "berth.replica": "1",
            "berth.kind": "worker",
            "berth.managed": "true",
        },
        "StopTimeout": 7,
        "HostConfig": {
            "RestartPolicy": {"Name": "unless-stopped"},
            "Init": True,
            "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}},
        },
        "NetworkingConfig": {"EndpointsConfig": {"berth-shop": {"Aliases": ["jobs.shop"]}}},
    }
    plain = container_spec("app-1", DEP, spec, app_spec().services[1], 1, "berth/shop:v1").body
    assert "Tty" not in plain and "OpenStdin" not in plain
