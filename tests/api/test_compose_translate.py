"""The translation of compose files into Berth's services (``berth_api.domain.compose``), compared exactly.

Each fixture is normalised by the real parser first (``docker-compose config``, a fraction of a second), as
the api does; what is tested here is the pure translation of its output: a Plausible-shaped stack (web,
PostgreSQL, a ClickHouse-like store, a worker), healthchecks, depends_on conditions, volumes, limits, hosts,
and every refused key by name.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from pathlib import Path
from typing import Any

import pytest

from berth_api.adapters.compose_parser import normalise
from berth_api.domain.compose import ComposeRefusal, HostMap, Policy, precheck, secret_refs, start_order, translate

DATA = Path(__file__).parent / "data" / "compose"
APP = {
    "image": "plausible/analytics:v2.1",
    "environment": [
        {"name": "BASE_URL", "value": "https://stats.example.com"},
        {"name": "DATABASE_URL", "value": "postgres://postgres@plausible_db:5432/plausible"},
        {"name": "SECRET_KEY_BASE", "value": None},
    ],
}
PLAUSIBLE = {
    "services": [
        {
            "kind": "web",
            "name": "plausible",
            "replicas": 2,
            "port": 8000,
            "domains": [],
            "health_path": "/api/health",
            "command": ["sh", "-c", "/entrypoint.sh db migrate && /entrypoint.sh run"],
            "limits": {"cpus": 1.5, "memory_mb": 1024},
            **APP,
            "health": {
                "interval": 10.0,
                "timeout": 5.0,
                "start_period": 60.0,
                "retries": 5,
                "command": ["wget", "-q", "--spider", "http://127.0.0.1:8000/api/health"],
            },
            "depends_on": [
                {"service": "migrate", "condition": "service_completed_successfully"},
                {"service": "plausible-db", "condition": "service_healthy"},
                {"service": "plausible-events-db", "condition": "service_healthy"},
            ],
            "restart": "unless-stopped",
        },
        {
            "kind": "worker",
            "name": "migrate",
            "replicas": 1,
            "health_command": None,
            "command": ["/entrypoint.sh", "db", "migrate"],
            **APP,
            "depends_on": [{"service": "plausible-db", "condition": "service_started"}],
            "restart": "no",
        },
        {
            "kind": "worker",
            "name": "plausible-db",
            "replicas": 1,
            "health_command": ["/bin/sh", "-c", "pg_isready -U postgres"],
            "command": None,
            "limits": {"memory_mb": 512},
            "volumes": [{"name": "db-data", "path": "/var/lib/postgresql/data", "single_writer": True}],
            "strategy": "recreate",
            "image": "postgres:16-alpine",
            "environment": [{"name": "POSTGRES_PASSWORD", "value": None}],
            "health": {"start_period": 60.0},
            "aliases": ["plausible_db"],
            "restart": "unless-stopped",
        },
        {
            "kind": "worker",
            "name": "plausible-events-db",
            "replicas": 1,
            "health_command": [
                "/bin/sh",
                "-c",
                "wget --no-verbose --tries=1 -O - http://127.0.0.1:8123/ping || exit 1",
            ],
            "command": None,
            "volumes": [{"name": "event-data", "path": "/var/lib/clickhouse", "single_writer": True}],
            "strategy": "recreate",
            "image": "clickhouse/clickhouse-server:24.3-alpine",
            "stop_grace_s": 30.0,
            "aliases": ["plausible_events_db"],
            "restart": "unless-stopped",
        },
    ],
    "start_order": [["plausible-db", "plausible-events-db"], ["migrate"], ["plausible"]],
    "restart_policy": "unless-stopped",
    "stop_timeout_s": 30,
    "notes": ["services/plausible/ports/0/published: not carried: Berth routes hosts through its proxy, no host port"],
}


def _translated(text: str, variables: dict[str, str] | None = None, **kw: Any) -> dict[str, Any]:
    order = precheck(text)
    found = asyncio.run(normalise(text, variables or {}))
    return translate(found.model, order, **kw)


def _refusal(text: str, **kw: Any) -> ComposeRefusal:
    with pytest.raises(ComposeRefusal) as caught:
        _translated(text, **kw)
    return caught.value


def test_a_plausible_shaped_stack_translates_exactly() -> None:
    assert _translated((DATA / "plausible.yml").read_text()) == PLAUSIBLE


def test_hosts_name_the_web_services_and_their_ports() -> None:
    hosts = [
        HostMap("plausible", 8000, "stats.example.com"),
        HostMap("plausible", 8000, "www.stats.example.com"),
        HostMap("plausible_events_db", 8123),
    ]
    got = _translated((DATA / "plausible.yml").read_text(), hosts=hosts)
    web = {s["name"]: (s["kind"], s.get("port"), s.get("domains"), s.get("health_path")) for s in got["services"]}
    assert web == {
        "plausible": ("web", 8000, ["stats.example.com", "www.stats.example.com"], "/api/health"),
        "migrate": ("worker", None, None, None),
        "plausible-db": ("worker", None, None, None),
        "plausible-events-db": ("web", 8123, [], "/ping"),
    }
    assert _refusal((DATA / "plausible.yml").read_text(), hosts=[HostMap("nope", 80)]).spot == "hosts/0/service"
    two = [HostMap("plausible", 8000), HostMap("plausible", 9000)]  # a second port: one the service declares
    assert _refusal((DATA / "plausible.yml").read_text(), hosts=two).spot == "hosts/1/port"


def test_the_default_host_goes_to_the_first_service_with_a_port_in_file_order() -> None:
    text = """
