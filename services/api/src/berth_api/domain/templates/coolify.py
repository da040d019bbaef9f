"""Importing a Coolify service template: header comments (``# slogan: ...``) and the ``SERVICE_*`` magic
variables become Berth metadata and variables; Coolify's own compose keys (``content:`` files,
``is_directory``, ``exclude_from_hc``) are carried over or listed by name. The rules follow Coolify's
source (bootstrap/helpers/shared.php, parsers.php, services.php); see docs/templates.md."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from berth_api.domain.templates import coolify_meta, coolify_volumes, health_words
from berth_api.domain.templates.coolify_meta import headers
from berth_api.domain.templates.format import check
from berth_api.domain.templates.imported import ImportResult, Inputs
from berth_api.domain.templates.interp import Ref, all_refs, env_items, rewrite, strings, walk_strings
from berth_api.domain.templates.model import Template, TemplateError, TemplateFile, Variable, dump_yaml, load_yaml

_ALNUM = "alnum"
_SYMBOLS = "symbols"
# command -> (kind, options); Coolify's BASE64 is NOT base64: Str::random(n), letters and digits.
GENERATORS: dict[str, tuple[str, dict[str, Any]]] = {
    "PASSWORD": ("password", {"length": 32, "alphabet": _ALNUM}),
    "PASSWORD_64": ("password", {"length": 64, "alphabet": _ALNUM}),
    "PASSWORDWITHSYMBOLS": ("password", {"length": 32, "alphabet": _SYMBOLS}),
    "PASSWORDWITHSYMBOLS_64": ("password", {"length": 64, "alphabet": _SYMBOLS}),
    "BASE64": ("password", {"length": 32, "alphabet": _ALNUM}),
    "BASE64_32": ("password", {"length": 32, "alphabet": _ALNUM}),
    "BASE64_64": ("password", {"length": 64, "alphabet": _ALNUM}),
    "BASE64_128": ("password", {"length": 128, "alphabet": _ALNUM}),
    "REALBASE64": ("base64", {"bytes": 32}),
    "REALBASE64_32": ("base64", {"bytes": 32}),
    "REALBASE64_64": ("base64", {"bytes": 64}),
    "REALBASE64_128": ("base64", {"bytes": 128}),
    "HEX_32": ("hex", {"length": 32}),
    "HEX_64": ("hex", {"length": 64}),
    "HEX_128": ("hex", {"length": 128}),
    "USER": ("password", {"length": 16, "alphabet": _ALNUM}),
    "LOWERCASEUSER": ("password", {"length": 16, "alphabet": "lower_alnum"}),
}
_SUPABASE = {"SUPABASEANON": "anon", "SUPABASESERVICE": "service_role"}


def command(name: str) -> str | None:
    """Coolify's parseCommandFromMagicEnvVariable: the command is found by counting underscores."""
    count = name.count("_")
    if count == 2 or (count == 3 and not name.startswith(("SERVICE_FQDN", "SERVICE_URL"))):
        return name[len("SERVICE_") : name.rfind("_")]
    if count == 3:
        return name[len("SERVICE_") :].split("_", 1)[0]
    return None


def url_parts(name: str) -> tuple[str, str, int | None] | None:
    """(FQDN|URL, service name, port) of a SERVICE_FQDN_/SERVICE_URL_ name; a numeric last part is the port."""
    for kind in ("FQDN", "URL"):
        prefix = f"SERVICE_{kind}_"
        if name.startswith(prefix) and len(name) > len(prefix):
            rest = name[len(prefix) :]
            head, _, last = rest.rpartition("_")
            if head and last.isdigit():
                return kind, head.lower(), int(last)
            return kind, rest.lower(), None
    return None


