"""A server's Traefik replaced without a gap, as data: the container that holds its network namespace, the
Traefik containers that join it, the short-lived container that steers its ports, and the calls between.

Docker publishes a port for one container only, so the server's ports are published by a holder
(``HOLDER``: it runs ``handover_programs.pause``, joins the server's Berth network with the alias
``traefik``, and moves a connection queued for a closing listener to another one of its port:
``net.ipv4.tcp_migrate_req``). The serving Traefik (``CONTAINER``) and, while it is replaced, its successor
(``NEXT``) join that namespace (``NetworkMode: container:``), so both listen on the same ports
(``reusePort``), reach applications by name on the Berth network as before, and answer the API at the
holder's address. A replacement (``adapters/proxy_handover.py``): steer every new connection to the running
Traefik and the API to the newest; start ``NEXT``; once its API shows every router the old one had, steer
every new connection to it; let the old one's kept-alive clients leave; stop the old one (it finishes what it
has) and give ``NEXT`` the old one's name.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from berth_common import fleet
from berth_common import traefik as tr
from berth_proxy_sync.domain import handover_programs as programs
from berth_proxy_sync.domain.server_proxy import API, CONTAINER, Call, container_remove, https_options

HOLDER = "berth-traefik-net"  # holds the namespace and the published ports
NEXT = "berth-traefik-next"  # the replacement while it starts
STEER = "berth-traefik-steer"  # sets the ports' programs, then exits
PAUSE_PATH = "/berth-pause"
STEER_PATH = "/berth-steer"
MIGRATE = {"net.ipv4.tcp_migrate_req": "1"}
# Each Traefik container names itself in its API: a middleware nothing uses, named from its environment by the
# file provider's template (both Traefiks answer the API port at one address: this tells them apart)
INSTANCE_FILE = "000-berth-instance.yml"
INSTANCE_ENV = "BERTH_TRAEFIK_INSTANCE"
INSTANCE_PREFIX = "berth-instance-"
WEB_PORTS = (80, 443)  # Traefik's web and HTTPS entry points in the namespace
NAMESPACE_GONE = "is not in the namespace"  # a Traefik that serves nothing: removed, no handover
STOP_S = 15  # the old Traefik's stop timeout: its lifeCycle (1 s of accepting, 10 s of requests) and some


def holder_create(
    image: str,
    web_port: int,
    network: str = fleet.SERVER_NETWORK,
    *,
    websecure_port: int | None = None,
    migrate: bool = True,
) -> Call:
    """The holder: ``server_container``'s published ports, network and restart policy, running the pause
    program (uploaded before its start: ``upload``) from the Traefik image, nothing bound, no environment;
    ``websecure_port``: published whenever the server has one, even while its Traefik serves HTTP only (a
    published port cannot be added later without a new holder, and so a gap); ``migrate``: with ``MIGRATE``
    (a kernel before Linux 5.14 lacks it: ``migrate_refused``)."""
    _, body = tr.server_container(image, network, "/", web_port=web_port, websecure_port=websecure_port, name=HOLDER)
    host = body["HostConfig"]
    holder = {
        "Image": image,
        "Entrypoint": [PAUSE_PATH],
        "Cmd": [],
        "Labels": {**body["Labels"], "berth.kind": "proxy-net"},
        "ExposedPorts": body["ExposedPorts"],
        "HostConfig": {
            "RestartPolicy": host["RestartPolicy"],
            "PortBindings": host["PortBindings"],
            "Sysctls": MIGRATE,
            "LogConfig": host["LogConfig"],
        },
        "NetworkingConfig": body["NetworkingConfig"],
    }
    if not migrate:
        del holder["HostConfig"]["Sysctls"]
    return Call("POST", f"{API}/containers/create?name={HOLDER}", holder)


def instance_config() -> str:
    """The text of ``INSTANCE_FILE`` (a Go template Traefik's file provider fills in)."""
    name = INSTANCE_PREFIX + "{{ env `" + INSTANCE_ENV + "` }}"  # a raw string: JSON leaves it as it is
    return json.dumps({"http": {"middlewares": {name: {"stripPrefix": {"prefixes": ["/berth-instance"]}}}}})


def instance_middleware(instance: str) -> str:
    """The middleware by which the Traefik started with ``instance`` names itself in its API."""
    return f"{INSTANCE_PREFIX}{instance}@file"


def traefik_body(
    image: str,
    host_dir: str,
    *,
    websecure_port: int | None = None,
    acme: tr.Acme | None = None,
    instance: str | None = None,
) -> dict[str, Any]:
    """A Traefik container in the holder's namespace: ``server_container``'s body without ports or networks,
    with ``instance`` (a random name of this container) in its environment."""
    if instance is not None and not re.fullmatch(r"[a-z0-9]{1,32}", instance):
        raise ValueError(f"not an instance name: {instance!r}")
    options = https_options(websecure_port, acme)
    if instance is not None:
        options["env"] = {**options.get("env", {}), INSTANCE_ENV: instance}
    _, body = tr.server_container(image, fleet.SERVER_NETWORK, host_dir, **options)
    body.pop("ExposedPorts")
    body.pop("NetworkingConfig")
    body["HostConfig"].pop("PortBindings")
    body["HostConfig"]["NetworkMode"] = f"container:{HOLDER}"
    return body


def traefik_create(
    name: str,
    image: str,
    host_dir: str,
    instance: str,
    *,
    websecure_port: int | None = None,
    acme: tr.Acme | None = None,
) -> Call:
    body = traefik_body(image, host_dir, websecure_port=websecure_port, acme=acme, instance=instance)
    return Call("POST", f"{API}/containers/create?name={quote(name, safe='')}", body)


def steer_ports(https: bool, place: int) -> list[tuple[int, int]]:
    """Each port's place: the web ports' ``place``; the API always the newest Traefik (so its readiness is
    asked of the replacement; with one Traefik the kernel's hash picks it)."""
    web = WEB_PORTS if https else WEB_PORTS[:1]
    return [(port, place) for port in web] + [(tr.API_PORT, programs.NEWEST)]


def steer_create(image: str) -> Call:
    body = {
        "Image": image,
        "Entrypoint": [STEER_PATH],
        "Cmd": [],
        "Labels": {"berth.managed": "true", "berth.kind": "proxy-steer"},
        "HostConfig": {"NetworkMode": f"container:{HOLDER}"},
    }
    return Call("POST", f"{API}/containers/create?name={STEER}", body)


def program_tar(path: str, program: bytes) -> bytes:
    """A tar of one executable file at ``path`` (the body of ``upload``)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo(path.lstrip("/"))
        info.size, info.mode, info.mtime = len(program), 0o755, 0
        tar.addfile(info, io.BytesIO(program))
    return out.getvalue()


def upload(name: str) -> Call:
    """``PUT /containers/{name}/archive``: the program's tar (``program_tar``) extracted at the root."""
    return Call("PUT", f"{API}/containers/{quote(name, safe='')}/archive?path=%2F")


def engine_info() -> Call:
    """``GET /info``: its ``Architecture`` picks the programs' machine code (``handover_programs.arch``)."""
    return Call("GET", f"{API}/info")


def container_wait(name: str) -> Call:
    return Call("POST", f"{API}/containers/{quote(name, safe='')}/wait")


def container_stop(name: str, timeout_s: int = STOP_S) -> Call:
    return Call("POST", f"{API}/containers/{quote(name, safe='')}/stop?t={int(timeout_s)}")


def container_rename(name: str, to: str) -> Call:
    return Call("POST", f"{API}/containers/{quote(name, safe='')}/rename?name={quote(to, safe='')}")


def legacy(info: dict[str, Any]) -> bool:
    """Whether the Traefik found publishes the ports itself (made by a Berth before the holder): it is
    removed before the holder can publish them (one gap, once)."""
    return not str((info.get("HostConfig") or {}).get("NetworkMode") or "").startswith("container:")


def holder_problem(
    info: dict[str, Any], web_port: int, network_id: str | None = None, *, websecure_port: int | None = None
) -> str | None:
    """Why the holder found is not the wanted one (it is made again, and its Traefik with it: a gap), or
    None: one made before ``websecure_port`` was known publishes the web port only and is made again, once.
    Its image is not compared (it only sleeps, and a new Traefik version must not replace it), nor its
    ``MIGRATE`` (a holder made on a kernel without it is kept)."""
    _, wanted = tr.server_container("-", fleet.SERVER_NETWORK, "/", web_port=web_port, websecure_port=websecure_port)
    host = info.get("HostConfig") or {}
    if (host.get("PortBindings") or {}) != wanted["HostConfig"]["PortBindings"]:
        ports = f"ports {web_port} and {websecure_port}" if websecure_port is not None else f"port {web_port}"
        return f"is not published on {ports}"
    joined = ((info.get("NetworkSettings") or {}).get("Networks") or {}).get(fleet.SERVER_NETWORK)
    if joined is None:
        return f"is not on the {fleet.SERVER_NETWORK} network"
    if network_id and joined.get("NetworkID") and joined["NetworkID"] != network_id:
        return f"is on an earlier {fleet.SERVER_NETWORK} network"
    return None


def migrate_refused(message: str) -> bool:
    """Whether a failed start of the holder (the engine's answer) says the kernel has no ``MIGRATE`` (it is
    then made without: a connection that reaches the steering program's socket in the moment it joins a
    port may be reset)."""
    return "tcp_migrate_req" in message


def _started(info: dict[str, Any]) -> datetime | None:
    text = str((info.get("State") or {}).get("StartedAt") or "")
    try:  # nanoseconds: Python reads up to microseconds
        head, _, frac = text.rstrip("Z").partition(".")
        return datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}")
    except ValueError:
        return None


