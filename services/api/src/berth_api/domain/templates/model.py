"""Berth's template format: a YAML document of metadata, ``variables:`` and a ``compose:`` text.

The grammar of references, shared by compose text, files and variable values:
``${var.NAME}`` is the value of variable NAME, ``${domain}`` the first domain variable's host, ``${app}`` the
application's name; ``$$`` is a literal dollar, as in compose, and every other ``${...}`` is left to compose.
Every error is a :class:`TemplateError` naming the spot as a JSON pointer."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from berth_api.domain.yaml12 import yaml_1_2

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# $$ first (escape), then Berth's own references; any other ${...} belongs to compose.
REFERENCE = re.compile(r"\$\$|\$\{(var\.([^}]*)|domain|app)\}")
KINDS = ("password", "base64", "hex", "uuid", "domain", "value", "input", "port", "timestamp", "jwt")
SECRET_KINDS = frozenset({"password", "base64", "hex", "uuid", "jwt"})
ALPHABETS = {
    "alnum": "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
    "lower_alnum": "abcdefghijklmnopqrstuvwxyz0123456789",
    "lower": "abcdefghijklmnopqrstuvwxyz",
    "hex": "0123456789abcdef",
    "symbols": "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#%&()*+,-./:;<=>?@[]^_{|}~",
}
_KEYS: dict[str, set[str]] = {
    "password": {"length", "alphabet"},
    "base64": {"bytes"},
    "hex": {"bytes", "length"},
    "uuid": set(),
    "domain": {"service", "port", "path", "routes", "default"},
    "value": {"value"},
    "input": {"default", "required"},
    "port": {"min", "max"},
    "timestamp": {"unit", "at"},
    "jwt": {"key", "payload", "expires_in_days", "issued_at"},
}
_COMMON = {"kind", "description", "secret"}
_META = ("name", "slug", "description", "tags", "logo", "docs", "version")


class TemplateError(ValueError):
    """A template is invalid; ``loc`` is a JSON pointer to the spot."""

    def __init__(self, loc: str, detail: str) -> None:
        self.loc = loc
        self.detail = detail
        super().__init__(f"{loc}: {detail}")


@dataclass(frozen=True)
class Route:
    service: str
    port: int | None = None
    path: str | None = None


@dataclass(frozen=True)
class Variable:
    name: str
    kind: str
    options: Mapping[str, Any] = field(default_factory=dict)
    description: str | None = None
    secret: bool | None = None  # None: secret when generated (SECRET_KINDS) or derived from a secret

    def templates(self) -> Iterator[tuple[str, str]]:
        """The (option, text) pairs of this variable that may hold references."""
        for key in ("value", "default", "key"):
            text = self.options.get(key)
            if isinstance(text, str):
                yield key, text
        payload = self.options.get("payload")
        if isinstance(payload, Mapping):
            for k, v in payload.items():
                if isinstance(v, str):
                    yield f"payload/{k}", v

    @property
    def routes(self) -> tuple[Route, ...]:
        if self.kind != "domain":
            return ()
        raw = self.options.get("routes")
        if raw is None:
            service = self.options.get("service")
            return (Route(service, self.options.get("port"), self.options.get("path")),) if service else ()
        return tuple(Route(r["service"], r.get("port"), r.get("path")) for r in raw)


@dataclass(frozen=True)
class TemplateFile:
    """A file the compose text mounts (``./files/<path>``), its content rendered like the compose text."""

    path: str
    content: str
    mode: int | None = None  # permission bits (a script's 0o755); None: the application files' default 0o644


@dataclass(frozen=True)
class Template:
    name: str
    slug: str
    compose: str
    variables: tuple[Variable, ...] = ()
    description: str = ""
    tags: tuple[str, ...] = ()
    logo: str | None = None
    docs: str | None = None
    version: str | None = None
    files: tuple[TemplateFile, ...] = ()

    def variable(self, name: str) -> Variable | None:
        return next((v for v in self.variables if v.name == name), None)

    def to_document(self) -> dict[str, Any]:
        """The template as the YAML document a user reads and edits (inverse of :func:`parse_document`)."""
        doc: dict[str, Any] = {"name": self.name, "slug": self.slug, "description": self.description}
        doc["tags"] = list(self.tags)
        for key in ("logo", "docs", "version"):
            if getattr(self, key) is not None:
                doc[key] = getattr(self, key)
        variables: dict[str, Any] = {}
        for v in self.variables:
            spec: dict[str, Any] = {"kind": v.kind, **_plain(v.options)}
            if v.description:
                spec["description"] = v.description
            if v.secret is not None:
                spec["secret"] = v.secret
            variables[v.name] = spec
        doc["variables"] = variables
        if self.files:
            doc["files"] = [
                {"path": f.path, **({"mode": f"{f.mode:04o}"} if f.mode is not None else {}), "content": f.content}
                for f in self.files
            ]
        doc["compose"] = self.compose
        return doc

    def to_yaml(self) -> str:
        return dump_yaml(self.to_document())


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class _Literal(str):
    """A multi-line string dumped as a YAML block scalar."""


def _literal(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(data), style="|")


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Literal, _literal)


def _blocks(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _blocks(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_blocks(v) for v in value]
    if isinstance(value, str) and "\n" in value and not any(line != line.rstrip() for line in value.split("\n")):
        return _Literal(value)
    return value


def dump_yaml(document: Any) -> str:
    return yaml.dump(_blocks(document), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1000)


class _UniqueLoader(yaml.SafeLoader):
    """A safe loader that refuses a key given twice in one mapping (a service named twice)."""


def _mapping(loader: _UniqueLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    merge = "tag:yaml.org,2002:merge"
    if len(node.value) == 1 and node.value[0][0].tag == merge and isinstance(node.value[0][1], yaml.SequenceNode):
        items = node.value[0][1].value
        if not all(isinstance(i, yaml.MappingNode) for i in items):
            # `key: {<<: *a_list}`: a list merged alone reads as that list (as Coolify's YAML parser reads it)
            return loader.construct_sequence(node.value[0][1], deep=True)
    lists = [v for k, v in node.value if k.tag == merge and isinstance(v, yaml.SequenceNode)]
    if lists and all(isinstance(i, yaml.ScalarNode) for i in lists[0].value):
        # an environment list merged among KEY: value pairs: its KEY=value entries become pairs
        merged: dict[Any, Any] = {}
        for item in loader.construct_sequence(lists[0], deep=True):
            key, sep, value = str(item).partition("=")
            merged[key] = value if sep else None
        node.value = [(k, v) for k, v in node.value if k.tag != merge]
        return {**merged, **_mapping(loader, node, deep=True)}
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == merge:  # `<<: *anchor`: merged keys may be overridden
            continue
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(None, None, f"'{key}' is given twice (line {mark.line + 1})", mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
yaml_1_2(_UniqueLoader)


def load_yaml(text: str, loc: str) -> Any:
    """Parse YAML text, refusing duplicate keys; errors name ``loc`` and the line."""
    try:
        return yaml.load(text, Loader=_UniqueLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise TemplateError(loc, f"malformed YAML{where}: {problem}") from None


def references(text: str) -> Iterator[str]:
    """Names referenced by ``text``: variable names, plus ``domain`` and ``app`` for the builtins."""
    for m in REFERENCE.finditer(text):
        if m.group(0) == "$$":
            continue
        yield m.group(2) if m.group(2) is not None else m.group(1)


def compose_services(compose: str, loc: str) -> dict[str, Any]:
    """The services mapping of a compose text; every service must name an image or a build."""
    doc = load_yaml(compose, loc)
    if not isinstance(doc, dict) or not isinstance(doc.get("services"), dict) or not doc["services"]:
        raise TemplateError(loc, "a compose file needs a non-empty 'services' mapping")
    for name, spec in doc["services"].items():
        if not isinstance(spec, dict) or not ("image" in spec or "build" in spec):
            raise TemplateError(f"{loc}/services/{name}", "a service needs an 'image' (or a 'build')")
    return dict(doc["services"])