services:
  zeta:
    image: busybox
    expose: ["9000"]
  alpha:
    image: busybox
    ports: ["8080"]
"""
    got = _translated(text)
    assert [(s["name"], s["kind"], s.get("port")) for s in got["services"]] == [
        ("zeta", "web", 9000),
        ("alpha", "worker", None),
    ]
    assert got["notes"] == []


def test_escaped_dollars_reach_the_container_as_dollars() -> None:
    text = "services:\n  a:\n    image: x\n    command: [echo, $$HOME]\n    environment: {P: a$$b}\n"
    (a,) = _translated(text)["services"]
    assert a["command"] == ["echo", "$HOME"] and a["environment"] == [{"name": "P", "value": "a$b"}]


def test_a_shared_volume_is_not_single_writer_and_a_replicated_service_rolls() -> None:
    text = """
services:
  app:
    image: busybox
    deploy: {replicas: 3}
    volumes: [media:/media]
  thumbs:
    image: busybox
    volumes: [media:/srv/media, "/srv/berth/cache:/cache:ro", "uploads:/uploads:ro"]
  uploader:
    image: busybox
    volumes: [uploads:/uploads]
volumes:
  media: {}
  uploads: {}
"""
    got = _translated(text, policy=Policy(bind_allow=("/srv/berth",)))
    app, thumbs, uploader = got["services"]
    assert app["volumes"] == [{"name": "media", "path": "/media"}] and "strategy" not in app
    assert thumbs["volumes"] == [
        {"name": "media", "path": "/srv/media"},
        {"name": "uploads", "path": "/uploads", "read_only": True},  # it reads what uploader writes
    ]
    assert "strategy" not in thumbs
    assert uploader["volumes"] == [{"name": "uploads", "path": "/uploads"}]  # shared: not single-writer
    assert thumbs["binds"] == [{"host_path": "/srv/berth/cache", "path": "/cache", "read_only": True}]


def test_a_build_needs_the_git_repository_and_becomes_a_build_spec() -> None:
    text = """
services:
  web:
    build:
      context: ./app
      dockerfile: docker/Dockerfile
      args: {VERSION: "1.2", MODE: prod}
    ports: ["3000:3000"]
