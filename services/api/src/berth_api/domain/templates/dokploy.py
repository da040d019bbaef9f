"""Importing a Dokploy blueprint: ``template.toml`` (``[variables]``, ``[config]`` env, domains and mounts,
the ``${helper}`` grammar of Dokploy's processors.ts) plus its ``docker-compose.yml`` and, when given,
``meta.json``. The TOML is read as Dokploy's lenient parser reads it (see lenient_toml)."""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from berth_api.domain.templates import dokploy_network, health_words
from berth_api.domain.templates.dokploy_dirs import empty_dirs
from berth_api.domain.templates.format import check
from berth_api.domain.templates.imported import ImportResult, headline, slugify
from berth_api.domain.templates.interp import rewrite
from berth_api.domain.templates.lenient_toml import TomlError, loads
from berth_api.domain.templates.model import NAME, Template, TemplateError, TemplateFile, Variable, dump_yaml, load_yaml

_HELPER = re.compile(r"\$\{([^}]+)\}")  # processors.ts: no nested braces
_COMPOSE_DEFAULT = re.compile(r"\$\{([A-Za-z_]\w*):?-([^}]*)\}")
_JWT_2030 = 1893456000  # 2030-01-01T00:00:00Z, Dokploy's default expiry
TOML, COMPOSE, META = "template.toml", "docker-compose.yml", "meta.json"


@dataclass
class _Ctx:
    names: dict[str, str]  # Dokploy variable name -> Berth variable name
    variables: dict[str, Variable] = field(default_factory=dict)
    not_carried: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    counter: int = 0

    def fresh(self, base: str) -> str:
        self.counter += 1
        name = re.sub(r"[^A-Za-z0-9_]", "_", base)[:100]
        while name in self.variables or name in self.names.values():
            name = f"{name}_{self.counter}"
        return name


def _timestamp(arg: str, unit: str, where: str, ctx: _Ctx) -> Variable | None:
    if not arg:
        return Variable("", "timestamp", {"unit": unit})
    try:
        when = datetime.fromisoformat(arg.replace("Z", "+00:00"))
    except ValueError:
        ctx.not_carried.append(f"{where}: the date '{arg}' is not ISO 8601; kept verbatim")
        return None
    return Variable(
        "", "timestamp", {"unit": unit, "at": (when if when.tzinfo else when.replace(tzinfo=UTC)).isoformat()}
    )


def helper(expr: str, where: str, ctx: _Ctx, raw: dict[str, Any], defining: str | None = None) -> Variable | None:
    """The variable (unnamed) a ``${expr}`` helper generates, or None when it is not a helper. Helpers come
    before variables, as in processValue: ``username = "${username}"`` is the helper."""
    head, _, arg = expr.partition(":")
    if expr == "domain":
        return Variable("", "domain", {})
    if head == "password" and (not arg or arg.isdigit()):
        return Variable("", "password", {"length": int(arg or 16), "alphabet": "lower_alnum"})
    if head == "base64" and (not arg or arg.isdigit()):
        return Variable("", "base64", {"bytes": int(arg or 32)})
    if head == "hash" and (not arg or arg.isdigit()):
        return Variable("", "hex", {"length": int(arg or 8)})
    if expr == "uuid":
        return Variable("", "uuid", {})
    if expr == "randomPort":
        ctx.notes.append(f"{where}: randomPort draws from 10000-60999 in Berth (Dokploy: 0-65534)")
        return Variable("", "port", {})
    if head in ("timestamp", "timestampms") and (head == "timestampms" or not arg):
        return _timestamp(arg, "ms", where, ctx)
    if head == "timestamps":
        return _timestamp(arg, "s", where, ctx)
    if head == "jwt":
        return _jwt(arg, where, ctx, raw, defining)
    if expr == "username":
        ctx.notes.append(f"{where}: username is 10 random lower-case letters (Dokploy: a faker user name)")
        return Variable("", "password", {"length": 10, "alphabet": "lower"}, secret=False)
    if expr == "email":
        ctx.notes.append(f"{where}: email is a value to fill in, admin@example.com by default (Dokploy: faker)")
        return Variable("", "input", {"default": "admin@example.com"})
    return None


