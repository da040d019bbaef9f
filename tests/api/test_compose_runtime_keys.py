"""Compose keys the catalogue sweeps found refused though users want them, translated exactly (each file
normalised by the real parser first): ``read_only``, ``deploy.resources.reservations``, one named volume at
two paths of a service, ``secrets`` (top-level and a service's, short and long syntax), and the reason an
``internal`` network is refused. The deployment's snapshot renders each secret from the application's
variables, and shows it masked."""

from __future__ import annotations

import json

import pytest

from berth_common import sealing
from tests.api.conftest import make_app
from tests.api.test_compose_translate import _refusal, _translated
from tests.api.test_projects import problem

RUNTIME = """
services:
  db:
    image: postgres:16
    read_only: true
    deploy:
      resources:
        limits: {memory: 512m}
        reservations: {cpus: '0.25', memory: 128m}
"""


def test_read_only_and_reservations_are_the_containers_own_settings() -> None:
    got = _translated(RUNTIME)
    (db,) = got["services"]
    assert db["host_limits"] == {"read_only_rootfs": True, "reservations": {"memory_mb": 128, "cpus": 0.25}}
    assert db["limits"] == {"memory_mb": 512}
    assert got["notes"] == [
        "services/db/deploy/resources/reservations/cpus: kept for a Swarm, which reserves the cores where it "
        "places a task; a single engine has no CPU reservation (a CPU limit is deploy.resources.limits.cpus)"
    ]
    plain = _translated("services:\n  db:\n    image: postgres:16\n    read_only: false\n")["services"][0]
    assert "host_limits" not in plain


def test_a_reservation_above_the_limit_and_a_device_reservation_are_refused_by_name() -> None:
    err = _refusal(RUNTIME.replace("memory: 128m", "memory: 1g"))
    assert err.spot == "services/db/deploy/resources/reservations/memory" and "at most" in err.why
    gpu = RUNTIME.replace("memory: 128m}", "memory: 128m, devices: [{capabilities: [gpu]}]}")
    err = _refusal(gpu)
    assert err.spot == "services/db/deploy/resources/reservations/devices" and "server's devices" in err.why


def test_one_volume_at_two_paths_of_a_service_is_two_mounts() -> None:
    # Coolify's and Dokploy's templates mount one data volume as a data and a config directory
    text = "services:\n  app:\n    image: x\n    volumes: [data:/var/lib/app, data:/etc/app]\nvolumes:\n  data: {}\n"
    (app,) = _translated(text)["services"]
    assert app["volumes"] == [
        {"name": "data", "path": "/var/lib/app", "single_writer": True},
        {"name": "data", "path": "/etc/app", "single_writer": True},
    ]
    assert app["strategy"] == "recreate"


SECRETS = """
services:
  db:
    image: postgres:16
    environment: {POSTGRES_PASSWORD_FILE: /run/secrets/db_password}
    secrets:
      - db_password
      - source: api_key
        target: api.key
        mode: 0400
      - source: api_key
        target: /etc/app/key
secrets:
  db_password:
    file: ./db_password.txt
  api_key:
    environment: API_KEY
"""


def test_secrets_are_secret_files_of_the_applications_variables() -> None:
    got = _translated(SECRETS)
    (db,) = got["services"]
    assert db["secrets"] == [
        {"name": "db_password", "variable": "db_password", "target": "/run/secrets/db_password", "mode": 0o444},
        {"name": "api_key", "variable": "API_KEY", "target": "/run/secrets/api.key", "mode": 0o400},
        {"name": "api_key", "variable": "API_KEY", "target": "/etc/app/key", "mode": 0o444},
    ]
    assert got["notes"] == ["secrets/db_password/file: not read: the value is the application's variable db_password"]


@pytest.mark.parametrize(
    ("old", "new", "spot"),
    [
        ("        mode: 0400\n", "        mode: 0400\n        uid: '1000'\n", "services/db/secrets/1/uid"),
        ("    environment: API_KEY\n", "    external: true\n", "secrets/api_key/external"),
        (
            "    file: ./db_password.txt\n",
            "    file: ./db_password.txt\n    driver: vault\n",
            "secrets/db_password/driver",
        ),
    ],
)
def test_what_a_secret_cannot_carry_is_refused_by_name(old: str, new: str, spot: str) -> None:
    assert old in SECRETS
    assert _refusal(SECRETS.replace(old, new)).spot == spot


NETWORKS = """
services:
  web:
    image: x
    ports: ['8080']
    networks: [front]
  api:
    image: x
    networks: [front, back]
  db:
    image: x
    networks: [back]
networks:
  front: {}
  back:
    internal: true
"""


def test_a_service_on_internal_networks_only_sits_on_the_applications_internal_network() -> None:
    got = _translated(NETWORKS)
    assert {s["name"]: s.get("internal_network") for s in got["services"]} == {
        "web": None,
        "api": "also",
        "db": "only",
    }
    assert got["notes"] == [
        "networks/back: mapped to the application's internal network (nothing forwarded out)",
        "networks/front: mapped to the application's private network",
    ]
    err = _refusal(NETWORKS.replace("    networks: [front]\n", "    networks: [back]\n"))
    assert err.spot == "services/web/networks" and "reached by the proxy" in err.why


async def test_the_snapshot_renders_each_secret_file_and_shows_it_masked(client, members, scheduler) -> None:
    env = [
        {"name": "db_password", "value": "s3cr3t-db-pw", "secret": True},
        {"name": "API_KEY", "value": "k3y-value", "secret": True},
    ]
    body = {"name": "stack", "compose": {"inline": SECRETS}, "env": env}
    app = await make_app(client, members.developer, body)
    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
    assert r.status_code == 202, r.text
    (db,) = r.json()["spec"]["services"]
    assert db["secret_files"] == [
        {"target": "/run/secrets/db_password", "mode": 0o444, "value": None},
        {"target": "/run/secrets/api.key", "mode": 0o400, "value": None},
        {"target": "/etc/app/key", "mode": 0o444, "value": None},
    ]
    assert "s3cr3t-db-pw" not in r.text and "k3y-value" not in r.text
    assert "s3cr3t-db-pw" not in json.dumps(app) and "k3y-value" not in json.dumps(app)
    (cmd,) = await scheduler.wait_for("cmd.deployment.start", 1)
    assert "s3cr3t-db-pw" not in json.dumps(cmd.data) and "k3y-value" not in json.dumps(cmd.data)
    (sent,) = cmd.data["spec"]["services"]
    opened = [
        (f["target"], f["mode"], sealing.unseal(f["value"], f"berth/secret-file/{f['target']}"))
        for f in sent["secret_files"]
    ]
    assert opened == [
        ("/run/secrets/db_password", 0o444, "s3cr3t-db-pw"),
        ("/run/secrets/api.key", 0o400, "k3y-value"),
        ("/etc/app/key", 0o444, "k3y-value"),
    ]


async def test_a_secret_of_a_variable_the_application_lacks_is_not_deployable(client, members) -> None:
    env = [{"name": "db_password", "value": "s3cr3t-db-pw", "secret": True}]
    body = {"name": "stack", "compose": {"inline": SECRETS}, "env": env}
    app = await make_app(client, members.developer, body)
    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
    found = problem(r, 409)
    assert "secret api_key of compose service db is the application's variable API_KEY" in found["detail"]
