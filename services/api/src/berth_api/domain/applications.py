"""An application's desired state and the snapshot a deployment sends: pure, no I/O.

The stored configuration (``config``) holds everything but variable values; runtime variables and build
args are kept apart (secret values sealed). A deployment's snapshot is the catalogue's ``ApplicationSpec``;
it is stored with every secret value sealed (``seal``) and shown with every secret value masked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from berth_common.catalogue import ApplicationSpec, TlsOptions
from berth_common.redaction import MASK as MASK
from berth_common.redaction import redact as redact  # the one rule, used from here by the use cases

VariableKind = Literal["runtime", "build"]
Sealer = Callable[[str, str], str]  # (value, associated data) -> sealed text
Opener = Callable[[str, str], str]  # (sealed text, associated data) -> value


@dataclass(frozen=True)
class Variable:
    """A runtime variable or build arg; ``value`` is the plaintext (only ever in memory)."""

    name: str
    value: str
    secret: bool = False

    def __repr__(self) -> str:
        shown = MASK if self.secret else repr(self.value)
        return f"Variable({self.name!r}, {shown}, secret={self.secret})"


@dataclass(frozen=True)
class VariableInput:
    """A variable as a request gives it: ``value`` None keeps the stored value (how a secret is kept)."""

    name: str
    value: str | None
    secret: bool

    def __repr__(self) -> str:
        return f"VariableInput({self.name!r}, secret={self.secret})"


class MissingValueError(ValueError):
    """A variable was given without a value where the stored one cannot be kept."""

    def __init__(self, index: int, name: str, why: str) -> None:
        super().__init__(f"{name}: {why}")
        self.index = index
        self.name = name


def check_kept_values(incoming: Iterable[VariableInput], stored_secret: Mapping[str, bool]) -> None:
    """A variable without a value keeps the stored one: there must be one, and a secret stays secret
    (turning it plain without a new value would reveal it). ``stored_secret``: name -> is secret."""
    for i, var in enumerate(incoming):
        if var.value is not None:
            continue
        if var.name not in stored_secret:
            raise MissingValueError(i, var.name, "a value is required (only a stored variable may omit it)")
        if stored_secret[var.name] and not var.secret:
            raise MissingValueError(i, var.name, "a secret turns plain only with a new value")


def git_ref(source: Mapping[str, Any]) -> str:
    """What the builder checks out: the commit if pinned, else the branch, else the remote's HEAD."""
    return str(source.get("commit") or source.get("branch") or "HEAD")


def _service_spec(service: Mapping[str, Any], hosts: list[str]) -> dict[str, Any]:
    common = {"kind": service["kind"], "name": service["name"], "replicas": service.get("replicas", 1)}
    if service.get("limits"):
        common["limits"] = service["limits"]
    if service.get("servers"):
        common["servers"] = service["servers"]
    for key in ("volumes", "binds"):
        if service.get(key):
            common[key] = service[key]
    if service.get("strategy", "rolling") != "rolling":
        common["strategy"] = service["strategy"]
    if service["kind"] == "web":
        return {
            **common,
            "port": service["port"],
            "health_path": service.get("health_path") or "/",
            "command": service.get("command"),
            "hosts": hosts,
            **({"buffer_requests": service["buffer_requests"]} if service.get("buffer_requests") else {}),
            **({"path_prefix": service["path_prefix"]} if service.get("path_prefix") else {}),
        }
    return {**common, "command": service.get("command"), "health_command": service.get("health_command")}


def _var_spec(v: Variable) -> dict[str, Any]:
    return {"name": v.name, "value": v.value, "secret": v.secret}


