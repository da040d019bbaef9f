"""Walk the live api's OpenAPI: operations, their declared role, minimal valid bodies, and real ids.

Everything the security tests send is derived from ``/openapi.json``: a route the api adds later is
covered without editing these tests. Path parameters are filled by name: ``<thing>_id`` is created
through the POST of the collection whose last path segment names ``<thing>`` (``project_id`` ->
``POST /v1/projects``, ``environment_id`` -> ``POST /v1/projects/{project_id}/environments``), its own
parameters resolved the same way first. A parameter no collection creates gets a well-formed id that
does not exist, and is reported as such.
"""

from __future__ import annotations

import functools
import itertools
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import hypothesis
from hypothesis import strategies as st

from tests.api.tls_certs import upload_fields

METHODS = ("get", "put", "post", "patch", "delete")
# Path parameters naming something shared by every team (the servers Berth runs on, the template catalogue),
# not a team's resource.
PLATFORM_PARAMS = frozenset({"server_id", "slug", "logo_file"})
_counter = itertools.count(1)
# The live api of these tests runs without the scheduler (deployments stay queued): an operation that asks it
# answers its documented 503, whose problem document names it.
ABSENT_SCHEDULER = "The scheduler service is unavailable"


def reached_absent_scheduler(status: int, body: Any) -> bool:
    """Whether an answer is the documented 503 of an operation that asked the absent scheduler: the request
    got past authentication, roles and the team check, and only the scheduler was missing."""
    return (
        status == 503
        and isinstance(body, dict)
        and body.get("type") == "urn:berth:problem:service-unavailable"
        and str(body.get("detail", "")).startswith(ABSENT_SCHEDULER)
    )


def unique(stem: str = "s") -> str:
    """A fresh lowercase name that fits every name grammar of the api (resource, slug, env var, token)."""
    return f"{stem}{next(_counter)}x{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class Operation:
    method: str  # upper case
    path: str
    role: str | None  # x-berth-role
    spec: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"{([^}]+)}", self.path)

    def fill(self, ids: dict[str, str]) -> str:
        return re.sub(r"{([^}]+)}", lambda m: ids[m.group(1)], self.path)

    def body_schema(self) -> dict[str, Any] | None:
        content = self.spec.get("requestBody", {}).get("content", {})
        media = content.get("application/json")
        return None if media is None else media.get("schema", {})

    @property
    def body_required(self) -> bool:
        return bool(self.spec.get("requestBody", {}).get("required"))

    def query(self, doc: Spec) -> dict[str, Any]:
        """Values of the required query parameters (none is required today)."""
        return {
            p["name"]: doc.example(p.get("schema", {}))
            for p in self.spec.get("parameters", [])
            if p.get("in") == "query" and p.get("required")
        }


# Bodies the schema alone cannot make valid (a rule the service checks beyond the schema), by schema name;
# merged over the generated example. Traffic stays on the loopback (port 9: nothing answers).
RECIPES: dict[str, dict[str, Any]] = {
    "ChannelCreateIn": {
        "target": {"kind": "webhook", "url": "http://127.0.0.1:9/berth-test", "signing_secret": "x" * 32}
    },
    "AlertRuleSpec": {"target_kind": "app", "target_id": "*", "metric": "cpu_pct", "threshold": 90.0},
    "AlertRuleIn": {"target_kind": "app", "target_id": "*", "metric": "cpu_pct", "threshold": 90.0},
    "AutoscalePolicy": {"min": 1, "max": 4, "cpu_percent": 70.0, "memory_percent": None},
    "DatabaseCreate": {"engine": "redis", "version": "7", "config": {}, "public": None, "limits": {}},
    "LinkCreate": {"variable": "DATABASE_URL"},
    # services or a compose file: neither is required alone, so the schema's minimal body has neither
    "ApplicationCreate": {
        "source": {"kind": "image", "image": "nginx:1.27"},
        "services": [{"kind": "web", "name": "web", "port": 80}],
    },
    # a real certificate and its key (checked at upload), made once per run
    "CertificateCreate": upload_fields(),
}