"""
    assert _refusal(text).spot == "services/web/build"
    (web,) = _translated(text, policy=Policy(has_repository=True))["services"]
    assert web["build"] == {
        "subdirectory": "app",
        "dockerfile": "docker/Dockerfile",
        "build_args": [{"name": "MODE", "value": "prod"}, {"name": "VERSION", "value": "1.2"}],
    }
    remote = text.replace("./app", "https://github.com/acme/app.git")
    assert _refusal(remote, policy=Policy(has_repository=True)).spot == "services/web/build/context"
    escape = text.replace("./app", "../outside")
    assert _refusal(escape, policy=Policy(has_repository=True)).spot == "services/web/build"


def test_networks_map_onto_the_application_network() -> None:
    text = """
services:
  web:
    image: busybox
    networks: {front: {aliases: [www]}, back: null}
networks:
  front: {}
  back: {driver: bridge}
"""
    (web,) = _translated(text)["services"]
    assert web["aliases"] == ["www"]
    assert _translated(text)["notes"] == [
        "networks/back: mapped to the application's private network",
        "networks/front: mapped to the application's private network",
    ]
    external = text.replace("back: {driver: bridge}", "back: {external: true}")
    assert _refusal(external).spot == "networks/back/external"
    (inside,) = _translated(text.replace("back: {driver: bridge}", "back: {internal: true}"))["services"]
    assert inside["internal_network"] == "also"  # on the internal network too (``test_compose_runtime_keys``)
    named = text.replace("back: {driver: bridge}", "back: {name: seafile-net}")  # Dokploy's seafile
    assert _translated(named)["notes"] == [
        "networks/back/name: not carried: Berth names the application's private network",
        "networks/back: mapped to the application's private network",
        "networks/front: mapped to the application's private network",
    ]


def test_a_secret_variable_is_carried_in_environment_values_only_by_name() -> None:
    holders = secret_refs.placeholders(["API_TOKEN", "DB_PASSWORD"], "n0nce")
    text = (
        "services:\n  web:\n    image: busybox\n    environment:\n"
        "      TOKEN: '${API_TOKEN}'\n      URL: 'postgres://app:${DB_PASSWORD}@db:5432/app?a=$${X}'\n"
        "      PLAIN: '${MODE}'\n"
    )
    (web,) = _translated(text, {**holders, "MODE": "prod"}, secrets_nonce="n0nce")["services"]
    assert web["environment"] == [
        {"name": "PLAIN", "value": "prod"},
        {"name": "TOKEN", "value": None, "parts": [{"secret": "API_TOKEN"}]},
        {
            "name": "URL",
            "value": None,
            "parts": [{"text": "postgres://app:"}, {"secret": "DB_PASSWORD"}, {"text": "@db:5432/app?a=${X}"}],
        },
    ]
    assert "n0nce" not in str(web)
    rendered = [secret_refs.render(e["parts"], {"API_TOKEN": "t", "DB_PASSWORD": "p"}) for e in web["environment"][1:]]
    assert rendered == ["t", "postgres://app:p@db:5432/app?a=${X}"]
    command = "services:\n  web:\n    image: busybox\n    command: ['run', '--token=${API_TOKEN}', '-v']\n"
    (web,) = _translated(command, holders, secrets_nonce="n0nce")["services"]
    assert web["command"] == ["run", "--token=${API_TOKEN}", "-v"]  # the text, with the reference
    assert web["secret_args"] == [
        {"argv": "command", "index": 1, "parts": [{"text": "--token="}, {"secret": "API_TOKEN"}]}
    ]
    workdir = "services:\n  web:\n    image: busybox\n    working_dir: '/srv/${API_TOKEN}'\n"
    err = _refusal(workdir, variables=holders, secrets_nonce="n0nce")
    assert err.spot == "services/web/working_dir" and "${API_TOKEN} names a secret variable" in err.why
    label = "services:\n  web:\n    image: 'busybox:${API_TOKEN}'\n"
    assert _refusal(label, variables=holders, secrets_nonce="n0nce").spot == "services/web/image"


SERVICE = "services:\n  db:\n    image: postgres:16\n"
REFUSED = [
    ("privileged: true", "services/db/privileged"),
    ("network_mode: host", "services/db/network_mode"),
    ("devices: ['/dev/fuse:/dev/fuse']", "services/db/devices"),
    ("cap_add: [NET_ADMIN]", "services/db/cap_add"),
    ("pid: host", "services/db/pid"),
    ("ipc: host", "services/db/ipc"),
    ("security_opt: ['seccomp:unconfined']", "services/db/security_opt"),
]
NOT_CARRIED = [
    ("dns_search: [example.com]", "services/db/dns_search"),
    ("sysctls: {kernel.shmmax: 1024}", "services/db/sysctls/kernel.shmmax"),
    ("extra_hosts: ['a:host-ip']", "services/db/extra_hosts/0"),
    ("network_mode: none", "services/db/network_mode"),
    ("deploy: {mode: global}", "services/db/deploy/mode"),
    (
        "deploy: {resources: {reservations: {devices: [{capabilities: [gpu]}]}}}",
        "services/db/deploy/resources/reservations/devices",
    ),
    (
        "deploy: {resources: {reservations: {generic_resources: [{discrete_resource_spec: {kind: gpu, value: 1}}]}}}",
        "services/db/deploy/resources/reservations/generic_resources",
    ),
    ("volumes: ['/tmp']", "services/db/volumes/0"),
    ("volumes: ['./data:/data']", "services/db/volumes/0/source"),
    ("volumes: ['/etc:/host-etc']", "services/db/volumes/0/source"),
    ("volumes: [{type: tmpfs, target: /run}]", "services/db/volumes/0/type"),
]


@pytest.mark.parametrize(("line", "spot"), REFUSED, ids=[s for _, s in REFUSED])
def test_a_dangerous_key_is_refused_by_name_unless_the_administrator_allowed_it(line: str, spot: str) -> None:
    text = SERVICE + f"    {line}\n"
    err = _refusal(text)
    assert err.spot == spot and "BERTH_COMPOSE_ALLOW" in err.why
    key = spot.rsplit("/", 1)[1]
    (db,) = _translated(text, policy=Policy(allowed=frozenset({key})))["services"]
    assert list(db["allowed"]) == [key]


@pytest.mark.parametrize(("line", "spot"), NOT_CARRIED, ids=[s for _, s in NOT_CARRIED])
def test_every_key_berth_does_not_carry_is_refused_by_name(line: str, spot: str) -> None:
    assert _refusal(SERVICE + f"    {line}\n").spot == spot


def test_keys_berth_decides_itself_are_listed_as_not_carried() -> None:
    got = _translated(SERVICE + "    container_name: pg\n    labels: {a: b}\n")
    assert got["notes"] == [
        "services/db/container_name: not carried: Berth names containers itself "
        "(berth-<app>-<service>-<deployment>-<n>)",
        "services/db/labels: not carried: Berth labels containers itself (berth.*)",
    ]


@pytest.mark.parametrize(
    ("text", "spot"),
    [
        ("include: [other.yml]\nservices: {a: {image: x}}\n", "include"),
        ("services:\n  a:\n    image: x\n    env_file: /etc/passwd\n", "services/a/env_file"),
        ("services:\n  a:\n    extends: {file: /etc/x.yml, service: b}\n", "services/a/extends/file"),
        ("services: {a: {image: x}}\nconfigs:\n  s: {file: /etc/shadow}\n", "configs/s"),
        ("services: [a, b]\n", "services"),
        ("services:\n  a:\n    image: x\n  b: {image: y}\n  a:\n    image: z\n", "services/a"),
        ("services:\n  a: {image: x\n", "inline"),
    ],
)
def test_keys_that_read_a_file_of_the_server_are_refused_before_the_parser_runs(text: str, spot: str) -> None:
    with pytest.raises(ComposeRefusal) as caught:
        precheck(text)
    assert caught.value.spot == spot


def test_an_alias_bomb_is_refused_before_the_parser_runs() -> None:
    lines = ['x-a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"x-a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    text = "\n".join(lines) + "\nservices:\n  a:\n    image: x\n    command: *a9\n"
    with pytest.raises(ComposeRefusal, match="more than 100000 YAML nodes") as caught:
        precheck(text)
    assert caught.value.spot == "inline"
    with pytest.raises(ComposeRefusal, match="nests too deeply"):
        precheck("services: " + "[" * 50000 + "]" * 50000)
    assert precheck((DATA / "plausible.yml").read_text()) == [
        "plausible",
        "migrate",
        "plausible_db",
        "plausible_events_db",
    ]


def test_service_names_become_slugs_and_collisions_are_refused() -> None:
    text = "services:\n  my_db:\n    image: x\n  my.db:\n    image: y\n"
    err = _refusal(text)
    assert err.spot == "services/my.db" and "my_db" in err.why and "my-db" in err.why


def test_start_order_layers_and_a_cycle() -> None:
    services = [
        {"name": "web", "depends_on": [{"service": "db"}, {"service": "cache"}]},
        {"name": "db"},
        {"name": "cache", "depends_on": [{"service": "db"}]},
    ]
    assert start_order(services) == [["db"], ["cache"], ["web"]]
    with pytest.raises(ComposeRefusal, match="cycle"):
        start_order([{"name": "a", "depends_on": [{"service": "b"}]}, {"name": "b", "depends_on": [{"service": "a"}]}])


def test_shm_size_ulimits_and_dropped_capabilities_are_the_containers_own_limits() -> None:
    text = """