def application_spec(
    *,
    name: str,
    environment: str,
    config: Mapping[str, Any],
    runtime: Iterable[Variable],
    build: Iterable[Variable],
    hosts: Mapping[str, list[str]],
    tls: TlsOptions | None = None,
) -> ApplicationSpec:
    """The snapshot of an application a deployment runs (raises pydantic's ValidationError if invalid);
    ``tls``: its HTTPS options (``domain.tls.options``), None: HTTP only."""
    src = config["source"]
    if src["kind"] == "image":
        source: dict[str, Any] = {"kind": "image", "image": src["image"]}
        if src.get("pull_policy"):
            source["pull_policy"] = src["pull_policy"]
    else:
        source = {
            "kind": "git",
            "repository": src["repository"],
            "ref": git_ref(src),
            "subdirectory": src.get("subdirectory") or "",
            "dockerfile": src.get("dockerfile"),
            "build_args": [_var_spec(v) for v in build],
            **({"build_server": src["build_server"]} if src.get("build_server") else {}),
        }
    return ApplicationSpec.model_validate(
        {
            "name": name,
            "environment": environment,
            "source": source,
            "services": [_service_spec(s, hosts.get(s["name"], [])) for s in config["services"]],
            "env": [_var_spec(v) for v in runtime],
            "limits": config.get("limits") or {},
            "restart_policy": config.get("restart_policy", "unless-stopped"),
            "stop_timeout_s": config.get("stop_timeout_s", 10),
            **({"tls": tls} if tls is not None else {}),
            **({"pre_deploy": config["pre_deploy"]} if config.get("pre_deploy") else {}),
        }
    )


def with_image(spec: ApplicationSpec, image: str, *, keep_policy: bool = False) -> ApplicationSpec:
    """The same snapshot running a built or pulled image (a rollback: no rebuild). ``keep_policy``: the
    snapshot's pull policy goes with it (a digest needs none: the registry can only give that image)."""
    source: dict[str, Any] = {"kind": "image", "image": image}
    policy = getattr(spec.source, "pull_policy", None)
    if keep_policy and policy:
        source["pull_policy"] = policy
    return ApplicationSpec.model_validate({**_plain(spec), "source": source})


def runs_app_image(spec: ApplicationSpec) -> bool:
    """A service runs the application's own image (a compose service may run an image or a build of its own)."""
    return any(svc.image is None and svc.build is None for svc in spec.services)


def rollback_gaps(spec: ApplicationSpec, target: ApplicationSpec) -> list[str]:
    """The services of ``spec`` that build their own image and ran no image of their own in the deployment
    of snapshot ``target`` (a rollback to it has no image for them)."""
    ran = {svc.name for svc in target.services if svc.build is not None or svc.image is not None}
    return [svc.name for svc in spec.services if svc.build is not None and svc.name not in ran]


def _plain(spec: ApplicationSpec) -> dict[str, Any]:
    data: dict[str, Any] = spec.model_dump(mode="json")
    return data


def _map_auth(auth: dict[str, Any], fn: Callable[[dict[str, Any], str], Any], aad: str) -> dict[str, Any]:
    return {**auth, "password": fn({"value": auth["password"]}, f"{aad}:registry:{auth['registry']}")}


def _map_secrets(data: dict[str, Any], fn: Callable[[dict[str, Any], str], Any], aad: str) -> dict[str, Any]:
    """Apply ``fn(entry, aad)`` to the value of every secret variable and build arg of a snapshot."""
    out = dict(data)
    out["env"] = [
        {**e, "value": fn(e, f"{aad}:env:{e['name']}")} if e.get("secret") else e for e in data.get("env", [])
    ]
    source = dict(data["source"])
    if source.get("kind") == "git":
        source["build_args"] = [
            {**e, "value": fn(e, f"{aad}:build:{e['name']}")} if e.get("secret") else e
            for e in source.get("build_args", [])
        ]
    if source.get("kind") == "image" and source.get("auth"):  # a registry password or token
        source["auth"] = _map_auth(source["auth"], fn, aad)
    if source.get("kind") == "git" and source.get("push"):  # the push registry's
        source["push"] = {**source["push"], "auth": _map_auth(source["push"]["auth"], fn, aad)}
    if source.get("kind") == "git" and source.get("base_auths"):  # the mirrors' of base images
        source["base_auths"] = [_map_auth(a, fn, aad) for a in source["base_auths"]]
    if source.get("kind") == "git" and source.get("auth"):  # a private repository's deploy key or token
        found = {k: fn({"value": v}, f"{aad}:git:{k}") for k, v in source["auth"].items() if k in GIT_SECRETS}
        source["auth"] = {**source["auth"], **found}
    out["source"] = source
    tls = data.get("tls")
    if tls and tls.get("certificates"):  # the keys of uploaded certificates
        certs = [
            {**c, "key": fn({"value": c["key"]}, f"{aad}:certificate:{c['certificate_id']}")}
            for c in tls["certificates"]
        ]
        out["tls"] = {**tls, "certificates": certs}
    return out