def _jwt(arg: str, where: str, ctx: _Ctx, raw: dict[str, Any], defining: str | None) -> Variable:
    if arg and re.fullmatch(r"\d{1,3}", arg):
        ctx.notes.append(f"{where}: jwt:{arg} is {arg} random bytes as hex (Dokploy's deprecated form), not a JWT")
        return Variable("", "hex", {"bytes": int(arg)})
    secret_var, _, payload_var = arg.partition(":")
    if not secret_var:
        key_name = ctx.fresh(f"{where.rsplit('/', 1)[-1]}_jwt_key")
        ctx.variables[key_name] = Variable(key_name, "hex", {"bytes": 32})
        key = "${var." + key_name + "}"
    elif secret_var in ctx.names and ctx.names[secret_var] == defining:
        key = str(raw.get(secret_var, secret_var))  # signed with its own unresolved text, as Dokploy does
        ctx.notes.append(f"{where}: signed with its own text '{key}' (the variable names itself)")
    else:
        key = "${var." + ctx.names[secret_var] + "}" if secret_var in ctx.names else secret_var
    payload: dict[str, Any] = {"iss": "dokploy", "exp": _JWT_2030}
    if payload_var:
        text = str(raw.get(payload_var, ""))
        text = re.sub(r"\$\{timestamps:([^}]+)\}", lambda m: _seconds(m.group(1)), text)
        text = re.sub(r"\$\{timestampms:([^}]+)\}", lambda m: str(int(_seconds(m.group(1)) or 0) * 1000), text)
        try:
            extra = json.loads(text)
        except ValueError:
            ctx.not_carried.append(f"{where}: the payload variable '{payload_var}' is not JSON; default claims used")
            extra = {}
        if isinstance(extra, dict):
            payload.update(extra)
    options: dict[str, Any] = {"key": key, "payload": payload, "issued_at": "iat" not in payload}
    return Variable("", "jwt", options)


def _seconds(date: str) -> str:
    try:
        when = datetime.fromisoformat(date.replace("Z", "+00:00"))
    except ValueError:
        return "0"
    return str(int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()))


def convert(text: str, where: str, ctx: _Ctx, raw: dict[str, Any], base: str) -> str:
    """Dokploy's processValue as Berth references: a defined variable -> ``${var.x}``, a helper -> a new
    variable (each occurrence its own value, as in Dokploy), ``${APP_NAME}`` -> ``${app}``; anything else
    stays verbatim for compose."""

    def one(m: re.Match[str]) -> str:
        expr = m.group(1)
        made = helper(expr, where, ctx, raw)
        if made is None:
            if expr in ctx.names:
                return "${var." + ctx.names[expr] + "}"
            return "${app}" if expr == "APP_NAME" else m.group(0)
        name = ctx.fresh(f"{base}_{expr.split(':')[0]}")
        ctx.variables[name] = Variable(name, made.kind, made.options, None, made.secret)
        return "${var." + name + "}"

    return _HELPER.sub(one, text)