def import_coolify(filename: str, text: str, loc: str = "/body/files") -> ImportResult:
    here = f"{loc}/{filename}"
    stem = filename.rsplit("/", 1)[-1]
    stem = re.sub(r"\.ya?ml$", "", stem)
    head = headers(text)
    doc = load_yaml(text, here)
    if not isinstance(doc, dict) or not isinstance(doc.get("services"), dict) or not doc["services"]:
        raise TemplateError(here, "a compose file needs a non-empty 'services' mapping")
    not_carried: list[str] = []
    notes: list[str] = []
    services: dict[str, Any] = doc["services"]
    # declarations (keys) and references (values) of magic variables, per compose service
    declared: dict[str, list[tuple[str, str | None]]] = {}
    refs: dict[str, Ref] = {}
    referenced_by: dict[str, str] = {}
    first: dict[str, tuple[str, str | None]] = {}  # service -> its first declaration, which Coolify routes
    for svc, spec in services.items():
        if not isinstance(spec, dict):
            raise TemplateError(f"{here}/services/{svc}", "a service is a mapping")
        build: dict[str, Any] = spec["build"] if isinstance(spec.get("build"), dict) else {}
        for key, value in [*env_items(spec.get("environment")), *env_items(build.get("args"))]:
            if key.startswith(("SERVICE_FQDN_", "SERVICE_URL_")):
                declared.setdefault(key, []).append((svc, value))
                first.setdefault(svc, (key, value))
            for ref in all_refs(value or ""):
                refs.setdefault(ref.name, ref)
                referenced_by.setdefault(ref.name, svc)
    for value in strings(doc):
        for ref in all_refs(value):
            if ref.name.startswith("SERVICE_"):
                refs.setdefault(ref.name, ref)
    magic = sorted({n for n in [*refs, *declared] if n.startswith("SERVICE_")})
    variables: dict[str, Variable] = {}
    port_header = int(head["port"]) if head.get("port", "").isdigit() else None
    domains = _paths_on_the_routed_port(
        _domains(magic, declared, referenced_by, services, port_header, notes), first, notes
    )
    variables.update(domains)
    for name in magic:
        if name in variables:
            continue
        parts = url_parts(name)
        if parts:
            variables[name] = _url_variable(name, parts, declared, set(domains))
            continue
        variables[name] = _generated(name, refs.get(name), services, variables, not_carried, notes)
    inputs = Inputs()
    for name, ref in refs.items():
        if name not in variables:
            if not _coolify_builtin(name, variables, services, domains, not_carried, notes):
                inputs.register(ref, set(variables))
    for v in inputs.variables.values():
        variables.setdefault(v.name, v)
    _describe(text, variables)
    files, compose = _rewrite(doc, variables, not_carried, notes, here)
    meta = coolify_meta.metadata(stem, head, not_carried, notes)
    template = Template(compose=dump_yaml(compose), variables=tuple(variables.values()), files=tuple(files), **meta)
    check(template, here)
    return ImportResult(template, not_carried, notes)


def _domains(
    magic: list[str],
    declared: dict[str, list[tuple[str, str | None]]],
    referenced_by: dict[str, str],
    services: dict[str, Any],
    port_header: int | None,
    notes: list[str],
) -> dict[str, Variable]:
    """One domain variable ``SERVICE_FQDN_<NAME>`` per name, routed to each service that declares it. A
    ``_<PORT>`` name only referenced (no service declares that name and port) is a host of its own,
    ``SERVICE_FQDN_<NAME>_<PORT>``, as Coolify's magic-variable loop (parsers.php L1914-1998) makes it from
    ``<name>-<port>-<uuid>``, no ``:port``, routed nowhere; Berth routes it to that port of the named service."""
    pairs = {(u[1], u[2]) for n in declared if (u := url_parts(n))}
    by_name: dict[str, list[str]] = {}
    for name in magic:
        parts = url_parts(name)
        if parts:
            alone = parts[2] is not None and (parts[1], parts[2]) not in pairs
            by_name.setdefault(f"{parts[1]}_{parts[2]}" if alone else parts[1], []).append(name)
    out: dict[str, Variable] = {}
    of = {key: parts[1] for key, names in by_name.items() if (parts := url_parts(names[0]))}
    for base, names in sorted(by_name.items(), key=lambda item: item[0] != of[item[0]]):  # own hosts last
        name_of = of[base]
        ports = [parts[2] for n in names if (parts := url_parts(n)) and parts[2] is not None]
        port = ports[0] if ports else None
        routes: list[dict[str, Any]] = []
        own: dict[str, int] = {}  # a service's port, from the first name it declares with one
        for n in names:
            for svc, value in declared.get(n, []):
                if (parts := url_parts(n)) and parts[2] is not None:
                    own.setdefault(svc, parts[2])
                path = value if value and value.startswith("/") else None
                if any(r["service"] == svc and r.get("path") == path for r in routes):
                    continue
                routes.append({"service": svc, **({"path": path} if path else {})})
        named = next((s for s in services if s.lower().replace("-", "_").replace(".", "_") == name_of), None)
        routes = _one_service_per_path(routes, named, names[0], notes)
        if not routes:
            routes.append({"service": named or referenced_by.get(names[0]) or next(iter(services))})
        for r in routes:
            p = own.get(r["service"]) or port or (8000 if r["service"] == "plausible" else None) or port_header
            if p is not None:
                r["port"] = p
            elif port_header is None:
                notes.append(f"SERVICE_FQDN_{base.upper()}: no port given; Berth routes to the service's port 80")
        var = f"SERVICE_FQDN_{base.upper()}"
        if base != name_of:
            notes.append(
                f"{names[0]}: referenced, declared by no service; Coolify gives it a host of its own and routes "
                f"it nowhere, Berth routes it to {routes[0]['service']}'s port {routes[0].get('port')}"
            )
        out[var] = Variable(var, "domain", {"routes": routes}, f"The host of {base}")
    return out


