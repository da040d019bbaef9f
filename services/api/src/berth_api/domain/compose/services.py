"""One compose service (of the normalised model) as a Berth service: pure.

The result has the fields of an application's ``services[]`` entry (``kind``, ``name``, ``port``,
``replicas``, ``health_path`` or ``health_command``, ``command``, ``domains``, ``limits``, ``volumes``,
``binds``, ``strategy``) and the application's files it mounts (``files``: a bind mount of
``./files/<path>``), so everything that checks and deploys an application reads it as it is, plus what
a compose service has that a single-image application does not: its ``image`` or ``build``, ``entrypoint``,
``environment``, ``depends_on``, ``restart``, ``aliases``, the healthcheck's timing, ``user``,
``working_dir`` and the dangerous keys the administrator allowed (``allowed``).
"""

from __future__ import annotations

import math
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from berth_api.domain import mounts, names
from berth_api.domain.compose import keys
from berth_api.domain.compose.container_options import container_options
from berth_api.domain.compose.host_limits import host_limits
from berth_api.domain.compose.host_stand_ins import left_out
from berth_api.domain.compose.keys import ComposeRefusal, not_carried, present
from berth_api.domain.compose.published_ports import Ranges, published_ports
from berth_api.domain.compose.runtime import runtime_options
from berth_api.domain.compose.secret_files import service_secrets
from berth_api.domain.compose.volume_options import HostDir, mount_label
from berth_common.catalogue import file_path

MIB = 1024 * 1024
# a health check URL's path ends at a quote, an escaped one too (argilla's ``python -c "...r.get(\"http://
# localhost:6900/api/_status\")..."``), a backtick or a shell operator
URL_RE = re.compile(r"https?://(?:localhost|127\.0\.0\.1|0\.0\.0\.0|\[::1\])(?::\d+)?(/[^\s'\"\\`|;&]*)?")
DURATION_RE = re.compile(r"^(?:(\d+(?:\.\d+)?)(h|ms|m|s|us|ns))+$")
PART_RE = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|ns)")
UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


@dataclass(frozen=True)
class Route:
    """The port a web service is routed to, its custom host names (generated host: always) and the URL path
    prefix it serves on them (None: the whole hosts); ``more``: other ports of it routed on some of them."""

    port: int
    domains: list[str] = field(default_factory=list)
    path: str | None = None
    more: dict[int, list[str]] = field(default_factory=dict)  # another port -> its hosts (among ``domains``)
    more_paths: dict[int, str | None] = field(default_factory=dict)  # another port -> its path (None: whole)
    generated: tuple[int, ...] = ()  # other ports that get a generated host of their own
    shared: tuple[str, ...] = ()  # hosts of ``more`` the port keeps too, under its own path (another path)
    buffer_mb: int | None = None  # the proxy reads each request's body (up to this many MiB) before forwarding


@dataclass(frozen=True)
class Context:
    """What translating one service needs to know about the whole file and the application."""

    names: Mapping[str, str]  # compose service name -> Berth service name
    routes: Mapping[str, Route]  # compose service name -> its route (a web service)
    volume_names: Mapping[str, str]  # compose volume key -> Berth volume name
    shared_volumes: frozenset[str]  # compose volume keys mounted by more than one service
    bind_allow: tuple[str, ...]
    allowed: frozenset[str]  # dangerous keys the administrator allowed for the team
    has_repository: bool
    notes: list[str] = field(default_factory=list)
    files: frozenset[str] = frozenset()  # the paths of the application's files (``compose.files``)
    secrets: Mapping[str, str] = field(default_factory=dict)  # top-level secret -> its variable (``secret_files``)
    published: Ranges | None = None  # the ports the team may publish on the server (None: not allowed)
    host_dirs: Mapping[str, HostDir] = field(default_factory=dict)  # volumes that are host directories
    runtimes: frozenset[str] = frozenset()  # the container runtimes the administrator allowed the team


def seconds(value: Any, spot: str) -> float:
    """A compose duration (``1m30s``, ``10s``, ``500ms``) in seconds."""
    text = str(value)
    if not DURATION_RE.fullmatch(text):
        raise ComposeRefusal(spot, f"{text!r} is not a duration (e.g. 10s, 1m30s)")
    return sum(float(n) * UNIT_S[u] for n, u in PART_RE.findall(text))


