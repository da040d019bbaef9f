"""The deployment's snapshot of a compose application (pure): the translation (``compose_apps``) over the
application's snapshot.

A deployment's snapshot carries the translation : each service's own image (pulled by
the application's pull policy, with the team's credentials for its registry), entrypoint, environment (over
the application's variables), aliases, ``depends_on``, healthcheck, user, working directory and restart
policy, on the application's private network; the scheduler runs them in the start order. The dangerous
keys an administrator allowed for the team are carried as the service's ``privileges``, except
``network_mode: host`` (409, ``COMPOSE_NOT_DEPLOYABLE``), and its ``runtime``. The volumes' local-driver
options and the private network's options (subnet, gateway, MTU) are the application's, a service's pinned
address its own. A service whose ``build:`` is not the
application's own build (its git source's subdirectory and Dockerfile, no args of its own) carries it as
its own ``build`` (context, Dockerfile, args: an arg without a value is the application's build arg of
that name, secret ones sealed): the scheduler asks the builder for one image per such service.
A service's port routed on a generated host of its own (``port_hosts`` entry ``generated``) gets that host,
which the api claimed for it (``app_hosts``); a port given the service's own generated host (under another
path) leaves it to the service's own port too (``shared_hosts``). A service's compose secrets are its
``secret_files``, each the value of the application's variable the translation names.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import SecretStr

from berth_api.adapters.applications import HostRow
from berth_api.domain.compose import secret_refs
from berth_api.domain.problems import ProblemError
from berth_api.usecases import compose_files
from berth_common.catalogue import ApplicationSpec, BuildArg, GitSource, ImageSource

COMPOSE_NOT_DEPLOYABLE = "compose-not-deployable"
COMPOSE_STOP_GRACE_S = 10  # compose's stop_grace_period when a service sets none


def not_deployable(why: str) -> ProblemError:
    return ProblemError(409, why, slug=COMPOSE_NOT_DEPLOYABLE, title="Compose application not deployable yet")


def _healthcheck(svc: dict[str, Any]) -> dict[str, Any] | None:
    """The Docker healthcheck of a translated service: its test (a web service keeps it in ``health``) and
    timing."""
    timing = dict(svc.get("health") or {})
    test = timing.pop("command", None) if svc["kind"] == "web" else svc.get("health_command")
    if not test:
        return None
    names = {"interval": "interval_s", "timeout": "timeout_s", "retries": "retries", "start_period": "start_period_s"}
    return {"test": test, **{names[k]: v for k, v in timing.items() if k in names}}


def _build_args(given: list[dict[str, Any]], source: GitSource) -> list[BuildArg]:
    """A compose build's args: literal, or (a value None) the application's build arg of that name, secret
    or not; a name the application does not have is left out, as compose leaves an unset arg."""
    own = {a.name: a for a in source.build_args}
    out = []
    for arg in given:
        if arg["value"] is not None:
            out.append(BuildArg(name=arg["name"], value=SecretStr(str(arg["value"]))))
        elif arg["name"] in own:
            out.append(own[arg["name"]])
    return out


def _own_image(svc: dict[str, Any], source: Any) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """A translated service's own image and own build (both None: it runs the application's image or
    build). A build of the application's own context and Dockerfile without args of its own runs the
    application's image; any other is built for the service."""
    if "build" in svc:
        build = svc["build"]
        if not isinstance(source, GitSource):
            raise not_deployable(
                f"The compose service {svc['name']} builds its own image: builds need the application's git source."
            )
        same = (
            build["subdirectory"] == source.subdirectory.strip("/")
            and build["dockerfile"] == (source.dockerfile or "Dockerfile")
            and not build.get("build_args")
        )
        if same:
            return None, None
        own = {
            "subdirectory": build["subdirectory"],
            "dockerfile": build["dockerfile"],
            "build_args": _build_args(build.get("build_args") or [], source),
        }
        return None, own
    if isinstance(source, ImageSource) and svc["image"] == source.image:
        return None, None
    policy = source.pull_policy if isinstance(source, ImageSource) else None
    return {"kind": "image", "image": svc["image"], **({"pull_policy": policy} if policy else {})}, None


