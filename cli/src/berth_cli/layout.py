"""What the local platform is made of, as pure data: ports, paths and the specs of the supervised children.

Nothing here starts a process or touches the network, so the whole layout is tested by exact comparison.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

# (service name, schema, console script); the order is the start order of the services.
SERVICES: tuple[tuple[str, str, str], ...] = (
    ("api", "api", "berth-api"),
    ("builder", "builder", "berth-builder"),
    ("scheduler", "scheduler", "berth-scheduler"),
    ("proxy-sync", "proxy", "berth-proxy-sync"),
    ("metrics", "metrics", "berth-metrics"),
    ("notifier", "notifier", "berth-notifier"),
)
SERVICE_NAMES = tuple(name for name, _, _ in SERVICES)
INFRA = ("postgres", "nats", "traefik")
ALL_IN_ONE = "allinone"
# set by the supervisor on every process it starts (value: the data dir): how `berth down` finds strays
SUPERVISED_BY = "BERTH_SUPERVISED_BY"
# Set for the provisioning child (berth_cli.provisioning): it migrates every service's schema too.
PROVISION_MIGRATES = "BERTH_PROVISION_MIGRATES"
SUPERVISOR_MODULE = "berth_cli.supervise"
DATABASE = "berth"

DEFAULT_PORTS: dict[str, int] = {
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
# With BERTH_PORT_BASE=B every port is B + its offset (tests and a second platform on one machine). Offset 1
# was NATS' monitoring port, no longer opened (it answered anyone on the host): it stays unused, so every
# other port keeps its place.
PORT_OFFSETS = {name: i + (i >= 1) for i, name in enumerate(DEFAULT_PORTS)}
PORT_SPAN = max(PORT_OFFSETS.values()) + 1


def _port_env(name: str) -> tuple[str, ...]:
    """The variables that set one port, first wins. Service ports use the services' own override name."""
    fixed = {
        "nats": ("BERTH_NATS_PORT",),
        "postgres": ("BERTH_PG_PORT",),
        "proxy": ("BERTH_PROXY_PORT",),
        "traefik_api": ("BERTH_TRAEFIK_API_PORT",),
        "api": ("BERTH_API_PORT", "BERTH_API_HTTP_PORT"),
    }
    if name in fixed:
        return fixed[name]
    return (f"BERTH_{schema_of(name).upper()}_HTTP_PORT",)


def schema_of(service: str) -> str:
    for name, schema, _ in SERVICES:
        if name == service:
            return schema
    raise KeyError(service)


def _int_port(var: str, value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise ValueError(f"{var} must be a port number, not {value!r}") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"{var} must be between 1 and 65535, not {port}")
    return port


def resolve_ports(env: Mapping[str, str]) -> dict[str, int]:
    """Every port of the platform from the environment (defaults, shifted by BERTH_PORT_BASE, overrides)."""
    base = env.get("BERTH_PORT_BASE")
    base_port = _int_port("BERTH_PORT_BASE", base) if base else None
    if base_port is not None and base_port + PORT_SPAN > 65535:
        raise ValueError("BERTH_PORT_BASE is too high")
    ports: dict[str, int] = {}
    for name, default in DEFAULT_PORTS.items():
        port = default if base_port is None else base_port + PORT_OFFSETS[name]
        for var in _port_env(name):
            if env.get(var):
                port = _int_port(var, env[var])
                break
        ports[name] = port
    taken: dict[int, str] = {}
    for name, port in ports.items():
        if port in taken:
            raise ValueError(f"port {port} is set for both {taken[port]} and {name}")
        taken[port] = name
    return ports


def proxy_tls_port(env: Mapping[str, str], ports: Mapping[str, int]) -> int:
    """The HTTPS port of the control plane's Traefik: ``BERTH_PROXY_TLS_PORT``, else 8443 (with
    ``BERTH_PORT_BASE``: the port after the platform's others); never one of ``ports``."""
    if env.get("BERTH_PROXY_TLS_PORT"):
        port = _int_port("BERTH_PROXY_TLS_PORT", env["BERTH_PROXY_TLS_PORT"])
    elif env.get("BERTH_PORT_BASE"):
        port = _int_port("BERTH_PORT_BASE", env["BERTH_PORT_BASE"]) + PORT_SPAN
    else:
        port = 8443
    for name, taken in ports.items():
        if taken == port:
            raise ValueError(f"port {port} is set for both {name} and the HTTPS entry point")
    return port


_HOST = re.compile(r"^[A-Za-z0-9.:\-\[\]]{1,253}$")


def check_host(var: str, host: str) -> str:
    if not _HOST.match(host):
        raise ValueError(f"{var} is not a valid listen address: {host!r}")
    return host


@dataclass(frozen=True)
class Paths:
    """Where everything lives inside one data dir."""

    root: Path

    @property
    def pidfile(self) -> Path:
        return self.root / "supervisor.pid"

    @property
    def state(self) -> Path:
        return self.root / "supervisor.json"

    @property
    def secret_key(self) -> Path:
        return self.root / "secret.key"

    @property
    def metrics_token(self) -> Path:
        """The platform's scrape token for the metrics service's ``/metrics`` (made at first start)."""
        return self.root / "metrics.token"

    @property
    def pg_password(self) -> Path:
        return self.root / "postgres.password"

    @property
    def pgdata(self) -> Path:
        return self.root / "postgres"

    @property
    def admin_token(self) -> Path:
        return self.root / "admin.token"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def traefik_dynamic(self) -> Path:
        return self.root / "traefik" / "dynamic"

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"