def _one_service_per_path(
    routes: list[dict[str, Any]], named: str | None, name: str, notes: list[str]
) -> list[dict[str, Any]]:
    """One service per host and path: Coolify gives every service declaring one name the same host (twenty's
    ``worker`` declares its web service's ``SERVICE_URL_TWENTY_3000`` to read the URL), two routers of one
    rule of which its proxy picks one. Berth routes the host and path to the service the name names (else the
    first declaring it); the others read the value only."""
    kept: dict[str, dict[str, Any]] = {}
    for r in sorted(routes, key=lambda r: r["service"] != named):
        path = r.get("path") or "/"
        if path in kept:
            notes.append(
                f"{name}: declared by {r['service']} too; Coolify gives it the same host, Berth routes "
                f"{path} of that host to {kept[path]['service']} only ({r['service']} reads the value)"
            )
            continue
        kept[path] = r
    return [r for r in routes if any(r is k for k in kept.values())]


def _paths_on_the_routed_port(
    domains: dict[str, Variable], first: dict[str, tuple[str, str | None]], notes: list[str]
) -> dict[str, Variable]:
    """A declaration with a path on a service whose first declaration routes its whole host is that host's
    path, served by the routed port: Coolify routes a service by its first declaration and gives a later one
    the service's host plus its path, its port unrouted (mindsdb's ``SERVICE_URL_API_47335=/api``: 47335 is
    MindsDB's MySQL protocol, its HTTP API is ``/api`` of 47334, where its health check asks)."""
    whole: dict[str, int] = {}
    for service, (key, value) in first.items():
        parts = url_parts(key)
        variable = domains.get(f"SERVICE_FQDN_{parts[1].upper()}") if parts else None
        if variable is None or (value and value.startswith("/") and value != "/"):
            continue
        port = next((r.port for r in variable.routes if r.service == service and r.path in (None, "/")), None)
        if port is not None:
            whole[service] = port
    out: dict[str, Variable] = {}
    for name, v in domains.items():
        routes = [dict(r) for r in v.options["routes"]]
        for r in routes:
            port = whole.get(r["service"])
            if r.get("path") not in (None, "/") and port is not None and r.get("port") != port:
                notes.append(
                    f"{name}: {r['path']} of {r['service']} is routed to its port {port}, as Coolify routes "
                    f"it (port {r.get('port')} is not routed)"
                )
                r["port"] = port
        out[name] = replace(v, options={**v.options, "routes": routes})
    return out