def health_argv(test: Any, spot: str) -> list[str] | None:
    """A healthcheck's test as argv (``CMD-SHELL x``: ``/bin/sh -c x``); None for ``NONE``."""
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    if not isinstance(test, list) or not test:
        raise ComposeRefusal(spot, "a healthcheck test is a list: [CMD, ...] or [CMD-SHELL, command]")
    kind, rest = str(test[0]), [literal(str(t)) for t in test[1:]]
    if kind == "NONE":
        return None
    if kind == "CMD" and rest:
        return rest
    if kind == "CMD-SHELL" and len(rest) == 1:
        return ["/bin/sh", "-c", rest[0]]
    raise ComposeRefusal(spot, "a healthcheck test is [CMD, argv...] or [CMD-SHELL, command]")


def _check_keys(name: str, svc: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    allowed: dict[str, Any] = {}
    for key, value in svc.items():
        spot = f"services/{name}/{key}"
        if key in keys.CARRIED or key.startswith("x-") or not present(value):  # x-: extensions, for anchors
            continue
        if key in keys.NOTED:
            ctx.notes.append(f"{spot}: not carried: {keys.NOTED[key]}")
        elif key == "runtime":
            allowed[key] = keys.runtime(spot, value, ctx.runtimes)
        elif key in keys.DANGEROUS:
            if key in keys.HOST_VALUED and value != "host":
                raise not_carried(spot, f"{key}: {value}")
            if key not in ctx.allowed:
                raise keys.dangerous(spot, key)
            allowed[key] = value
        else:
            raise not_carried(spot)
    return allowed


def _limits(name: str, svc: Mapping[str, Any]) -> dict[str, Any] | None:
    limits: dict[str, Any] = {}
    deploy = svc.get("deploy") or {}
    for key in deploy:
        if key not in keys.DEPLOY_KEYS and present(deploy[key]):
            raise not_carried(f"services/{name}/deploy/{key}")
    if present(deploy.get("placement")):
        raise not_carried(f"services/{name}/deploy/placement", "Berth places services on the application's servers")
    if deploy.get("replicas") == 0:  # compose starts none; Berth runs at least one
        raise ComposeRefusal(f"services/{name}/deploy/replicas", "at least 1: leave the service out with profiles")
    if deploy.get("mode") not in (None, "replicated"):  # replicated: deploy.replicas of them, as Berth runs them
        raise not_carried(
            f"services/{name}/deploy/mode", f"{deploy['mode']}: Berth runs deploy.replicas on the application's servers"
        )
    resources = deploy.get("resources") or {}
    for key in resources:
        if key not in ("limits", "reservations") and present(resources[key]):
            raise not_carried(f"services/{name}/deploy/resources/{key}")
    given = resources.get("limits") or {}
    for key in given:
        if key not in ("cpus", "memory") and present(given[key]):
            raise not_carried(f"services/{name}/deploy/resources/limits/{key}")
    cpus: Any = given.get("cpus", svc.get("cpus"))
    memory: Any = given.get("memory", svc.get("mem_limit"))
    if present(cpus):
        limits["cpus"] = float(cpus)
    if present(memory):
        limits["memory_mb"] = max(6, math.ceil(int(memory) / MIB))
    return limits or None


def _ports(name: str, svc: Mapping[str, Any], ctx: Context) -> list[dict[str, Any]]:
    """The service's ports published on the server (``published_ports``); its routed ports' are noted."""
    route = ctx.routes.get(name)
    routed = [route.port, *route.more] if route is not None else []
    return published_ports(name, svc, routed, ctx.published, ctx.notes)


FILES_PREFIX = "./files/"


def _file_mount(spot: str, source: str, target: Any, ctx: Context, read_only: bool = False) -> dict[str, Any]:
    """A bind mount of ``./files/<path>``: the application's file of that path, or its files under that
    directory (``compose.files``), at ``target``; ``read_only`` (``:ro``): read-only in the service's
    containers, for root too (said in the notes)."""
    path = source[len(FILES_PREFIX) :].rstrip("/")
    try:
        file_path(path)
    except ValueError as exc:
        raise ComposeRefusal(f"{spot}/source", f"a file of compose.files is named ./files/<path>: {exc}") from None
    if path not in ctx.files and not any(f.startswith(path + "/") for f in ctx.files):
        raise ComposeRefusal(
            f"{spot}/source", f"compose.files has no file files/{path} (nor files under it): give it there"
        )
    if read_only:
        ctx.notes.append(
            f"{spot}/read_only: the files are bind-mounted read-only into the service's containers (root there "
            "cannot change them either)"
        )
        return {"source": path, "target": target, "read_only": True}
    return {"source": path, "target": target}


def _mounts(name: str, svc: Mapping[str, Any], ctx: Context, replicas: int) -> tuple[list[Any], list[Any], list[Any]]:
    volumes: list[dict[str, Any]] = []
    binds: list[dict[str, Any]] = []
    files: list[dict[str, Any]] = []
    for i, mount in enumerate(svc.get("volumes") or []):
        spot = f"services/{name}/volumes/{i}"
        kind, source, target = mount.get("type"), mount.get("source"), mount.get("target")
        ro = bool(mount.get("read_only"))
        for key in mount:
            if key not in ("type", "source", "target", "read_only", kind, "bind") and present(mount[key]):
                raise not_carried(f"{spot}/{key}")
        if kind == "volume" and source:
            if present(mount.get("volume")):
                raise not_carried(f"{spot}/volume")
            mount_label(spot, mount.get("bind") or {}, source not in ctx.host_dirs, ctx.notes)
            if source in ctx.host_dirs:  # ``o: bind``: the allowed host directory (``volume_options``)
                found = ctx.host_dirs[source]
                binds.append({"host_path": found.path, "path": target, "read_only": found.read_only or ro})
                continue
            vol: dict[str, Any] = {"name": ctx.volume_names[source], "path": target}
            if mount.get("read_only"):
                vol["read_only"] = True  # it reads what another service writes: no writer of its own
            elif replicas == 1 and source not in ctx.shared_volumes:
                vol["single_writer"] = True
            volumes.append(vol)
        elif kind == "volume":
            raise ComposeRefusal(spot, "an anonymous volume is not kept: give it a name (a top-level volume)")
        elif kind != "bind" and present(mount.get("bind")):
            raise not_carried(f"{spot}/bind")
        elif kind == "bind":
            own = str(source).startswith(FILES_PREFIX)
            mount_label(spot, mount.get("bind") or {}, own, ctx.notes)
            if own:
                files.append(_file_mount(spot, str(source), target, ctx, bool(mount.get("read_only"))))
                continue
            if not str(source).startswith("/"):
                raise ComposeRefusal(
                    f"{spot}/source",
                    "a relative bind mount names the repository's files, which are not on the server: give the "
                    "file in compose.files and mount it as ./files/<path>, use a named volume, or copy the files "
                    "into the image",
                )
            if not mounts.allowed(str(source), ctx.bind_allow) and not left_out(spot, source, target, ctx.notes):
                where = (
                    ", ".join(ctx.bind_allow)
                    if ctx.bind_allow
                    else "none for this team: BERTH_BIND_MOUNT_ALLOW_TEAMS, BERTH_BIND_MOUNT_ALLOW"
                )
                raise ComposeRefusal(
                    f"{spot}/source",
                    f"host bind mounts are allowed only under the paths the administrator lists ({where})",
                )
            if mounts.allowed(str(source), ctx.bind_allow):
                binds.append({"host_path": source, "path": target, "read_only": bool(mount.get("read_only", False))})
        else:
            raise not_carried(f"{spot}/type", f"{kind} mounts")
    return volumes, binds, files


def _health(name: str, svc: Mapping[str, Any], web: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the Berth health fields, the healthcheck's timing and command kept for the scheduler)."""
    check = svc.get("healthcheck") or {}
    spot = f"services/{name}/healthcheck"
    for key in check:
        if key not in keys.HEALTH_KEYS and present(check[key]):
            raise not_carried(f"{spot}/{key}")
    argv = None if check.get("disable") else health_argv(check["test"], f"{spot}/test") if check.get("test") else None
    timing = {k: seconds(check[k], f"{spot}/{k}") for k in ("interval", "timeout", "start_period") if k in check}
    if "retries" in check:
        timing["retries"] = int(check["retries"])
    if not web:
        return {"health_command": argv}, timing
    path = "/"
    for arg in argv or []:
        found = URL_RE.search(arg)
        if found:
            path = found.group(1) or "/"
            break
    extra = {**timing, **({"command": argv} if argv else {})}
    return {"health_path": path}, extra


def _build(name: str, build: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    """A compose build as the builder's build of a git source: ``subdirectory`` (the context, relative to
    the repository; the use case puts it under the source's subdirectory), ``dockerfile`` (inside it) and
    ``build_args`` (a value None: the application's build arg of that name)."""
    spot = f"services/{name}/build"
    if not ctx.has_repository:
        raise ComposeRefusal(spot, "a build needs the application's git repository: give a git source")
    for key in build:
        if key not in keys.BUILD_KEYS and present(build[key]):
            raise not_carried(f"{spot}/{key}")
    raw = str(build.get("context") or ".")
    if "://" in raw or raw.startswith("git@"):
        raise ComposeRefusal(f"{spot}/context", "a remote build context is not carried: a path in the repository")
    context = posixpath.normpath(raw)
    context = "" if context == "." else context
    try:
        names.relative_path(context)
        dockerfile = names.dockerfile_path(str(build.get("dockerfile") or "Dockerfile"))
    except ValueError as exc:
        raise ComposeRefusal(spot, f"a build context and Dockerfile are paths in the repository: {exc}") from None
    args = []
    for key, value in sorted((build.get("args") or {}).items()):
        try:
            names.env_name(key)
        except ValueError as exc:
            raise ComposeRefusal(f"{spot}/args/{key}", str(exc)) from None
        args.append({"name": key, "value": literal(value)})
    return {"subdirectory": context, "dockerfile": dockerfile, "build_args": args}


def literal(value: Any) -> Any:
    """A value of the normalised file as the container gets it: ``$$`` (compose's escaped ``$``) is ``$``."""
    return value.replace("$$", "$") if isinstance(value, str) else value


def _argv(value: Any) -> list[str] | None:
    if not present(value):
        return None
    return [literal(value)] if isinstance(value, str) else [literal(str(v)) for v in value]


def _environment(name: str, env: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for key, value in sorted(env.items()):
        try:
            names.container_env_name(key)
        except ValueError as exc:
            raise ComposeRefusal(f"services/{name}/environment/{key}", str(exc)) from None
        out.append({"name": key, "value": literal(value)})  # None: the application's variable of that name
    return out


def _port_hosts(route: Route, port: int) -> dict[str, Any]:
    """A ``port_hosts`` entry of another routed port: its named hosts, its path when it is not the
    service's (``/``: the whole hosts), and ``generated`` when it gets a generated host of its own (the api
    names it: ``domain/hosts.port_host``)."""
    out: dict[str, Any] = {"port": port, "hosts": list(route.more[port])}
    path = route.more_paths.get(port)
    if path != route.path:
        out["path"] = path or "/"
    if port in route.generated:
        out["generated"] = True
    return out


def translate_service(name: str, svc: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    """The Berth service of the compose service ``name`` (raises ``ComposeRefusal`` naming the spot)."""
    allowed = _check_keys(name, svc, ctx)
    published = _ports(name, svc, ctx)
    deploy = svc.get("deploy") or {}
    replicas = int(deploy.get("replicas") or 1)
    route = ctx.routes.get(name)
    web = route is not None
    out: dict[str, Any] = {"kind": "web" if web else "worker", "name": ctx.names[name], "replicas": replicas}
    if route is not None:
        out.update({"port": route.port, "domains": list(route.domains)})
        if route.path is not None:
            out["path_prefix"] = route.path
        if route.more:
            out["port_hosts"] = [_port_hosts(route, p) for p in route.more]
        if route.shared:
            out["shared_hosts"] = list(route.shared)
        if route.buffer_mb is not None:
            out["buffer_requests"] = {"max_body_mb": route.buffer_mb}
    health, timing = _health(name, svc, web)
    out.update(health)
    out["command"] = _argv(svc.get("command"))
    limits = _limits(name, svc)
    if limits:
        out["limits"] = limits
    volumes, binds, files = _mounts(name, svc, ctx, replicas)
    if volumes:
        out["volumes"] = volumes
    if binds:
        out["binds"] = binds
    if files:
        out["files"] = files
    if any(v.get("single_writer") for v in volumes) or published:
        out["strategy"] = "recreate"  # one container may write the volume, or bind the port
    if present(svc.get("build")):
        out["build"] = _build(name, svc["build"], ctx)
        if svc.get("image"):
            ctx.notes.append(f"services/{name}/image: not carried: Berth names the images it builds")
    elif svc.get("image"):
        try:
            out["image"] = names.image_ref(str(svc["image"]))
        except ValueError as exc:
            raise ComposeRefusal(f"services/{name}/image", str(exc)) from None
    else:
        raise ComposeRefusal(f"services/{name}", "a service needs an image or a build")
    extras = {
        "entrypoint": _argv(svc.get("entrypoint")),
        "environment": _environment(name, svc.get("environment") or {}),
        "health": timing,
        "user": svc.get("user"),
        "working_dir": svc.get("working_dir"),
        "allowed": allowed,
        "host_limits": {
            **host_limits(name, svc),
            **container_options(name, svc),
            **runtime_options(name, svc, ctx.notes),
        },
        "tty": svc.get("tty") is True,
        "stdin_open": svc.get("stdin_open") is True,
        "secrets": service_secrets(name, svc, ctx.secrets),
        "published_ports": published,
    }
    if present(svc.get("stop_grace_period")):
        extras["stop_grace_s"] = seconds(svc["stop_grace_period"], f"services/{name}/stop_grace_period")
    out.update({k: v for k, v in extras.items() if present(v)})
    return out