@dataclass(frozen=True)
class Probe:
    """How to tell that a component is ready: an HTTP GET answering 200, Postgres accepting connections, or
    nats-server taking ``user`` (its password read from the file ``secret`` at each look, never stored here:
    the probe is written to ``supervisor.json``) and answering its JetStream account information."""

    kind: str  # "http" | "pg" | "nats"
    url: str = ""
    host: str = ""
    port: int = 0
    user: str = ""
    secret: str = ""


@dataclass
class ChildSpec:
    """One process the supervisor runs and restarts."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    stop_signal: str = "SIGTERM"
    stop_timeout_s: float = 20.0
    # the components this child serves (all six services for the all-in-one process)
    serves: list[str] = field(default_factory=list)

    def to_public(self) -> dict[str, object]:
        """The spec without its environment (which holds secrets): safe for supervisor.json."""
        data = asdict(self)
        data.pop("env")
        return data


def service_probes(ports: Mapping[str, int]) -> dict[str, Probe]:
    return {name: Probe("http", url=f"http://127.0.0.1:{ports[name]}/readyz") for name in SERVICE_NAMES}


def infra_probes(ports: Mapping[str, int], pg_host: str, pg_port: int, nats_secret: Path) -> dict[str, Probe]:
    """``nats_secret``: the file of the ``operator`` identity's password (the bus's monitoring probe)."""
    return {
        "postgres": Probe("pg", host=pg_host, port=pg_port),
        "nats": Probe("nats", host="127.0.0.1", port=ports["nats"], user="operator", secret=str(nats_secret)),
        "traefik": Probe("http", url=f"http://127.0.0.1:{ports['traefik_api']}/ping"),
    }


def platform_env(
    paths: Paths, ports: Mapping[str, int], secret_key: str, proxy_host: str = "127.0.0.1"
) -> dict[str, str]:
    """The variables every service gets, whatever the mode."""
    return {
        "BERTH_SECRET_KEY": secret_key,
        "BERTH_DATA_DIR": str(paths.root),
        "BERTH_NATS_URL": f"nats://127.0.0.1:{ports['nats']}",
        "BERTH_HTTP_HOST": "127.0.0.1",
        "BERTH_API_URL": f"http://127.0.0.1:{ports['api']}",
        "BERTH_TRAEFIK_DYNAMIC_DIR": str(paths.traefik_dynamic),
        "BERTH_TRAEFIK_API_URL": f"http://127.0.0.1:{ports['traefik_api']}",
        "BERTH_PROXY_HOST": proxy_host,
        "BERTH_PROXY_PORT": str(ports["proxy"]),
        "PYTHONUNBUFFERED": "1",
    }


def service_children(
    bin_dir: Path,
    ports: Mapping[str, int],
    db_urls: Mapping[str, str],
    common_env: Mapping[str, str],
    all_in_one: bool,
    nats_passwords: Mapping[str, str] | None = None,
) -> list[ChildSpec]:
    """The service processes: six (one per service, each with only its own database role and bus identity)
    or one. ``nats_passwords``: each service's bus password (its user is its name); None: anonymous."""

    def identity(name: str, prefix: str) -> dict[str, str]:
        if nats_passwords is None:
            return {}
        return {f"{prefix}NATS_USER": name, f"{prefix}NATS_PASSWORD": nats_passwords[name]}

    if all_in_one:
        env = dict(common_env)
        for name, schema, _ in SERVICES:
            env[f"BERTH_{schema.upper()}_DATABASE_URL"] = db_urls[name]
            env[f"BERTH_{schema.upper()}_HTTP_PORT"] = str(ports[name])
            env.update(identity(name, f"BERTH_{schema.upper()}_"))
        return [
            ChildSpec(
                ALL_IN_ONE, [str(bin_dir / "berth-allinone")], env, stop_timeout_s=40.0, serves=list(SERVICE_NAMES)
            )
        ]
    children = []
    for name, _, script in SERVICES:
        env = {**common_env, "BERTH_DATABASE_URL": db_urls[name], "BERTH_HTTP_PORT": str(ports[name])}
        env.update(identity(name, "BERTH_"))
        children.append(ChildSpec(name, [str(bin_dir / script)], env, serves=[name]))
    return children


def scrub_env(env: Mapping[str, str]) -> dict[str, str]:
    """The supervisor's environment without what must not reach the services (the admin database URL,
    per-service overrides the supervisor sets itself)."""
    drop = {"BERTH_DATABASE_URL", "BERTH_PORT_BASE", "BERTH_HTTP_PORT", SUPERVISED_BY}
    own = ("_DATABASE_URL", "_HTTP_PORT", "_NATS_USER", "_NATS_PASSWORD")  # each service gets its own
    out = {}
    for key, value in env.items():
        if key in drop or (key.startswith("BERTH_") and key.endswith(own)):
            continue
        out[key] = value
    return out


def mentions_path(cmdline: list[str], path: Path) -> bool:
    """Whether a process's argv names ``path`` or something inside it (``--x=/path/...`` counts)."""
    root = str(path).rstrip("/")
    for arg in cmdline:
        for part in (arg, arg.split("=", 1)[-1]):
            if part == root or part.startswith(root + "/"):
                return True
    return False


def is_supervisor(cmdline: list[str], root: Path) -> bool:
    """Whether a process is the detached supervisor of the data dir ``root``."""
    if SUPERVISOR_MODULE not in cmdline:
        return False
    try:
        return cmdline[cmdline.index("--data-dir") + 1] == str(root)
    except (ValueError, IndexError):
        return False