def _url_variable(
    name: str, parts: tuple[str, str, int | None], declared: dict[str, list[tuple[str, str | None]]], hosts: set[str]
) -> Variable:
    """The value Coolify gives a URL name (bootstrap/helpers/parsers.php serviceParser, the declared-key branch
    at 379abb25 L1774-1906): ``SERVICE_FQDN_<NAME>`` is the host, ``SERVICE_URL_<NAME>`` the URL, and the
    ``_<PORT>`` forms append ``:<port>`` (``$urlWithPort = "$url:$port"``, L1846, written at L1897-1903; the
    port also picks the container port the host routes to). A declaration's path (``=/api``, not ``/``) is
    part of every URL of its pair, the name without port and the one with its port, whichever of FQDN/URL it
    was declared as (L1824-1837). Berth writes the port before the path (``https://host:2000/api``, where
    Coolify writes ``http://host/api:2000``), and an FQDN stays a host. A port name only referenced is the
    URL of its own host (``hosts`` has it; see _domains), without ``:port``."""
    kind, base, port = parts
    if f"SERVICE_FQDN_{base.upper()}_{port}" in hosts:
        return Variable(name, "value", {"value": "https://${var.SERVICE_FQDN_" + f"{base.upper()}_{port}" + "}"})
    host = "${var.SERVICE_FQDN_" + base.upper() + "}"
    paths = {
        v
        for n, declarations in declared.items()
        if (p := url_parts(n)) and p[1] == base and (port is None or p[2] == port)
        for _, v in declarations
        if v and v.startswith("/") and v != "/"
    }
    value = host if kind == "FQDN" else "https://" + host
    if port is not None:
        value += f":{port}"
    if len(paths) == 1 and kind == "URL":
        value += paths.pop()
    return Variable(name, "value", {"value": value})


def _generated(
    name: str,
    ref: Ref | None,
    services: dict[str, Any],
    variables: dict[str, Variable],
    not_carried: list[str],
    notes: list[str],
) -> Variable:
    cmd = command(name)
    if cmd in GENERATORS:
        kind, generated = GENERATORS[cmd]
        if cmd.startswith("BASE64"):
            notes.append(f"{name}: Coolify's BASE64 is {generated['length']} random letters and digits, not base64")
        return Variable(name, kind, dict(generated))
    if cmd in _SUPABASE:
        if "SERVICE_PASSWORD_JWT" not in variables:
            variables["SERVICE_PASSWORD_JWT"] = Variable("SERVICE_PASSWORD_JWT", *GENERATORS["PASSWORD"])
            notes.append(f"{name}: signed with SERVICE_PASSWORD_JWT, which Berth generates")
        payload = {"role": _SUPABASE[cmd], "iss": "supabase"}
        return Variable(
            name, "jwt", {"key": "${var.SERVICE_PASSWORD_JWT}", "payload": payload, "expires_in_days": 36500}
        )
    if name.startswith("SERVICE_NAME_"):
        target = name[len("SERVICE_NAME_") :]
        match = next((s for s in services if re.sub(r"[-.]", "_", s).upper() == target), None)
        if match:
            return Variable(name, "value", {"value": match})
    options: dict[str, Any] = {}
    if ref is not None and ref.default is not None:
        options["default"] = rewrite(ref.default, lambda r: False)
    why = f"Coolify makes no value for command '{cmd}'" if cmd else "not a Coolify generator"
    kept = "kept as a value to fill in" + (" (with its default)" if options else "")
    not_carried.append(f"{name}: {why}; {kept}")
    return Variable(name, "input", options)


def _coolify_builtin(
    name: str,
    variables: dict[str, Variable],
    services: dict[str, Any],
    domains: dict[str, Variable],
    not_carried: list[str],
    notes: list[str],
) -> bool:
    if name == "COOLIFY_RESOURCE_UUID":
        variables[name] = Variable(name, "uuid", {}, secret=False)
        notes.append(f"{name}: a UUID generated for the application")
        return True
    if name in ("COOLIFY_FQDN", "COOLIFY_URL") and domains:
        first = next(iter(domains))
        value = "${var." + first + "}"
        variables[name] = Variable(name, "value", {"value": value if name == "COOLIFY_FQDN" else "https://" + value})
        notes.append(f"{name}: the first domain of the template, for every service")
        return True
    if name in ("COOLIFY_CONTAINER_NAME", "COOLIFY_BRANCH"):
        variables[name] = Variable(name, "input", {})
        not_carried.append(f"{name}: injected by Coolify; kept as a value to fill in")
        return True
    return False