VARIABLE_AAD = {"application": "var", "environment": "envvar", "group": "groupvar"}


def variable_aad(scope: str, owner_id: str, kind: str, name: str) -> str:
    """Associated data of a stored variable's sealed value: bound to its scope, owner, kind and name."""
    return f"{VARIABLE_AAD[scope]}:{owner_id}:{kind}:{name}"


def file_aad(application_id: str, path: str) -> str:
    """Associated data of a compose application's stored file (``compose.files``): bound to the application
    and the path."""
    return f"file:{application_id}:{path}"


GIT_SECRETS = ("private_key", "token")  # the sealed fields of a snapshot's ``source.auth``
ROW_AAD = {
    "registries": "registry",
    "servers": "server",
    "databases": "database",
    "backup_destinations": "backup-destination",
    "backup_keys": "backup-key",
    "certificates": "certificate",
    "webhooks": "webhook",
    "webhook_status_targets": "webhook-status",
    "git_credentials": "git-credential",
    "preview_settings": "preview-settings",
}


def row_aad(table: str, row_id: str) -> str:
    """Associated data of the one sealed value of a row (a registry's password or token, a server's private
    key): bound to that row."""
    return f"{ROW_AAD[table]}:{row_id}"


def snapshot_aad(deployment_id: str) -> str:
    """Associated data of a deployment snapshot's sealed values (a value moved to another row does not open)."""
    return f"deployment:{deployment_id}"


def seal_spec(spec: ApplicationSpec, seal: Sealer, aad: str) -> dict[str, Any]:
    """The snapshot as JSON with every secret value sealed (to store)."""
    return _map_secrets(_plain(spec), lambda e, a: seal(str(e["value"]), a), aad)


def open_spec(data: dict[str, Any], open_: Opener, aad: str) -> ApplicationSpec:
    """A stored snapshot with its secret values opened again (for a rollback)."""
    return ApplicationSpec.model_validate(_map_secrets(data, lambda e, a: open_(str(e["value"]), a), aad))


def reseal_spec(data: dict[str, Any], reseal: Callable[[str, str], str], aad: str) -> dict[str, Any]:
    """A stored snapshot with every sealed value replaced by ``reseal(sealed, aad)`` (key rotation)."""
    return _map_secrets(data, lambda e, a: reseal(str(e["value"]), a), aad)


def mask_spec(data: dict[str, Any]) -> dict[str, Any]:
    """A stored snapshot as it may be shown: every secret value replaced by None, also those a compose
    service carries itself (its environment, its build's args, its image's registry credentials) and the
    contents of the application's files."""
    out = _map_secrets(data, lambda e, a: None, "")
    out["services"] = [_mask_service(svc) for svc in data.get("services", [])]
    if data.get("volume_options"):  # a share's password: its mount option, never its value
        out["volume_options"] = {
            k: {**v, "secret": {**v["secret"], "value": None}} if v.get("secret") else v
            for k, v in data["volume_options"].items()
        }
    if data.get("files"):  # a compose application's files: their paths and modes, never their contents
        out["files"] = [{**f, "content": None} for f in data["files"]]
    return out


def _mask_service(svc: dict[str, Any]) -> dict[str, Any]:
    out = dict(svc)
    if svc.get("env"):
        out["env"] = [{**e, "value": None} if e.get("secret") else e for e in svc["env"]]
    if (svc.get("build") or {}).get("build_args"):
        args = [{**e, "value": None} if e.get("secret") else e for e in svc["build"]["build_args"]]
        out["build"] = {**svc["build"], "build_args": args}
    if (svc.get("image") or {}).get("auth"):
        out["image"] = {**svc["image"], "auth": _map_auth(svc["image"]["auth"], lambda e, a: None, "")}
    if svc.get("secret_args"):
        out["secret_args"] = [{**a, "value": None} for a in svc["secret_args"]]
    if svc.get("secret_files"):  # compose's secrets: their targets and modes, never their values
        out["secret_files"] = [{**f, "value": None} for f in svc["secret_files"]]
    return out


def secret_values(variables: Iterable[Variable]) -> list[str]:
    return [v.value for v in variables if v.secret and v.value]