services:
  db:
    image: postgres:16
    shm_size: 256m
    ulimits:
      nofile: {soft: 20000, hard: 40000}
      nproc: 65535
    cap_drop: [NET_RAW]
"""
    (db,) = _translated(text)["services"]
    assert db["host_limits"] == {
        "shm_size_bytes": 256 * 1024 * 1024,
        "ulimits": [
            {"name": "nofile", "soft": 20000, "hard": 40000},
            {"name": "nproc", "soft": 65535, "hard": 65535},
        ],
        "cap_drop": ["NET_RAW"],
    }
    assert "host_limits" not in _translated("services:\n  a:\n    image: busybox\n")["services"][0]
    bad = text.replace("[NET_RAW]", "['net raw']")
    assert _refusal(bad).spot == "services/db/cap_drop/0"


def test_a_volume_of_dockers_default_driver_is_a_berth_volume_and_other_drivers_are_refused_by_name() -> None:
    # Dokploy's plausible blueprint: ``driver: local`` on every volume
    text = "services:\n  db:\n    image: postgres:16\n    volumes:\n      - db-data:/var/lib/postgresql/data\n"
    text += "volumes:\n  db-data:\n    driver: local\n"
    (db,) = _translated(text)["services"]
    assert db["volumes"] == [{"name": "db-data", "path": "/var/lib/postgresql/data", "single_writer": True}]
    # erpnext's ``sites``: a host directory (``o: bind``) is a bind mount, refused outside the allowed paths
    opts = text + "    driver_opts: {type: none, o: bind, device: /srv/sites}\n"
    err = _refusal(opts)
    assert err.spot == "volumes/db-data/driver_opts/device" and "BERTH_BIND_MOUNT_ALLOW_TEAMS" in err.why
    (db,) = _translated(opts, policy=Policy(bind_allow=("/srv",)))["services"]
    assert db["binds"] == [{"host_path": "/srv/sites", "path": "/var/lib/postgresql/data", "read_only": False}]
    err = _refusal(text.replace("driver: local", "driver: nfs"))
    assert err.spot == "volumes/db-data/driver" and "Docker's local driver" in err.why


def test_hosts_resolvers_tmpfs_groups_net_sysctls_and_the_stop_signal_are_the_containers_own() -> None:
    # excerpts of Dokploy's open-webui (extra_hosts), mailu (dns), mattermost (tmpfs), coder (group_add),
    # inngest (sysctls), penpot (stop_signal), mattermost (pids_limit), moltbot (init) and rsshub (ulimits core
    # 0/0) blueprints
    text = """
