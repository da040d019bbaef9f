"""The platform's layout as pure data: ports, child specs, environments, the restart policy."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from berth_cli.backoff import RestartPolicy
from berth_cli.datadir import ensure_secret
from berth_cli.layout import (
    DEFAULT_PORTS,
    SERVICE_NAMES,
    ChildSpec,
    Paths,
    is_supervisor,
    mentions_path,
    platform_env,
    resolve_ports,
    scrub_env,
    service_children,
)
from berth_cli.supervisor import Child, Supervisor


def test_default_ports():
    assert resolve_ports({}) == {
        "nats": 4222,
        "postgres": 5433,
        "proxy": 8080,
        "traefik_api": 8081,
        "api": 8420,
        "builder": 8421,
        "scheduler": 8422,
        "proxy-sync": 8423,
        "metrics": 8424,
        "notifier": 8425,
    }


def test_port_base_shifts_every_port_and_overrides_win():
    ports = resolve_ports({"BERTH_PORT_BASE": "30000", "BERTH_API_PORT": "31000", "BERTH_PROXY_HTTP_PORT": "31001"})
    assert ports == {
        "nats": 30000,  # 30001 stays unused: NATS' monitoring port is no longer opened
        "postgres": 30002,
        "proxy": 30003,
        "traefik_api": 30004,
        "api": 31000,
        "builder": 30006,
        "scheduler": 30007,
        "proxy-sync": 31001,
        "metrics": 30009,
        "notifier": 30010,
    }
    assert set(ports.values()).isdisjoint(DEFAULT_PORTS.values())


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BERTH_NATS_PORT": "http"}, "BERTH_NATS_PORT must be a port number"),
        ({"BERTH_PG_PORT": "70000"}, "BERTH_PG_PORT must be between 1 and 65535"),
        ({"BERTH_PORT_BASE": "65530"}, "BERTH_PORT_BASE is too high"),
        ({"BERTH_TRAEFIK_API_PORT": "4222"}, "port 4222 is set for both nats and traefik_api"),
    ],
)
def test_bad_ports_are_refused_naming_the_variable(env, message):
    with pytest.raises(ValueError, match=message):
        resolve_ports(env)


def test_split_children_get_only_their_own_database_role():
    ports = resolve_ports({"BERTH_PORT_BASE": "30000"})
    urls = {name: f"postgresql+asyncpg://berth_{name}:pw@127.0.0.1:30002/berth" for name in ports}
    common = {"BERTH_SECRET_KEY": "s"}
    passwords = {name: f"pw-{name}" for name in SERVICE_NAMES}
    children = service_children(Path("/venv/bin"), ports, urls, common, all_in_one=False, nats_passwords=passwords)
    assert [c.name for c in children] == ["api", "builder", "scheduler", "proxy-sync", "metrics", "notifier"]
    assert children[3] == ChildSpec(
        "proxy-sync",
        ["/venv/bin/berth-proxy-sync"],
        {
            "BERTH_SECRET_KEY": "s",
            "BERTH_DATABASE_URL": urls["proxy-sync"],
            "BERTH_HTTP_PORT": "30008",
            "BERTH_NATS_USER": "proxy-sync",
            "BERTH_NATS_PASSWORD": "pw-proxy-sync",
        },
        serves=["proxy-sync"],
    )
    for child in children:
        others = [u for n, u in urls.items() if n != child.name]
        others += [p for n, p in passwords.items() if n != child.name]
        assert not any(u in child.env.values() for u in others)
    # without passwords (a bus without users): no identity
    [api, *_] = service_children(Path("/venv/bin"), ports, urls, common, all_in_one=False)
    assert "BERTH_NATS_USER" not in api.env and "BERTH_NATS_PASSWORD" not in api.env


def test_all_in_one_is_one_child_with_a_role_and_port_per_schema():
    ports = resolve_ports({"BERTH_PORT_BASE": "30000"})
    urls = {name: f"url-{name}" for name in ports}
    passwords = {name: f"pw-{name}" for name in SERVICE_NAMES}
    [child] = service_children(
        Path("/venv/bin"), ports, urls, {"BERTH_SECRET_KEY": "s"}, all_in_one=True, nats_passwords=passwords
    )
    assert child == ChildSpec(
        "allinone",
        ["/venv/bin/berth-allinone"],
        {
            "BERTH_SECRET_KEY": "s",
            "BERTH_API_DATABASE_URL": "url-api",
            "BERTH_API_HTTP_PORT": "30005",
            "BERTH_API_NATS_USER": "api",
            "BERTH_API_NATS_PASSWORD": "pw-api",
            "BERTH_BUILDER_DATABASE_URL": "url-builder",
            "BERTH_BUILDER_HTTP_PORT": "30006",
            "BERTH_BUILDER_NATS_USER": "builder",
            "BERTH_BUILDER_NATS_PASSWORD": "pw-builder",
            "BERTH_SCHEDULER_DATABASE_URL": "url-scheduler",
            "BERTH_SCHEDULER_HTTP_PORT": "30007",
            "BERTH_SCHEDULER_NATS_USER": "scheduler",
            "BERTH_SCHEDULER_NATS_PASSWORD": "pw-scheduler",
            "BERTH_PROXY_DATABASE_URL": "url-proxy-sync",
            "BERTH_PROXY_HTTP_PORT": "30008",
            "BERTH_PROXY_NATS_USER": "proxy-sync",
            "BERTH_PROXY_NATS_PASSWORD": "pw-proxy-sync",
            "BERTH_METRICS_DATABASE_URL": "url-metrics",
            "BERTH_METRICS_HTTP_PORT": "30009",
            "BERTH_METRICS_NATS_USER": "metrics",
            "BERTH_METRICS_NATS_PASSWORD": "pw-metrics",
            "BERTH_NOTIFIER_DATABASE_URL": "url-notifier",
            "BERTH_NOTIFIER_HTTP_PORT": "30010",
            "BERTH_NOTIFIER_NATS_USER": "notifier",
            "BERTH_NOTIFIER_NATS_PASSWORD": "pw-notifier",
        },
        stop_timeout_s=40.0,
        serves=["api", "builder", "scheduler", "proxy-sync", "metrics", "notifier"],
    )


def test_platform_env():
    ports = resolve_ports({"BERTH_PORT_BASE": "30000"})
    assert platform_env(Paths(Path("/d")), ports, "s3cret", "0.0.0.0") == {
        "BERTH_SECRET_KEY": "s3cret",
        "BERTH_DATA_DIR": "/d",
        "BERTH_NATS_URL": "nats://127.0.0.1:30000",
        "BERTH_HTTP_HOST": "127.0.0.1",
        "BERTH_API_URL": "http://127.0.0.1:30005",
        "BERTH_TRAEFIK_DYNAMIC_DIR": "/d/traefik/dynamic",
        "BERTH_TRAEFIK_API_URL": "http://127.0.0.1:30004",
        "BERTH_PROXY_HOST": "0.0.0.0",
        "BERTH_PROXY_PORT": "30003",
        "PYTHONUNBUFFERED": "1",
    }


def test_the_admin_url_never_reaches_a_service():
    env = {
        "PATH": "/bin",
        "BERTH_DATABASE_URL": "postgresql://postgres:admin@db/x",
        "BERTH_API_DATABASE_URL": "stale",
        "BERTH_BUILDER_HTTP_PORT": "1",
        "BERTH_PORT_BASE": "30000",
        "BERTH_LOG_LEVEL": "DEBUG",
        "BERTH_SUPERVISED_BY": "/another/platform",
        "BERTH_NATS_USER": "admin",
        "BERTH_NATS_PASSWORD": "x",
        "BERTH_API_NATS_PASSWORD": "y",
    }
    assert scrub_env(env) == {"PATH": "/bin", "BERTH_LOG_LEVEL": "DEBUG"}


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["/v/bin/python", "-m", "berth_cli.supervise", "--data-dir", "/data/x", "--all-in-one"], True),
        (["/v/bin/python", "-m", "berth_cli.supervise", "--data-dir", "/data/x2"], False),
        (["make", "down", "DATA_DIR=/data/x"], False),
        (["/v/bin/berth", "down", "--data-dir", "/data/x"], False),
        (["/v/bin/python", "-m", "berth_cli.supervise", "--data-dir"], False),
    ],
)
def test_is_supervisor(argv, expected):
    assert is_supervisor(argv, Path("/data/x")) is expected


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["nats-server", "-sd", "/data/x/nats"], True),
        (["traefik", "--configFile=/data/x/traefik/static.yml"], True),
        (["python", "-m", "berth_cli.supervisor", "--data-dir", "/data/x"], True),
        (["postgres", "-D", "/data/x2/postgres"], False),
        (["postgres", "-D", "/data"], False),
        ([], False),
    ],
)
def test_mentions_path(argv, expected):
    assert mentions_path(argv, Path("/data/x")) is expected


def test_restart_backoff_doubles_up_to_the_cap():
    policy = RestartPolicy()
    assert [policy.delay(n) for n in range(0, 10)] == [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert policy.delay(10_000) == 30.0


def test_a_stable_run_resets_the_backoff():
    policy = RestartPolicy(stable_after_s=60)
    failures = 0
    for _ in range(5):
        failures = policy.failures_after_exit(failures, uptime_s=0.2)
    assert failures == 5
    assert policy.failures_after_exit(failures, uptime_s=61) == 1
    assert policy.delay(policy.failures_after_exit(failures, uptime_s=61)) == 0.5


def test_secret_made_once_private_and_reused(tmp_path):
    path = tmp_path / "secret.key"
    first = ensure_secret(path)
    assert len(first) == 64  # 48 random bytes, urlsafe base64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_secret(path) == first


def test_state_file_carries_no_secret(tmp_path):
    sup = Supervisor(tmp_path, env={"BERTH_PORT_BASE": "30000"})
    spec = ChildSpec("api", ["/bin/true"], {"BERTH_SECRET_KEY": "very-secret", "BERTH_DATABASE_URL": "pg://u:pw-xyz@h"})
    sup.children["api"] = Child(spec, tmp_path / "api.log")
    text = json.dumps(sup.snapshot())
    assert "very-secret" not in text and "pw-xyz" not in text
    assert json.loads(text)["children"]["api"]["argv"] == ["/bin/true"]
    assert json.loads(text)["components"]["api"] == {
        "probe": {
            "kind": "http",
            "url": "http://127.0.0.1:30005/readyz",
            "host": "",
            "port": 0,
            "user": "",
            "secret": "",
        },
        "process": "api",
        "log": str(tmp_path.resolve() / "logs" / "api.log"),
    }
    # nats is asked as the operator over its client port (no monitoring port); its password stays in its file
    assert json.loads(text)["components"]["nats"]["probe"] == {
        "kind": "nats",
        "url": "",
        "host": "127.0.0.1",
        "port": 30000,
        "user": "operator",
        "secret": str(tmp_path.resolve() / "nats-auth" / "operator.password"),
    }


def test_the_local_postgres_settings_reach_its_command_line_and_nothing_else_does():
    from berth_cli.components import PG_SMALL, pg_setting_args

    assert pg_setting_args(PG_SMALL) == [
        "-c", "io_method=sync", "-c", "max_logical_replication_workers=0", "-c", "bgwriter_lru_maxpages=0"
    ]  # fmt: skip
    for bad in ({"io_method": "sync -c x=1"}, {"shared_buffers": "16MB\n"}, {"a=b": "1"}, {"": "1"}):
        with pytest.raises(ValueError, match="not a Postgres setting"):
            pg_setting_args(bad)


def test_the_supervisor_process_loads_neither_openssl_nor_what_it_has_no_use_for():
    """``python -m berth_cli.supervise`` keeps rich, greenlet, httpx and ssl out, and its own modules do not load
    OpenSSL's libcrypto (``_hashlib``): resident memory of the one process that runs all the time."""
    code = (
        "import runpy, sys\n"
        "sys.argv = ['berth_cli.supervise', '--help']\n"
        "try:\n"
        "    runpy.run_module('berth_cli.supervise', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in ('_hashlib', '_ssl', 'rich', 'greenlet', 'httpx', 'structlog') if sys.modules.get(m)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "['structlog']"