def _privileges(svc: dict[str, Any]) -> dict[str, Any] | None:
    """The dangerous keys an administrator allowed for the service, as the spec's privileges (a 409 for
    ``network_mode: host``: the services of a compose application run on its private network)."""
    allowed = svc.get("allowed") or {}
    if not allowed:
        return None
    if allowed.get("network_mode") == "host":
        raise not_deployable(
            f"The compose service {svc['name']} asks for network_mode: host, which Berth does not run: the "
            "services of a compose application run on its private network and are routed through its proxy."
        )
    devices = [
        {"source": d["source"], "target": d.get("target") or d["source"], "permissions": d.get("permissions") or "rwm"}
        for d in allowed.get("devices") or []
    ]
    return {
        "privileged": bool(allowed.get("privileged")),
        "cap_add": list(allowed.get("cap_add") or []),
        "devices": devices,
        "security_opt": list(allowed.get("security_opt") or []),
        "pid_host": allowed.get("pid") == "host",
        "ipc_host": allowed.get("ipc") == "host",
        "runtime": allowed.get("runtime"),
    }


def compose_spec(
    spec: ApplicationSpec,
    config: dict[str, Any],
    files: list[dict[str, Any]] | None = None,
    hosts: Iterable[HostRow] = (),
) -> ApplicationSpec:
    """The deployment's snapshot of a compose application: ``spec`` (its services as every application
    has them) with what the translation adds to each service, on the application's private network, and
    its ``files`` (opened: ``compose_files.opened``; None: a placeholder content of each stored path, to
    check the shape); ``hosts``: the application's claimed hosts (``app_hosts.sync_hosts``), where the
    generated host of each other routed port that has one is. Another application's ``spec`` is returned
    as it is. Raises a 409 for a ``build:``
    without a git source or ``network_mode: host``, and pydantic's ValidationError for a snapshot the
    catalogue refuses."""
    if not config.get("compose"):
        return spec
    translated = {s["name"]: s for s in config["compose_translated"]["services"]}
    graces = any("stop_grace_s" in s for s in translated.values())
    hosts = list(hosts)
    ports = {(h.service, h.port): h.host for h in hosts if h.port is not None}
    data = spec.model_dump()
    for svc in data["services"]:
        found = translated[svc["name"]]
        image, build = _own_image(found, spec.source)
        extra: dict[str, Any] = {
            "image": image,
            "build": build,
            "entrypoint": found.get("entrypoint"),
            "env": _environment(found, spec),
            "secret_args": _secret_args(found, spec),
            "secret_files": _secret_files(found, spec),
            "internal_network": found.get("internal_network"),
            "host_limits": found.get("host_limits"),
            "aliases": found.get("aliases") or [],
            "depends_on": found.get("depends_on") or [],
            "healthcheck": _healthcheck(found),
            "user": None if found.get("user") is None else str(found["user"]),
            "working_dir": found.get("working_dir"),
            "restart": found["restart"] if found.get("restart", spec.restart_policy) != spec.restart_policy else None,
            "restart_retries": found.get("restart_retries"),
            "privileges": _privileges(found),
            "stop_timeout_s": _stop_timeout(found, graces),
            "files": found.get("files") or [],
            "tty": found.get("tty", False),
            "stdin_open": found.get("stdin_open", False),
            "published_ports": found.get("published_ports") or [],
            "ipv4_address": found.get("ipv4_address"),
        }
        if found.get("port_hosts"):  # more routed ports of a web service (``catalogue/port_hosts.py``)
            extra["port_hosts"] = [_port_hosts(svc["name"], e, ports) for e in found["port_hosts"]]
            extra["shared_hosts"] = _shared_hosts(svc["name"], found, hosts)
        svc.update(extra)
    if files is None:
        files = [
            {"path": f["path"], "content": "x", "mode": f.get("mode", 0o644)}
            for f in compose_files.stored_files(config)
        ]
    data["files"] = files
    data["private_network"] = True
    data["volume_options"] = _volume_options(config["compose_translated"].get("volume_options") or {}, spec)
    data["network_options"] = config["compose_translated"].get("network_options")
    return ApplicationSpec.model_validate(data)


def _shared_hosts(service: str, found: dict[str, Any], hosts: Iterable[HostRow]) -> list[str]:
    """The hosts of a service's other routed ports its own port keeps too (under another path): those the
    translation found, and the service's own generated host when another port of it is given that host."""
    own = {h.host for h in hosts if h.service == service and h.generated and h.port is None}
    given = {h for e in found["port_hosts"] for h in e["hosts"]}
    return list(dict.fromkeys([*(found.get("shared_hosts") or []), *sorted(own & given)]))