services:
  db:
    image: postgres:16
    extra_hosts:
      - host.docker.internal:host-gateway
    dns: 192.168.203.254
    tmpfs:
      - /tmp
      - /var/run/postgresql
    group_add:
      - "988"
    sysctls:
      - net.core.somaxconn=1024
    stop_signal: SIGINT
    pids_limit: 100
    init: true
    ulimits:
      core:
        hard: 0
        soft: 0
"""
    got = _translated(text)
    (db,) = got["services"]
    assert db["host_limits"] == {
        "ulimits": [{"name": "core", "soft": 0, "hard": 0}],
        "extra_hosts": ["host.docker.internal:host-gateway"],
        "dns": ["192.168.203.254"],
        "tmpfs": {"/tmp": "", "/var/run/postgresql": ""},
        "group_add": ["988"],
        "sysctls": {"net.core.somaxconn": "1024"},
        "stop_signal": "SIGINT",
        "pids_limit": 100,
    }
    assert got["notes"] == []
    err = _refusal(text.replace("net.core.somaxconn=1024", "vm.overcommit_memory=1"))
    assert err.spot == "services/db/sysctls/vm.overcommit_memory" and "net.* sysctls only" in err.why
    assert _refusal(text.replace("dns: 192.168.203.254", "dns: resolver")).spot == "services/db/dns/0"


def test_a_link_makes_the_linked_service_reachable_under_its_alias() -> None:
    # Dokploy's plane (proxy links plane-web:web) and pterodactyl (panel links database: its own name)
    text = """