def _env_pairs(env: Any, ctx: _Ctx) -> list[tuple[str, str]]:
    """The three env forms: ``env = ["K=V", {K = "V"}]``, ``[config.env]`` table, ``[[config.env]]``."""
    pairs: list[tuple[str, str]] = []
    items = env.items() if isinstance(env, dict) else enumerate(env or [])
    for key, value in items:
        if isinstance(value, str) and not isinstance(env, dict):
            if not value.strip() or value.lstrip().startswith("#"):
                continue  # a blank line or a comment of the .env Dokploy writes
            k, _, v = value.partition("=")
            pairs.append((k.strip(), v))
        elif isinstance(value, dict) and not isinstance(env, dict):
            pairs.extend((str(k), _scalar(v)) for k, v in value.items())
        elif isinstance(env, dict):
            pairs.append((str(key), _scalar(value)))
        else:
            ctx.not_carried.append(f"config.env[{key}]: {value!r} is not a KEY=value entry")
    return pairs


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def import_dokploy(files: dict[str, str], name: str | None = None, loc: str = "/body/files") -> ImportResult:
    for required in (TOML, COMPOSE):
        if required not in files:
            raise TemplateError(f"{loc}/{required}", "required")
    try:
        doc, leniencies = loads(files[TOML])
    except TomlError as exc:
        raise TemplateError(f"{loc}/{TOML}", f"malformed TOML: {exc.detail}") from None
    compose_text = files[COMPOSE]
    compose = load_yaml(compose_text, f"{loc}/{COMPOSE}")
    if not isinstance(compose, dict) or not isinstance(compose.get("services"), dict) or not compose["services"]:
        raise TemplateError(f"{loc}/{COMPOSE}", "a compose file needs a non-empty 'services' mapping")
    meta = _meta(files, loc)
    raw_vars = doc.get("variables") or {}
    config = doc.get("config") or {}
    if not isinstance(raw_vars, dict) or not isinstance(config, dict):
        raise TemplateError(f"{loc}/{TOML}", "[variables] and [config] are tables")
    env_pairs = _env_pairs(config.get("env"), _Ctx({}))
    env_keys = {k for k, _ in env_pairs if NAME.match(k)}
    names = {}
    for var in raw_vars:
        berth = re.sub(r"[^A-Za-z0-9_]", "_", str(var)) or "var"
        if berth[0].isdigit():
            berth = "v_" + berth
        names[str(var)] = berth + "_var" if berth in env_keys else berth
    ctx = _Ctx(names)
    ctx.notes.extend(f"{TOML}: {used} (Dokploy's parser accepts it)" for used in leniencies)
    for var, value in raw_vars.items():
        _variable(str(var), value, ctx, raw_vars, dict(env_pairs))
    for key, value in _env_pairs(config.get("env"), ctx):
        _env(key, value, ctx, raw_vars)
    routes = _domains(config.get("domains") or [], compose["services"], ctx, raw_vars, loc)
    files_out = _mounts(config.get("mounts") or [], ctx, raw_vars)
    for key in sorted(set(config) - {"env", "domains", "mounts", "isolated"}):
        ctx.not_carried.append(f"config.{key}: not read by Dokploy's deploy")
    if "isolated" in config:
        ctx.notes.append(
            f"config.isolated = {_scalar(config['isolated'])}: unused by Dokploy's deploy; Berth always isolates"
        )
    for key in sorted(set(doc) - {"variables", "config"}):
        ctx.not_carried.append(f"[{key}]: not part of a Dokploy template")
    compose_out = _compose(compose_text, compose, env_keys, ctx, [f.path for f in files_out])
    for var, spec in routes.items():
        old = ctx.variables[var]
        ctx.variables[var] = Variable(var, "domain", {**old.options, "routes": spec}, old.description, old.secret)
    title = meta.get("name") or headline(name or "imported")
    template = Template(
        name=str(title),
        slug=slugify(str(meta.get("id") or name or title)),
        compose=compose_out,
        variables=tuple(ctx.variables.values()),
        description=str(meta.get("description") or ""),
        tags=tuple(str(t).lower() for t in meta.get("tags") or []),
        docs=_link(meta),
        version=str(meta["version"]) if meta.get("version") is not None else None,
        files=tuple(files_out),
    )
    if meta.get("logo"):
        ctx.not_carried.append(f"logo: '{meta['logo']}' is a file of the blueprint's folder")
    check(template, loc)
    return ImportResult(template, ctx.not_carried, ctx.notes)


