"""HTTP to the api: one ``Api`` per command, answers as JSON, errors as ``ApiError`` carrying the
problem+json body, and resources named by id or by name.

An application is named ``NAME``, ``PROJECT/NAME`` or ``PROJECT/ENVIRONMENT/NAME`` (or its id); a name that
several applications share is refused with the places it is found, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from berth_cli.client.config import Context

ID = re.compile(r"^[0-9a-f]{32}$")
PAGE = 1000


class ApiError(Exception):
    """A non-2xx answer (its problem+json body) or an api that cannot be reached (status 0)."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        super().__init__(problem.get("title", "error"))


def field_name(loc: str) -> str:
    """``/body/services/0/port`` -> ``services.0.port``: the field as the user wrote it."""
    parts = [p for p in loc.split("/") if p]
    if parts and parts[0] in {"body", "query", "path", "header"}:
        parts = parts[1:]
    return ".".join(parts) or loc


def render_problem(error: ApiError) -> str:
    """The problem's title and detail, then one line per field it names."""
    p = error.problem
    title = str(p.get("title") or "Error")
    detail = p.get("detail")
    head = f"berth: {title}" + (f": {detail}" if detail and detail != title else "")
    lines = [head]
    for e in p.get("errors") or []:
        lines.append(f"  {field_name(str(e.get('loc', '')))}: {e.get('detail', '')}")
    return "\n".join(lines)


def _problem(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or "title" not in body:
        body = {"title": response.reason_phrase or f"HTTP {response.status_code}", "status": response.status_code}
        text = response.text.strip()
        if text:
            body["detail"] = text[:300]
    return ApiError(response.status_code, body)


def unreachable(url: str, exc: Exception) -> ApiError:
    return ApiError(0, {"title": "The api cannot be reached", "detail": f"{url}: {type(exc).__name__}: {exc}"})


class Api:
    """A synchronous client of one context's api."""

    def __init__(self, context: Context, timeout: float = 30.0) -> None:
        self.context = context
        self.http = httpx.Client(
            base_url=context.api_url,
            headers={"Authorization": f"Bearer {context.token}", "User-Agent": "berth-cli"},
            timeout=timeout,
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise unreachable(self.context.api_url, exc) from None
        if response.status_code >= 400:
            raise _problem(response)
        return response

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=_params(params)).json()

    def text(self, path: str, **params: Any) -> str:
        return self.request("GET", path, params=_params(params)).text

    def send(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        response = self.request(method, path, json=body, params=_params(params))
        return response.json() if response.content else None

    @contextmanager
    def stream(self, path: str, headers: dict[str, str] | None = None, **params: Any) -> Iterator[httpx.Response]:
        """A streamed GET (no read timeout: a live stream may be quiet for long)."""
        timeout = httpx.Timeout(self.http.timeout.connect or 30.0, read=None)
        try:
            with self.http.stream(
                "GET", path, params=_params(params), headers=headers or {}, timeout=timeout
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _problem(response)
                yield response
        except httpx.TransportError as exc:
            raise unreachable(self.context.api_url, exc) from None

    # --- names ---------------------------------------------------------------------------------------

    def applications(self, project_id: str | None = None) -> list[dict[str, Any]]:
        """Every application of the team (all pages)."""
        out: list[dict[str, Any]] = []
        while True:
            page = self.get("/v1/applications", limit=PAGE, offset=len(out), project_id=project_id)
            out += page
            if len(page) < PAGE:
                return out

    def project(self, ref: str) -> dict[str, Any]:
        if ID.match(ref):
            return dict(self.get(f"/v1/projects/{ref}"))
        found = [p for p in self.get("/v1/projects") if p["name"] == ref]
        if not found:
            raise not_found("project", ref)
        return dict(found[0])

    def application(self, ref: str) -> dict[str, Any]:
        """An application by id, ``NAME``, ``PROJECT/NAME`` or ``PROJECT/ENVIRONMENT/NAME``."""
        if ID.match(ref):
            return dict(self.get(f"/v1/applications/{ref}"))
        parts = ref.split("/")
        if len(parts) > 3 or not all(parts):
            raise not_found("application", ref)
        name = parts[-1]
        project = self.project(parts[0]) if len(parts) > 1 else None
        apps = [a for a in self.applications(project["id"] if project else None) if a["name"] == name]
        if len(parts) == 3:
            apps = [a for a in apps if a["environment"] == parts[1]]
        if not apps:
            raise not_found("application", ref)
        if len(apps) > 1:
            names = {p["id"]: p["name"] for p in self.get("/v1/projects")}
            places = ", ".join(
                sorted(f"{names.get(a['project_id'], a['project_id'])}/{a['environment']}/{name}" for a in apps)
            )
            raise ambiguous(f"several applications are named {name}: {places}; give one of these or the id")
        return dict(self.get(f"/v1/applications/{apps[0]['id']}"))

    def database(self, ref: str) -> dict[str, Any]:
        if ID.match(ref):
            return dict(self.get(f"/v1/databases/{ref}"))
        found = [d for d in self.get("/v1/databases") if d["name"] == ref]
        if not found:
            raise not_found("database", ref)
        if len(found) > 1:
            raise ambiguous(f"several databases are named {ref}; give the id")
        return dict(self.get(f"/v1/databases/{found[0]['id']}"))

    def destination(self, ref: str) -> str:
        """A backup destination's id, from its id or name."""
        if ID.match(ref):
            return ref
        found = [d for d in self.get("/v1/backup-destinations") if d.get("name") == ref]
        if not found:
            raise not_found("backup destination", ref)
        return str(found[0]["id"])


def ambiguous(detail: str) -> ApiError:
    return ApiError(409, {"title": "Ambiguous name", "detail": detail})


def not_found(kind: str, ref: str) -> ApiError:
    return ApiError(404, {"title": "Not found", "detail": f"no {kind} {ref!r}"})


def _params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: _plain(v) for k, v in params.items() if v is not None}


def _plain(value: Any) -> Any:
    return ("true" if value else "false") if isinstance(value, bool) else value
