"""Reading and checking a Berth template document: the metadata, the variables and their options, the
references between variables (unknown names, cycles) and the compose text (duplicate or image-less
services, routes to services that do not exist)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from berth_api.domain.templates.model import (
    _COMMON,
    _KEYS,
    _META,
    ALPHABETS,
    KINDS,
    NAME,
    SLUG,
    Template,
    TemplateError,
    TemplateFile,
    Variable,
    compose_services,
    load_yaml,
    references,
)


def parse_text(text: str, loc: str = "/body") -> Template:
    """A template from its YAML text (a template file of the catalogue, or one a user edited)."""
    doc = load_yaml(text, loc)
    if not isinstance(doc, Mapping):
        raise TemplateError(loc, "a template is a YAML mapping")
    return parse_document(doc, loc)


def parse_document(doc: Mapping[str, Any], loc: str = "/body") -> Template:
    unknown = sorted(set(doc) - {*_META, "variables", "compose", "files"})
    if unknown:
        raise TemplateError(f"{loc}/{unknown[0]}", "unknown key")
    name = _text(doc, "name", loc, required=True) or ""
    slug = _text(doc, "slug", loc, required=True) or ""
    if not SLUG.match(slug):
        raise TemplateError(f"{loc}/slug", "a slug is lower-case letters, digits and '-', at most 63")
    compose = doc.get("compose")
    if not isinstance(compose, str) or not compose.strip():
        raise TemplateError(f"{loc}/compose", "the compose file's text is required")
    tags = doc.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise TemplateError(f"{loc}/tags", "a list of strings")
    raw_vars = doc.get("variables") or {}
    if not isinstance(raw_vars, Mapping):
        raise TemplateError(f"{loc}/variables", "a mapping of variable names to their specs")
    variables = tuple(_variable(str(n), spec, f"{loc}/variables/{n}") for n, spec in raw_vars.items())
    files = tuple(_file(f, f"{loc}/files/{i}") for i, f in enumerate(doc.get("files") or []))
    template = Template(
        name=name,
        slug=slug,
        compose=compose,
        variables=variables,
        description=_text(doc, "description", loc) or "",
        tags=tuple(t.strip().lower() for t in tags),
        logo=_text(doc, "logo", loc),
        docs=_text(doc, "docs", loc),
        version=_text(doc, "version", loc),
        files=files,
    )
    check(template, loc)
    return template


def _text(doc: Mapping[str, Any], key: str, loc: str, required: bool = False) -> str | None:
    value = doc.get(key)
    if value is None:
        if required:
            raise TemplateError(f"{loc}/{key}", "required")
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise TemplateError(f"{loc}/{key}", "a string")
    return value


def _file(raw: Any, loc: str) -> TemplateFile:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("path"), str) or not isinstance(raw.get("content"), str):
        raise TemplateError(loc, "a file is {path, content}")
    path = raw["path"].lstrip("/")
    if not path or ".." in path.split("/"):
        raise TemplateError(f"{loc}/path", "a relative path without '..'")
    unknown = sorted(set(raw) - {"path", "content", "mode"})
    if unknown:
        raise TemplateError(f"{loc}/{unknown[0]}", "unknown key")
    return TemplateFile(
        path, raw["content"], None if raw.get("mode") is None else file_mode(raw["mode"], f"{loc}/mode")
    )


def file_mode(value: Any, loc: str) -> int:
    """A file's permission bits: octal digits as a string (``"0755"``, as compose and Coolify write them) or
    the number YAML reads from unquoted ``0755``; at most 0o777 (no setuid, setgid or sticky bit)."""
    if isinstance(value, str) and re.fullmatch(r"0?[0-7]{3}", value):
        return int(value, 8)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0o777:
        return value
    raise TemplateError(loc, "a file's mode is octal permission bits up to '0777' ('0755' for a script)")


def _variable(name: str, spec: Any, loc: str) -> Variable:
    if not NAME.match(name):
        raise TemplateError(loc, "a variable name is letters, digits and '_', not starting with a digit")
    if isinstance(spec, str):  # shorthand: a plain value
        spec = {"kind": "value", "value": spec}
    if not isinstance(spec, Mapping):
        raise TemplateError(loc, "a variable is a mapping with a 'kind'")
    kind = spec.get("kind", "value" if "value" in spec else "input")
    if kind not in KINDS:
        raise TemplateError(f"{loc}/kind", f"unknown kind '{kind}' (one of {', '.join(KINDS)})")
    extra = sorted(set(spec) - _COMMON - _KEYS[kind])
    if extra:
        raise TemplateError(f"{loc}/{extra[0]}", f"not an option of a {kind} variable")
    options = {k: v for k, v in spec.items() if k not in _COMMON}
    _check_options(kind, options, loc)
    secret = spec.get("secret")
    if secret is not None and not isinstance(secret, bool):
        raise TemplateError(f"{loc}/secret", "true or false")
    description = spec.get("description")
    return Variable(name, kind, options, str(description) if description else None, secret)


def _int(options: Mapping[str, Any], key: str, loc: str, low: int, high: int) -> None:
    value = options.get(key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high):
        raise TemplateError(f"{loc}/{key}", f"an integer from {low} to {high}")


def _check_options(kind: str, options: Mapping[str, Any], loc: str) -> None:
    _int(options, "length", loc, 1, 4096)
    _int(options, "bytes", loc, 1, 4096)
    _int(options, "min", loc, 1, 65535)
    _int(options, "max", loc, 1, 65535)
    _int(options, "expires_in_days", loc, 1, 365 * 200)
    if kind == "domain":
        _int(options, "port", loc, 1, 65535)
    alphabet = options.get("alphabet")
    if alphabet is not None and (not isinstance(alphabet, str) or (alphabet not in ALPHABETS and len(alphabet) < 2)):
        raise TemplateError(f"{loc}/alphabet", f"one of {', '.join(ALPHABETS)} or the characters themselves")
    if kind == "value" and not isinstance(options.get("value"), str):
        raise TemplateError(f"{loc}/value", "a string")
    if kind == "timestamp" and options.get("unit", "s") not in ("s", "ms"):
        raise TemplateError(f"{loc}/unit", "s or ms")
    if kind == "jwt":
        if not isinstance(options.get("key"), str):
            raise TemplateError(f"{loc}/key", "the signing key (usually ${var.other})")
        if not isinstance(options.get("payload", {}), Mapping):
            raise TemplateError(f"{loc}/payload", "a mapping")
    for key in ("default", "path"):
        if key in options and options[key] is not None and not isinstance(options[key], str):
            raise TemplateError(f"{loc}/{key}", "a string")
    routes = options.get("routes")
    if routes is not None:
        if not isinstance(routes, list) or not all(
            isinstance(r, Mapping) and isinstance(r.get("service"), str) for r in routes
        ):
            raise TemplateError(f"{loc}/routes", "a list of {service, port, path}")
        for i, r in enumerate(routes):
            _int(r, "port", f"{loc}/routes/{i}", 1, 65535)


def check(template: Template, loc: str = "/body") -> None:
    """Refuse unknown references, cycles between variables and routes to services the compose lacks."""
    services = compose_services(template.compose, f"{loc}/compose")
    names = {v.name for v in template.variables}
    edges: dict[str, list[str]] = {}
    for v in template.variables:
        deps: list[str] = []
        for key, text in v.templates():
            deps += _known(text, names, template, f"{loc}/variables/{v.name}", key)
        edges[v.name] = deps
        for i, route in enumerate(v.routes):
            if route.service not in services:
                raise TemplateError(f"{loc}/variables/{v.name}", f"routes to unknown service '{route.service}'")
            del i
    _known(template.compose, names, template, f"{loc}/compose", None)
    for i, f in enumerate(template.files):
        _known(f.content, names, template, f"{loc}/files/{i}/content", None)
    cycle = find_cycle(edges)
    if cycle:
        raise TemplateError(f"{loc}/variables/{cycle[0]}", "cycle between variables: " + " -> ".join(cycle))


def _known(text: str, names: set[str], template: Template, loc: str, key: str | None) -> list[str]:
    found = []
    for ref in references(text):
        if ref == "app":
            continue
        if ref == "domain":
            if not any(v.kind == "domain" for v in template.variables):
                raise TemplateError(loc, "uses ${domain} but the template has no domain variable")
            ref = next(v.name for v in template.variables if v.kind == "domain")
        elif ref not in names:
            raise TemplateError(loc, f"references unknown variable '{ref}'")
        found.append(ref)
    return found


def find_cycle(edges: Mapping[str, list[str]]) -> list[str] | None:
    """A cycle (first name repeated at the end) in the reference graph, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in edges.get(node, []):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in edges:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def order(template: Template) -> list[Variable]:
    """Variables in dependency order (a reference comes before its user); the template is checked."""
    names = {v.name for v in template.variables}
    first_domain = next((v.name for v in template.variables if v.kind == "domain"), None)
    done: list[Variable] = []
    seen: set[str] = set()

    def visit(v: Variable) -> None:
        if v.name in seen:
            return
        seen.add(v.name)
        for _, text in v.templates():
            for ref in references(text):
                target = first_domain if ref == "domain" else ref
                if target in names and target != v.name:
                    dep = template.variable(target)
                    assert dep is not None
                    visit(dep)
        done.append(v)

    for v in template.variables:
        visit(v)
    return done