def traefik_problem(
    info: dict[str, Any],
    holder: dict[str, Any],
    image: str,
    host_dir: str,
    *,
    websecure_port: int | None = None,
    acme: tr.Acme | None = None,
) -> str | None:
    """Why the running Traefik is not the wanted one (it is replaced without a gap), or None: same image,
    binds and ACME environment, in the running holder's namespace, started after the holder (one started
    before it is in a namespace that is gone)."""
    wanted = traefik_body(image, host_dir, websecure_port=websecure_port, acme=acme)
    config, host = info.get("Config") or {}, info.get("HostConfig") or {}
    if config.get("Image") != image:
        return f"runs image {config.get('Image')!r}, not {image!r}"
    if sorted(host.get("Binds") or []) != sorted(wanted["HostConfig"]["Binds"]):
        return "its folders are not the server's Berth folders"
    if not set(wanted.get("Env") or []) <= set(config.get("Env") or []):
        return "its ACME environment is not the configured one"
    if host.get("NetworkMode") != f"container:{holder.get('Id')}":
        return f"{NAMESPACE_GONE} of {HOLDER}"
    started, held = _started(info), _started(holder)
    if started is None or held is None or started < held:
        return f"{NAMESPACE_GONE} of {HOLDER}: it started before"
    return None


def router_names(rawdata: dict[str, Any]) -> set[str]:
    """The routers of Traefik's ``/api/rawdata`` answer."""
    return set((rawdata.get("routers") or {}).keys())