def _link(meta: dict[str, Any]) -> str | None:
    links: dict[str, Any] = meta["links"] if isinstance(meta.get("links"), dict) else {}
    link = links.get("docs") or links.get("website") or links.get("github")
    return str(link) if link else None


def _meta(files: dict[str, str], loc: str) -> dict[str, Any]:
    if META not in files:
        return {}
    try:
        meta = json.loads(files[META])
    except ValueError as exc:
        raise TemplateError(f"{loc}/{META}", f"malformed JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise TemplateError(f"{loc}/{META}", "a JSON object")
    return meta


def _variable(var: str, value: Any, ctx: _Ctx, raw: dict[str, Any], env: dict[str, str]) -> None:
    """A ``[variables]`` entry; one that is exactly a compose default (``${INCOMING_PORT:-50000}``) of a name
    the env does not set, or sets to this variable itself (rutorrent), is that default: Dokploy writes it
    into the ``.env``, where compose gives an unset name its default."""
    where = f"variables.{var}"
    if not isinstance(value, str):
        ctx.notes.append(f"{where}: a {type(value).__name__}, carried as text")
        value = _scalar(value)
    m = _COMPOSE_DEFAULT.fullmatch(value)
    if m and m.group(1) not in ctx.names and env.get(m.group(1), "${" + var + "}").strip() == "${" + var + "}":
        ctx.notes.append(f"{where}: {value} is its default '{m.group(2)}', as the .env Dokploy writes gives it")
        value = m.group(2)
    _define(ctx.names[var], value, where, ctx, raw)


def _env(key: str, value: str, ctx: _Ctx, raw: dict[str, Any]) -> None:
    if not NAME.match(key):
        ctx.not_carried.append(f"config.env.{key}: '{key}' is not a variable name")
        return
    _define(key, value, f"config.env.{key}", ctx, raw)


def _define(name: str, value: str, where: str, ctx: _Ctx, raw: dict[str, Any]) -> None:
    """A value that is exactly one helper is a variable of that kind; any other is a value (an input when
    it references nothing, so that the user may change it)."""
    m = _HELPER.fullmatch(value)
    if m:
        made = helper(m.group(1), where, ctx, raw, defining=name)
        if made is not None:
            ctx.variables[name] = Variable(name, made.kind, made.options, None, made.secret)
            return
    text = convert(value, where, ctx, raw, name)
    ctx.variables[name] = (
        Variable(name, "value", {"value": text}) if "${" in text else Variable(name, "input", {"default": text})
    )


def _domains(
    entries: Any, services: dict[str, Any], ctx: _Ctx, raw: dict[str, Any], loc: str
) -> dict[str, list[dict[str, Any]]]:
    routes: dict[str, list[dict[str, Any]]] = {}
    for i, entry in enumerate(entries if isinstance(entries, list) else []):
        here = f"{loc}/{TOML}/config/domains/{i}"
        if not isinstance(entry, dict):
            raise TemplateError(here, "a domain is a table")
        service = entry.get("serviceName")
        if service not in services:
            raise TemplateError(f"{here}/serviceName", f"'{service}' is not a service of the compose file")
        for key in sorted(set(entry) - {"serviceName", "port", "host", "path"}):
            ctx.not_carried.append(f"config.domains[{i}].{key}: ignored by Dokploy")
        host = entry.get("host")
        target = None
        if isinstance(host, str):
            m = _HELPER.fullmatch(host)
            if m and m.group(1) in ctx.names and ctx.variables[ctx.names[m.group(1)]].kind == "domain":
                target = ctx.names[m.group(1)]
        if target is None:
            target = ctx.fresh(f"{service}_host")
            generated = host is None or (isinstance(host, str) and host.strip() == "${domain}")
            if generated:
                ctx.variables[target] = Variable(target, "domain", {})
            else:
                text = convert(str(host), f"config.domains[{i}].host", ctx, raw, target)
                ctx.variables[target] = Variable(target, "domain", {"default": text})
        route: dict[str, Any] = {"service": service}
        if entry.get("port") is not None:
            port = str(entry["port"]).replace("_", "")
            if not port.isdigit() or not 1 <= int(port) <= 65535:
                raise TemplateError(f"{here}/port", "a port from 1 to 65535")
            route["port"] = int(port)
        if entry.get("path"):
            route["path"] = str(entry["path"])
        routes.setdefault(target, []).append(route)
    return routes


def _mounts(entries: Any, ctx: _Ctx, raw: dict[str, Any]) -> list[TemplateFile]:
    out: list[TemplateFile] = []
    for i, entry in enumerate(entries if isinstance(entries, list) else []):
        if not isinstance(entry, dict):
            ctx.not_carried.append(f"config.mounts[{i}]: not a table")
            continue
        other = sorted(set(entry) - {"filePath", "content"})
        if other or "filePath" not in entry or "content" not in entry:
            ctx.not_carried.append(
                f"config.mounts[{i}]: keys {', '.join(other) or '(none)'} are not read by Dokploy"
                + ("" if "filePath" in entry and "content" in entry else "; no filePath/content")
            )
        if "filePath" in entry and "content" in entry:
            # Dokploy joins the path to the compose's files/ directory, so ``./Caddyfile`` is ``Caddyfile``
            path = posixpath.normpath(str(entry["filePath"]).lstrip("/") or ".")
            out.append(TemplateFile(path, convert(str(entry["content"]), f"config.mounts[{i}]", ctx, raw, "file")))
    return out


def _compose(text: str, compose: dict[str, Any], env_keys: set[str], ctx: _Ctx, files: list[str]) -> str:
    """The compose text with env references as Berth's, ``../files/`` as ``./files/`` (a directory no file
    is in: a volume, ``dokploy_dirs``); ``env_file: .env`` (the env Dokploy writes) becomes explicit
    environment entries."""
    text = rewrite(text, lambda r: r.name not in env_keys).replace("../files/", "./files/")
    uses_env_file = [
        svc for svc, spec in compose["services"].items() if isinstance(spec, dict) and ".env" in _env_files(spec)
    ]
    checks = [svc for svc, spec in compose["services"].items() if isinstance(spec, dict) and _words_check(spec)]
    proxy_net = dokploy_network.joins(compose)
    wanted = "./" in text or uses_env_file or checks or proxy_net
    doc = load_yaml(text, "/body/files/docker-compose.yml") if wanted else None
    dirs = empty_dirs(doc, files, ctx.notes) if doc is not None else False
    if doc is None or not (uses_env_file or dirs or checks or proxy_net):
        return text
    if proxy_net:
        dokploy_network.drop(doc, ctx.notes)
    for svc in checks:
        health_words.one_shell_command(doc["services"][svc], svc, ctx.notes)
    for svc in uses_env_file:
        spec = doc["services"][svc]
        rest = [f for f in _env_files(spec) if f != ".env"]
        spec.pop("env_file")
        if rest:
            spec["env_file"] = rest
        env = spec.get("environment") or {}
        if isinstance(env, list):
            env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
        for key in sorted(env_keys):
            env.setdefault(key, "${var." + key + "}")
        spec["environment"] = env
        ctx.notes.append(f"services.{svc}.env_file .env: the template's env given as environment entries")
    return dump_yaml(doc)


def _words_check(spec: dict[str, Any]) -> bool:
    """Whether the service's ``CMD-SHELL`` check gives its command as several items (``health_words``)."""
    test = (spec.get("healthcheck") or {}).get("test") if isinstance(spec.get("healthcheck"), dict) else None
    return isinstance(test, list) and len(test) > 2 and test[0] == "CMD-SHELL"


def _env_files(spec: dict[str, Any]) -> list[str]:
    value = spec.get("env_file")
    items = value if isinstance(value, list) else [value] if value else []
    return [str(i.get("path") if isinstance(i, dict) else i).removeprefix("./") for i in items]
