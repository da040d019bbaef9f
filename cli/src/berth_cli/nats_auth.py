"""The local platform's bus identities: one NATS user per service, ``operator``, ``observer`` and ``admin``
(``berth backup``); ``berth_common.bus.permissions`` says what each may do.

Each identity's password is made at first start (random, ``<data>/nats-auth/<identity>.password``, mode
0600 in a 0700 directory) and kept. nats-server runs with ``<data>/nats-auth/nats.conf`` (0600), written at
every start from those passwords and the permissions the catalogue gives each identity
(``berth_common.bus.permissions``), so a new version's catalogue takes effect on the next ``berth up``.
There is no anonymous user: a client without a password is refused. nats-server opens no monitoring port
(it has no authentication): the server's reports come from its system account (:data:`SYSTEM`), and the
platform's readiness probe asks JetStream as ``operator`` (``berth_cli.probes.nats_ready``).

docker-compose.yml's ``nats-config`` writes the same configuration (:func:`config_text`) with every password,
the system account's included, derived from ``BERTH_SECRET_KEY`` (:func:`derived_password`): no file is
shared between its containers (``berth bus config``, ``berth bus ready``, ``berth bus report``).

The supervisor writes the configuration in a one-shot child (``python -m berth_cli.nats_auth DATA_DIR``):
the catalogue stays out of the long-lived supervisor's memory. Nothing here logs a password.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from berth_cli.datadir import ensure_secret, write_private
from berth_cli.layout import SERVICE_NAMES

ROUTE = "route"  # the nodes of a NATS cluster, to each other (not a client identity)
CLUSTER_NAME = "berth"
ADMIN = "admin"
OPERATOR = "operator"  # the catalogue's party: a monitoring probe, a tool watching dead letters, a test
OBSERVER = "observer"  # reads every event as it is published (the benchmarks), sends nothing
IDENTITIES = (*SERVICE_NAMES, OPERATOR, OBSERVER, ADMIN)
# nats-server's system account: the server's own reports ($SYS.REQ.SERVER.PING.CONNZ / VARZ / JSZ: the
# connections, memory, JetStream) for the host's tooling, in place of the monitoring port, which answered
# anyone on the host. Its own account: none of Berth's subjects or streams is reachable from it.
SYSTEM = "system"
SYSTEM_ACCOUNT = "SYS"


def auth_dir(root: Path) -> Path:
    return root / "nats-auth"


def config_path(root: Path) -> Path:
    return auth_dir(root) / "nats.conf"


def password_file(root: Path, identity: str) -> Path:
    """The file of ``identity``'s password (the platform's probe of the bus reads ``operator``'s)."""
    return auth_dir(root) / f"{identity}.password"


def ensure_passwords(root: Path) -> dict[str, str]:
    """Every identity's password, made (32 random bytes) the first time."""
    folder = auth_dir(root)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    return {identity: ensure_secret(password_file(root, identity), 32) for identity in IDENTITIES}


def derived_password(secret_key: str, identity: str) -> str:
    """``identity``'s password derived from the platform's secret key (docker-compose.yml: no file is shared
    between the containers; the database roles' passwords are made the same way)."""
    import hashlib  # here: hmac loads OpenSSL's libcrypto, MBs the long-lived supervisor has no use for
    import hmac

    return hmac.new(secret_key.encode(), f"nats-user:{identity}".encode(), hashlib.sha256).hexdigest()[:40]


def derived_passwords(secret_key: str) -> dict[str, str]:
    return {identity: derived_password(secret_key, identity) for identity in IDENTITIES}


def cluster_block(routes: list[str], password: str, listen: str = "0.0.0.0:6222") -> dict[str, object]:
    """The ``cluster`` section of a NATS cluster's nodes: every node gets the same one (its own address among
    ``routes`` is ignored by nats-server; each node's ``server_name`` comes from its command line). Routes
    authenticate as ``route`` with ``password``: a process that can reach the route port cannot join as a
    node and so escape the users' permissions."""
    user = quote(ROUTE, safe="")
    secret = quote(password, safe="")
    return {
        "name": CLUSTER_NAME,
        "listen": listen,
        "authorization": {"user": ROUTE, "password": password},
        "routes": [f"nats-route://{user}:{secret}@{route}" for route in routes],
    }


def config_text(
    passwords: dict[str, str], cluster: dict[str, object] | None = None, system_password: str | None = None
) -> str:
    """nats-server's configuration (JSON is valid there): the users and their permissions, with
    ``cluster`` (:func:`cluster_block`) a node's routes to the other nodes of a cluster, and with
    ``system_password`` the system account's one user, :data:`SYSTEM`. It never opens the monitoring port."""
    from berth_common.bus.permissions import authorization

    config: dict[str, object] = {"authorization": authorization(passwords)}
    if cluster is not None:
        config["cluster"] = cluster
    if system_password is not None:
        config["accounts"] = {SYSTEM_ACCOUNT: {"users": [{"user": SYSTEM, "password": system_password}]}}
        config["system_account"] = SYSTEM_ACCOUNT
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


def write_config(root: Path) -> Path:
    """Write nats-server's configuration, ``nats.conf`` of the data dir ``root`` (0600), with its passwords
    and the system account's; its path."""
    path = config_path(root)
    write_private(path, config_text(ensure_passwords(root), None, ensure_system_password(root)))
    return path


def write_derived_config(path: Path, secret_key: str, cluster_routes: list[str], cluster_listen: str) -> None:
    """Write docker-compose.yml's nats-server configuration to ``path`` (0600): :func:`config_text` with
    every password derived from ``secret_key``, the system account's too, and with ``cluster_routes`` the
    routes between a cluster's nodes (docker-compose.cluster.yml)."""
    cluster = None
    if cluster_routes:
        cluster = cluster_block(cluster_routes, derived_password(secret_key, ROUTE), cluster_listen)
    text = config_text(derived_passwords(secret_key), cluster, derived_password(secret_key, SYSTEM))
    write_private(path, text)


def ensure_system_password(root: Path) -> str:
    """The system account's password in the data dir ``root``, made the first time."""
    ensure_passwords(root)  # the private folder
    return ensure_secret(password_file(root, SYSTEM), 32)


def with_credentials(url: str, user: str, password: str) -> str:
    """``url`` with ``user:password@`` (what the nats client reads), each server of a comma-separated list
    (a cluster's nodes); never log the result."""
    return ",".join(_with_credentials(one.strip(), user, password) for one in url.split(",") if one.strip())


def _with_credentials(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{parts.hostname}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def without_credentials(url: str) -> str:
    """``url`` without its user and password (for messages and logs), each server of a list."""
    return ",".join(_without_credentials(one.strip()) for one in url.split(",") if one.strip())


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def admin_url(root: Path, url: str) -> str:
    """``url`` as the ``admin`` identity of the data dir ``root`` (its password made if need be)."""
    return with_credentials(url, ADMIN, ensure_passwords(root)[ADMIN])


def system_url(root: Path, url: str) -> str:
    """``url`` as the system account's user of the data dir ``root`` (its password made if need be)."""
    return with_credentials(url, SYSTEM, ensure_system_password(root))


if __name__ == "__main__":  # pragma: no cover - run by the supervisor
    write_config(Path(sys.argv[1]))