def answered_by(rawdata: dict[str, Any], instance: str) -> bool:
    """Whether ``/api/rawdata`` was answered by the Traefik started with ``instance``."""
    return instance_middleware(instance) in (rawdata.get("middlewares") or {})


# --- keep-up: whether the server's web entry point is served as Berth made it ---------------------------

# One request on the server's web port, through its SSH connection (``direct-tcpip`` to loopback on the
# server): any HTTP answer (a 404 for this host) shows that a Traefik takes the port's connections.
WEB_PROBE_HOST = "127.0.0.1"
WEB_PROBE = b"GET / HTTP/1.1\r\nHost: berth-keep-up.invalid\r\nUser-Agent: berth-keep-up\r\nConnection: close\r\n\r\n"


def web_answered(first_line: bytes) -> bool:
    """Whether the first line read back from the web port is an HTTP answer's status line."""
    return first_line.startswith(b"HTTP/1.") and len(first_line.split(b" ")) >= 2


@dataclass(frozen=True)
class NotServing:
    """Why the server's web port is not served (for the log) and the containers removed for it (made again
    by ``adapters/server_proxy.ensure``): what is wrong, or both when the engine shows nothing wrong."""

    why: str
    remove: tuple[str, ...]


def _bound(info: dict[str, Any], port: int, host_port: int) -> bool | None:
    """Whether the engine bound ``port`` of the container on ``host_port``; None when it does not say."""
    ports = (info.get("NetworkSettings") or {}).get("Ports")
    if not isinstance(ports, dict):
        return None
    return any(str(b.get("HostPort")) == str(host_port) for b in ports.get(f"{port}/tcp") or [])


def serving_problem(
    holder: dict[str, Any] | None,
    traefik: dict[str, Any] | None,
    web_port: int,
    *,
    websecure_port: int | None = None,
) -> NotServing | None:
    """What the engine shows wrong with the containers that serve the server's web port (the holder running
    as wanted with its ports bound; the Traefik running in its namespace, started after it), or None. A
    holder that is wrong is removed with its Traefiks (they are in its namespace)."""
    everything = (HOLDER, CONTAINER, NEXT)
    if holder is None:
        return NotServing(f"{HOLDER} is gone", everything)
    if not (holder.get("State") or {}).get("Running"):
        return NotServing(f"{HOLDER} is not running", everything)
    problem = holder_problem(holder, web_port, websecure_port=websecure_port)
    if problem is not None:
        return NotServing(f"{HOLDER} {problem}", everything)
    wanted = [(80, web_port)] + ([(443, websecure_port)] if websecure_port is not None else [])
    for port, host_port in wanted:
        if _bound(holder, port, host_port) is False:
            return NotServing(f"{HOLDER} runs without its binding of port {host_port}", everything)
    if traefik is None:
        return NotServing(f"{CONTAINER} is gone", (CONTAINER,))
    if not (traefik.get("State") or {}).get("Running"):
        return NotServing(f"{CONTAINER} is not running", (CONTAINER,))
    started, held = _started(traefik), _started(holder)
    mode = (traefik.get("HostConfig") or {}).get("NetworkMode")
    if mode != f"container:{holder.get('Id')}" or started is None or held is None or started < held:
        return NotServing(f"{CONTAINER} {NAMESPACE_GONE} of {HOLDER}", (CONTAINER,))
    return None


def web_unanswered(web_port: int, seen: str) -> NotServing:
    """The web port gives no HTTP answer while the engine shows nothing wrong: the holder (its binding) and
    the Traefik (its entry point) are both made again."""
    return NotServing(f"port {web_port} gives no HTTP answer ({seen})", (HOLDER, CONTAINER, NEXT))


def repair_calls(problem: NotServing) -> list[Call]:
    """The calls that remove what ``problem`` names (absent ones are no error)."""
    return [container_remove(name) for name in problem.remove]