@functools.cache
def matching(pattern: str, min_length: int, max_length: int) -> str:
    """The simplest string that fully matches ``pattern`` within the length bounds (found, then shrunk; not
    explained: that phase only re-runs the condition on variants of the result, seconds per pattern)."""
    strategy = st.from_regex(pattern, fullmatch=True)
    return hypothesis.find(
        strategy,
        lambda v: min_length <= len(v) <= max_length,
        settings=hypothesis.settings(
            database=None, max_examples=2000, deadline=None, phases=[hypothesis.Phase.generate, hypothesis.Phase.shrink]
        ),
    )


@dataclass
class Spec:
    doc: dict[str, Any]

    @classmethod
    def fetch(cls, client: httpx.Client | None = None, url: str = "") -> Spec:
        with httpx.Client(base_url=url, timeout=10) as c:
            r = (client or c).get("/openapi.json")
        r.raise_for_status()
        return cls(r.json())

    def operations(self, prefix: str = "/v1") -> list[Operation]:
        ops = []
        for path, item in self.doc["paths"].items():
            if not path.startswith(prefix):
                continue
            for method in METHODS:
                if method in item:
                    op = item[method]
                    ops.append(Operation(method.upper(), path, op.get("x-berth-role"), op))
        return ops

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        seen = 0
        while "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            schema = {**self.doc["components"]["schemas"][name], **{k: v for k, v in schema.items() if k != "$ref"}}
            seen += 1
            if seen > 20:
                raise ValueError(f"$ref loop at {name}")
        return schema

    def alternatives(self, schema: dict[str, Any], depth: int = 0) -> list[dict[str, Any]]:
        """The non-null alternatives of a union (nested unions flattened), or the schema itself."""
        schema = self.resolve(schema)
        alts = schema.get("oneOf") or schema.get("anyOf")
        if not alts or depth > 8:
            return [schema]
        if "properties" in schema:  # an object whose variants only say which of its properties go together
            own = {k: v for k, v in schema.items() if k not in ("oneOf", "anyOf")}
            return [{**own, "required": sorted({*own.get("required", []), *a.get("required", [])})} for a in alts]
        flat = [a for alt in alts for a in self.alternatives(alt, depth + 1)]
        return [a for a in flat if a.get("type") != "null"]

    def example(self, schema: dict[str, Any], depth: int = 0) -> Any:
        """A small value valid for ``schema``: required properties only, documented examples preferred."""
        if depth > 12:
            raise ValueError("schema too deep for an example")
        tag = self.resolve(schema).get("discriminator")
        if tag and tag.get("mapping"):  # the first alternative, its tag set even when it has a default
            key, ref = next(iter(tag["mapping"].items()))
            return {**self.example({"$ref": ref}, depth + 1), tag["propertyName"]: key}
        schema = self.alternatives(schema)[0]
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return schema["enum"][0]
        if schema.get("examples"):
            return schema["examples"][0]
        kind = schema.get("type")
        if kind == "object" or "properties" in schema:
            props = schema.get("properties", {})
            return {name: self.example(props[name], depth + 1) for name in schema.get("required", [])}
        if kind == "array":
            return [self.example(schema.get("items", {}), depth + 1) for _ in range(schema.get("minItems", 0))]
        if kind == "integer":
            return int(schema.get("minimum", schema.get("exclusiveMinimum", 0) + 1))
        if kind == "number":
            return float(schema.get("minimum", schema.get("exclusiveMinimum", 0) + 1))
        if kind == "boolean":
            return False
        if kind == "string":
            fmt = schema.get("format")
            if fmt == "email":
                return f"{unique('u')}@example.com"
            if fmt == "date-time":
                return (datetime.now(UTC) + timedelta(days=1)).isoformat()
            low, high = schema.get("minLength", 0), schema.get("maxLength", 1000)
            value = unique()[:high]
            pattern = schema.get("pattern")
            if len(value) < low or (pattern and not re.search(pattern, value)):
                value = matching(pattern or ".*", low, high)
            return value
        return None

    def body(self, op: Operation) -> Any:
        schema = op.body_schema()
        if schema is None:
            return None
        value = self.example(schema)
        name = schema.get("$ref", "").rsplit("/", 1)[-1]
        return {**value, **RECIPES[name]} if name in RECIPES and isinstance(value, dict) else value

    def full(self, schema: dict[str, Any], choice: int = 0, depth: int = 0) -> Any:
        """A value with every optional property present too (alternative ``choice`` of unions, when it exists)."""
        if depth > 12:
            raise ValueError("schema too deep")
        alts = self.alternatives(schema)
        schema = alts[min(choice, len(alts) - 1)]
        if "properties" in schema or schema.get("type") == "object":
            props = schema.get("properties", {})
            return {name: self.full(sub, choice, depth + 1) for name, sub in props.items()}
        if schema.get("type") == "array":
            return [self.full(schema.get("items", {}), choice, depth + 1)]
        return self.example(schema, depth + 1)

    def union_width(self, schema: dict[str, Any], depth: int = 0) -> int:
        """The largest number of non-null alternatives of any union inside ``schema``."""
        if depth > 12:
            return 1
        alts = self.alternatives(schema)
        width = len(alts)
        for alt in alts:
            for sub in alt.get("properties", {}).values():
                width = max(width, self.union_width(sub, depth + 1))
            if "items" in alt:
                width = max(width, self.union_width(alt["items"], depth + 1))
        return width


def leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], Any]]:
    """Every scalar of a JSON value with its path."""
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in leaves(v, (*path, k))]
    if isinstance(value, list):
        return [leaf for i, v in enumerate(value) for leaf in leaves(v, (*path, i))]
    return [(path, value)]


def put(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    """A copy of ``value`` with the leaf at ``path`` replaced."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: put(value[head], rest, new)}
    copy = list(value)
    copy[head] = put(copy[head], rest, new)
    return copy


def get(value: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        if isinstance(value, dict):
            if key not in value:
                return None
            value = value[key]
        elif isinstance(value, list) and isinstance(key, int) and key < len(value):
            value = value[key]
        else:
            return None
    return value


def _singular(segment: str) -> str:
    s = segment.replace("-", "_")
    for suffix, repl in (("ies", "y"), ("sses", "ss"), ("s", "")):
        if s.endswith(suffix):
            return s[: -len(suffix)] + repl
    return s


@dataclass
class Ids:
    """Real ids of one team's resources, created on demand through the api (with an admin's headers)."""

    spec: Spec
    client: httpx.Client
    headers: dict[str, str]
    ids: dict[str, str] = field(default_factory=dict)  # give the ones no collection creates (seeds)
    created: dict[str, dict[str, Any]] = field(default_factory=dict)  # param -> creation response
    # params no collection creates (or whose creation failed: why): a well-formed unknown id is used
    missing: dict[str, str] = field(default_factory=dict)

    def creator(self, param: str) -> Operation | None:
        thing = param.removesuffix("_id")
        for op in self.spec.operations():
            if op.method != "POST" or op.path.endswith("}"):
                continue
            last = _singular(op.path.rstrip("/").rsplit("/", 1)[-1])
            if last == thing or last.endswith("_" + thing) or thing.endswith("_" + last):
                return op
        return None

    def resolve(self, param: str, _depth: int = 0) -> str:
        if param in self.ids:
            return self.ids[param]
        op = self.creator(param) if _depth < 6 else None
        if op is None:
            return self._unknown(param, "no collection creates it")
        for inner in op.path_params:
            self.resolve(inner, _depth + 1)
        r = self.client.request(op.method, op.fill(self.ids), headers=self.headers, json=self.spec.body(op))
        if r.status_code >= 300 or "id" not in r.json():
            return self._unknown(param, f"{op.label} answered {r.status_code} {r.text[:300]}")
        self.created[param] = r.json()
        self.ids[param] = r.json()["id"]
        return self.ids[param]

    def _unknown(self, param: str, why: str) -> str:
        self.missing[param] = why
        self.ids[param] = uuid.uuid4().hex
        return self.ids[param]

    def fill(self, op: Operation) -> str:
        for param in op.path_params:
            self.resolve(param)
        return op.fill(self.ids)

    def team_ids(self) -> set[str]:
        """Every id of this team's resources made so far, nested ones too (environments of projects)."""
        found = {v for k, v in self.ids.items() if k not in self.missing and k not in PLATFORM_PARAMS}
        for body in self.created.values():
            found |= {str(v) for path, v in leaves(body) if path and path[-1] == "id" and isinstance(v, str)}
        return found
