"""RFC 9457 problem details: the one shape of every error the api returns."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MEDIA_TYPE = "application/problem+json"
_BASE = "urn:berth:problem:"

# status -> (type slug, title); the type is stable, clients may switch on it.
STANDARD: dict[int, tuple[str, str]] = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    409: ("conflict", "Conflict"),
    410: ("gone", "Gone"),
    413: ("payload-too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("validation-error", "Invalid request"),
    429: ("too-many-requests", "Too many requests"),
    500: ("internal-error", "Internal server error"),
    503: ("service-unavailable", "Service unavailable"),
}


def problem_type(slug: str) -> str:
    return _BASE + slug


class FieldError(BaseModel):
    loc: str = Field(description="JSON pointer to the offending field, e.g. /body/name")
    detail: str
    type: str


class Problem(BaseModel):
    """``application/problem+json`` (RFC 9457)."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = None


class ProblemError(Exception):
    """Raised anywhere in request handling; rendered as problem+json by the api's exception handler."""

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        slug: str | None = None,
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
        errors: list[dict[str, str]] | None = None,
    ) -> None:
        default_slug, default_title = STANDARD.get(status, ("error", "Error"))
        self.status = status
        self.errors = errors
        self.type = problem_type(slug or default_slug)
        self.title = title or default_title
        self.detail = detail
        self.headers = dict(headers or {})
        super().__init__(detail or self.title)


def problem_body(
    status: int,
    detail: str | None = None,
    *,
    type_: str | None = None,
    title: str | None = None,
    instance: str | None = None,
    errors: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    slug, default_title = STANDARD.get(status, ("error", "Error"))
    body: dict[str, Any] = {"type": type_ or problem_type(slug), "title": title or default_title, "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    if errors is not None:
        body["errors"] = errors
    return body


def json_pointer(loc: Sequence[str | int]) -> str:
    """RFC 6901: ``("body", "name")`` -> ``/body/name``; ``~`` and ``/`` escaped."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in loc)


def field_errors(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """pydantic/FastAPI validation errors -> [{loc, detail, type}]; the offending input is never echoed."""
    out = []
    for err in errors:
        loc = [p for p in err.get("loc", ()) if isinstance(p, str | int)]
        out.append({"loc": json_pointer(loc), "detail": str(err.get("msg", "invalid")), "type": str(err.get("type"))})
    return out


def invalid_field(loc: str, detail: str, *, status: int = 422, type_: str = "value_error") -> ProblemError:
    """A 422 (or 409) naming one field by its JSON pointer, shaped like the request validation errors."""
    what = "invalid" if status == 422 else "in conflict"
    return ProblemError(
        status, f"The request has {what} fields: {loc}.", errors=[{"loc": loc, "detail": detail, "type": type_}]
    )


def name_taken(what: str, name: str) -> ProblemError:
    """The 409 for a name the team gives another of its ``what`` already."""
    return invalid_field("/body/name", f"a {what} named {name!r} exists already", status=409, type_="conflict")


def not_in_team(what: str, item_id: str, team_name: str) -> ProblemError:
    """The 404 for an id the caller's team does not have (another team's is answered the same)."""
    return ProblemError(404, f"No {what} {item_id} in team {team_name}.")