services:
  plane-web:
    image: plane/web
  database:
    image: mariadb
  proxy:
    image: plane/proxy
    links:
      - "plane-web:web"
      - database
"""
    web, database, proxy = _translated(text)["services"]
    assert (web["aliases"], "aliases" in database, "aliases" in proxy) == (["web"], False, False)
    assert proxy["depends_on"] == [
        {"service": "database", "condition": "service_started"},
        {"service": "plane-web", "condition": "service_started"},
    ]
    err = _refusal(text.replace("plane-web:web", "plane-web:database"))
    assert err.spot == "services/proxy/links/0" and "another service's name" in err.why


def test_a_name_longer_than_32_is_cut_with_a_hash_and_the_service_keeps_its_compose_name() -> None:
    # Dokploy's appwrite (service appwrite-task-scheduler-functions) and owncloud-infinite-scale (its volume)
    text = """
services:
  appwrite-task-scheduler-functions:
    image: appwrite/appwrite:1.9.5
    volumes:
      - owncloud-infinite-scale-thumbnails:/var/lib/ocis/thumbnails
volumes:
  owncloud-infinite-scale-thumbnails:
"""
    got = _translated(text)
    (svc,) = got["services"]
    cut = {
        n: n[:25].rstrip("-") + "-" + hashlib.sha256(n.encode()).hexdigest()[:6]
        for n in re.findall(r"\w[\w-]{32,}", text)
    }
    service, volume = cut["appwrite-task-scheduler-functions"], cut["owncloud-infinite-scale-thumbnails"]
    assert len(service) == len(volume) == 32 and service.startswith("appwrite-task-scheduler-f-")
    assert (svc["name"], svc["aliases"]) == (service, ["appwrite-task-scheduler-functions"])
    assert svc["volumes"][0]["name"] == volume
    assert got["notes"] == [
        f"services/appwrite-task-scheduler-functions: named {service} in Berth (names are at most 32 characters), "
        "reached by its compose name",
        f"volumes/owncloud-infinite-scale-thumbnails: named {volume} in Berth (names are at most 32 characters)",
    ]