def _port_hosts(service: str, entry: dict[str, Any], ports: Mapping[tuple[str, int], str]) -> dict[str, Any]:
    """A translated ``port_hosts`` entry as the catalogue's ``PortHosts``: its generated host (when it has
    one) first, then its named ones, and its path."""
    generated = ports.get((service, entry["port"])) if entry.get("generated") else None
    out: dict[str, Any] = {"port": entry["port"], "hosts": [*([generated] if generated else []), *entry["hosts"]]}
    if entry.get("path"):
        out["path"] = entry["path"]
    return out


def _environment(svc: dict[str, Any], spec: ApplicationSpec) -> list[dict[str, Any]]:
    """A compose service's own environment over the application's: literal values, and values holding
    secret variables rendered from the application's (``secret_refs``) as secret ones. A value of None is
    the application's variable of that name, which every service has already."""
    values = {v.name: v.reveal() for v in spec.env}
    out: list[dict[str, Any]] = []
    for e in svc.get("environment") or []:
        if e.get("parts"):
            try:
                out.append({"name": e["name"], "value": secret_refs.render(e["parts"], values), "secret": True})
            except KeyError as exc:
                raise not_deployable(
                    f"the environment variable {e['name']} of compose service {svc['name']} uses the secret "
                    f"variable {exc.args[0]}, which the application no longer has: set it again"
                ) from None
        elif e["value"] is not None:
            out.append({"name": e["name"], "value": str(e["value"])})
    return out


def _secret_args(svc: dict[str, Any], spec: ApplicationSpec) -> list[dict[str, Any]]:
    """The values of a compose service's command and entrypoint arguments holding secret variables, rendered
    from the application's (``secret_refs``); the scheduler puts them in the container's configuration."""
    values = {v.name: v.reveal() for v in spec.env}
    out: list[dict[str, Any]] = []
    for arg in svc.get("secret_args") or []:
        try:
            value = secret_refs.render(arg["parts"], values)
        except KeyError as exc:
            raise not_deployable(
                f"the {arg['argv']} of compose service {svc['name']} uses the secret variable {exc.args[0]}, "
                "which the application no longer has: set it again"
            ) from None
        out.append({"argv": arg["argv"], "index": arg["index"], "value": value})
    return out


def _volume_options(given: Mapping[str, Any], spec: ApplicationSpec) -> dict[str, Any]:
    """The volumes' options, a share's password (``secret``: the variable the translation names) its value,
    sealed with the snapshot (``VolumeSecret``)."""
    values = {v.name: v.reveal() for v in spec.env if v.secret}
    out: dict[str, Any] = {}
    for volume, opts in given.items():
        secret = opts.get("secret")
        if secret is None:
            out[volume] = opts
            continue
        value = values.get(secret["secret"])
        if value is None:
            raise not_deployable(
                f"the volume {volume} mounts its share with the secret variable {secret['secret']}, which the "
                "application does not have as a secret variable: set it"
            )
        if not value or any(c in value for c in ", \t\n"):
            raise not_deployable(
                f"the secret variable {secret['secret']} of the volume {volume} is empty or holds a comma or a "
                "blank, which the share's mount options cannot carry"
            )
        out[volume] = {**opts, "secret": {"option": secret["option"], "value": value}}
    return out


def _secret_files(svc: dict[str, Any], spec: ApplicationSpec) -> list[dict[str, Any]]:
    """A compose service's secrets (``domain/compose/secret_files``) as its secret files: each value the
    application's variable the translation names, at its target with its mode."""
    values = {v.name: v.reveal() for v in spec.env}
    out: list[dict[str, Any]] = []
    for found in svc.get("secrets") or []:
        if found["variable"] not in values:
            raise not_deployable(
                f"the secret {found['name']} of compose service {svc['name']} is the application's variable "
                f"{found['variable']}, which the application does not have: set it"
            )
        out.append({"target": found["target"], "mode": found["mode"], "value": values[found["variable"]]})
    return out


def _stop_timeout(svc: dict[str, Any], graces: bool) -> int | None:
    """A service's own stop timeout: its ``stop_grace_period``; compose's default (10 s) when another service
    of the file sets one (the application's is then the largest); None (the application's) when none does."""
    if "stop_grace_s" in svc:
        return min(3600, math.ceil(float(svc["stop_grace_s"])))
    return COMPOSE_STOP_GRACE_S if graces else None