def _describe(text: str, variables: dict[str, Variable]) -> None:
    """An env line's inline comment becomes the description of the variables it references."""
    for line in text.splitlines():
        code, sep, comment = line.partition(" #")
        if not sep or not comment.strip() or code.lstrip().startswith("#"):
            continue
        for ref in all_refs(code):
            v = variables.get(ref.name)
            if v is not None and not v.description:
                variables[ref.name] = Variable(v.name, v.kind, v.options, comment.strip(), v.secret)


def _rewrite(
    doc: dict[str, Any], variables: dict[str, Variable], not_carried: list[str], notes: list[str], here: str
) -> tuple[list[TemplateFile], dict[str, Any]]:
    """The compose document with Berth references, declarations given values, Coolify's keys handled."""
    files: list[TemplateFile] = []
    known = set(variables)
    doc = walk_strings(doc, lambda s: rewrite(s, lambda r: not r.name.startswith("SERVICE_") or r.name not in known))
    for svc, spec in doc["services"].items():
        build = spec.get("build")
        for key in ("environment", "args"):
            holder = build if key == "args" else spec
            if isinstance(holder, dict) and holder.get(key) is not None:
                holder[key] = walk_strings(holder[key], lambda s: rewrite(s, lambda r: r.name not in known))
        env = spec.get("environment")
        if isinstance(env, list):
            spec["environment"] = [_declaration(item) for item in env]
        elif isinstance(env, str):  # forgejo-with-runner's docker-in-docker: lines of KEY=value in one scalar
            notes.append(
                f"services.{svc}.environment: one string, neither a list nor a mapping: the template is broken in "
                "Coolify too (compose refuses it: environment must be a mapping); write it as a list of KEY=value"
            )
        elif isinstance(env, dict):
            for key in list(env):
                if str(key).startswith(("SERVICE_FQDN_", "SERVICE_URL_")):
                    env[key] = f"${{var.{key}}}"
        for key in ("command", "entrypoint"):
            if spec.get(key) is not None:
                spec[key] = _literal_dollars(spec[key], f"services.{svc}.{key}", notes)
        health_words.one_shell_command(spec, svc, notes)
        if spec.pop("exclude_from_hc", None) is not None:
            not_carried.append(f"services.{svc}.exclude_from_hc: Berth has no aggregate health exclusion")
        for i, volume in enumerate(spec.get("volumes") or []):
            where = f"services.{svc}.volumes[{i}]"
            if not isinstance(volume, dict):
                spec["volumes"][i] = coolify_volumes.relative_as_volume(volume, where, notes)
                continue
            file = coolify_volumes.carry_mount(volume, svc, i, f"{here}/services/{svc}/volumes/{i}", notes)
            if file is not None:
                files.append(file)
    coolify_volumes.merge_slug_twins(doc, notes)
    coolify_volumes.declare_volumes(doc, notes)
    return files, doc


def _literal_dollars(value: Any, where: str, notes: list[str]) -> Any:
    """``\\$`` in a command means a literal ``$`` to the templates' authors (``SET NAMES \\$utf8``); compose has
    no such escape (it reads ``$utf8`` as a variable and leaves a dangling backslash), so it is ``$$``."""
    if isinstance(value, list):
        return [_literal_dollars(v, where, notes) for v in value]
    if not isinstance(value, str) or "\\$" not in value:
        return value
    notes.append(f"{where}: \\$ is compose's $$ (a literal $)")
    return value.replace("\\$", "$$")


def _declaration(item: Any) -> Any:
    """``- SERVICE_URL_APP_3000`` (or ``=/path``) declares a route; in Berth it is set to its variable."""
    if not isinstance(item, str) or not item.startswith(("SERVICE_FQDN_", "SERVICE_URL_")):
        return item
    key = item.split("=", 1)[0]
    return f"{key}=${{var.{key}}}"
