"""docker-compose.yml (the production control plane) passes `docker-compose config` and demands its secrets."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from berth_cli import components
from berth_cli.main import app

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = {"BERTH_SECRET_KEY": "k" * 64, "BERTH_POSTGRES_PASSWORD": "pg-secret-pw"}
SERVICES = {"api", "builder", "scheduler", "proxy-sync", "metrics", "notifier"}
# nats' command in the container: the generated configuration, JetStream on its volume, no monitoring port
NATS_COMMAND = ["-c", "/etc/nats/berth/nats.conf", "-js", "-sd", "/data", "-n", "berth"]


def compose(
    env: dict[str, str], *args: str, files: tuple[str, ...] = ("docker-compose.yml",)
) -> subprocess.CompletedProcess[str]:
    argv = [components.bin_path("docker-compose")]
    for name in files:
        argv += ["-f", str(ROOT / name)]
    argv += ["config", *args]
    # a clean environment: only what the test gives, so a developer's variables cannot make it pass
    return subprocess.run(argv, env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True, cwd=ROOT)


def test_config_passes_with_the_required_variables():
    proc = compose(REQUIRED, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    cfg = json.loads(proc.stdout)
    services = cfg["services"]
    assert set(services) == {"nats", "nats-config", "nats-ready", "postgres", "traefik", "provision", *SERVICES}
    # one image for every Berth service, the service chosen by its command
    images = {services[s]["image"] for s in {*SERVICES, "provision", "nats-config", "nats-ready"}}
    assert images == {"berth:latest"}
    assert {services[s]["build"]["dockerfile"] for s in SERVICES} == {"deploy/Dockerfile"}
    assert {s: services[s]["command"] for s in SERVICES} == {s: ["service", "run", s] for s in SERVICES}
    assert services["provision"]["command"] == ["db", "provision"]
    # the bus: nats-server on the configuration nats-config writes (users, permissions, the system account;
    # no anonymous access) and no monitoring port; nats-ready probes it as `berth up` does
    assert services["nats-config"]["command"] == ["bus", "config", "/nats-config/nats.conf"]
    assert services["nats"]["command"] == NATS_COMMAND
    assert services["nats"]["depends_on"]["nats-config"]["condition"] == "service_completed_successfully"
    mounts = {v["source"]: v["target"] for v in services["nats"]["volumes"]}
    assert mounts == {"nats-data": "/data", "nats-config": "/etc/nats/berth"}
    assert "healthcheck" not in services["nats"] and "ports" not in services["nats"]
    assert "8222" not in json.dumps(cfg)  # nats' monitoring port, nowhere
    ready = services["nats-ready"]
    assert ready["command"] == ["bus", "ready", "--timeout", "120"]
    assert ready["environment"] == {
        "BERTH_SECRET_KEY": REQUIRED["BERTH_SECRET_KEY"],
        "BERTH_NATS_URL": "nats://nats:4222",
    }
    assert ready["depends_on"] == {"nats": {"condition": "service_started", "required": True}}
    assert ready["restart"] == "no"
    for name, svc in services.items():
        if name not in ("provision", "nats-config", "nats-ready", "nats"):
            assert svc["healthcheck"]["test"][0] == "CMD", name
        if name not in ("provision", "nats-config", "nats-ready"):
            assert svc["restart"] == "unless-stopped", name
    for name in SERVICES:
        deps = services[name]["depends_on"]
        assert deps["provision"]["condition"] == "service_completed_successfully"
        assert deps["nats-ready"]["condition"] == "service_completed_successfully"
        assert deps["nats"]["condition"] == "service_started"
        env = services[name]["environment"]
        # the superuser password reaches no service: each derives its own role from the secret key
        assert "pg-secret-pw" not in json.dumps(services[name])
        assert env["BERTH_SECRET_KEY"] == REQUIRED["BERTH_SECRET_KEY"]
        assert env["BERTH_ENV"] == "production"
    assert "pg-secret-pw" in services["provision"]["environment"]["BERTH_DATABASE_URL"]
    assert {v["target"] for v in services["postgres"]["volumes"]} == {"/var/lib/postgresql/data"}
    assert set(cfg["volumes"]) >= {"berth-data", "nats-data", "postgres-data", "traefik-dynamic"}


def test_the_cluster_override_runs_the_bus_on_three_nats_nodes():
    """docker-compose.cluster.yml: three nodes on the one generated configuration (with the cluster's
    routes), each with its own store; every service lists the nodes and asks for three copies of a stream."""
    proc = compose(REQUIRED, "--format", "json", files=("docker-compose.yml", "docker-compose.cluster.yml"))
    assert proc.returncode == 0, proc.stderr
    cfg = json.loads(proc.stdout)
    services = cfg["services"]
    nodes = ["nats", "nats-2", "nats-3"]
    assert set(services) == {*nodes, "nats-config", "nats-ready", "postgres", "traefik", "provision", *SERVICES}
    assert services["nats-config"]["command"] == [
        *("bus", "config", "/nats-config/nats.conf"),
        *("--cluster-routes", "nats:6222,nats-2:6222,nats-3:6222"),
    ]
    for node, name in {"nats": "nats-1", "nats-2": "nats-2", "nats-3": "nats-3"}.items():
        assert services[node]["command"] == [*NATS_COMMAND[:-1], name], node  # each server_name its own
        mounts = {v["source"]: (v["target"], v.get("read_only", False)) for v in services[node]["volumes"]}
        assert mounts["nats-config"] == ("/etc/nats/berth", True), node
        assert services[node]["depends_on"]["nats-config"]["condition"] == "service_completed_successfully"
        assert "healthcheck" not in services[node], node  # nats-ready probes every node
    assert "8222" not in json.dumps(cfg)
    ready = services["nats-ready"]
    assert ready["environment"]["BERTH_NATS_URL"] == "nats://nats:4222,nats://nats-2:4222,nats://nats-3:4222"
    assert {n: d["condition"] for n, d in ready["depends_on"].items()} == dict.fromkeys(nodes, "service_started")
    stores = {next(v["source"] for v in services[n]["volumes"] if v["target"] == "/data") for n in nodes}
    assert stores == {"nats-data", "nats-data-2", "nats-data-3"}
    assert set(cfg["volumes"]) >= stores
    for name in SERVICES:
        env = services[name]["environment"]
        assert env["BERTH_NATS_URL"] == "nats://nats:4222,nats://nats-2:4222,nats://nats-3:4222", name
        assert env["BERTH_NATS_REPLICAS"] == "3", name
        assert env["BERTH_SECRET_KEY"] == REQUIRED["BERTH_SECRET_KEY"], name  # the base's settings kept
        assert {"nats", "nats-2", "nats-3", "nats-ready", "provision"} <= set(services[name]["depends_on"]), name


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_config_fails_naming_a_missing_secret(missing):
    env = {k: v for k, v in REQUIRED.items() if k != missing}
    proc = compose(env)
    assert proc.returncode != 0
    assert f"required variable {missing} is missing" in proc.stderr


def test_the_traefik_config_and_dockerfile_it_references_exist():
    assert (ROOT / "deploy" / "compose" / "traefik.yml").is_file()
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            for src in line.split()[1:-1]:
                assert (ROOT / src).exists(), src
    assert 'ENTRYPOINT ["berth"]' in dockerfile


def test_every_compose_command_is_a_berth_command():
    runner = CliRunner()
    for service in sorted(SERVICES):
        result = runner.invoke(app, ["service", "run", service, "--help"])
        assert result.exit_code == 0, result.output
    assert runner.invoke(app, ["db", "provision", "--help"]).exit_code == 0
    assert runner.invoke(app, ["bus", "ready", "--help"]).exit_code == 0
    bad = runner.invoke(app, ["service", "run", "nosuch"], env={"BERTH_DATABASE_URL": "postgresql://h/db"})
    assert bad.exit_code != 0
