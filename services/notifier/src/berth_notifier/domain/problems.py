"""The refusals the notifier's queries answer with (pure): a ``NotifyProblem`` naming the field, never
echoing an input value (it may be a secret)."""

from __future__ import annotations

from pydantic import ValidationError

from berth_common.catalogue import NotifyProblem


def problem(status: int, type_: str, title: str, field: str | None = None, detail: str = "") -> NotifyProblem:
    return NotifyProblem(status=status, type=type_, title=title, field=field, detail=detail)


def not_found(field: str, what: str) -> NotifyProblem:
    return problem(404, "not-found", "Not found", field, f"no such {what}")


def invalid(exc: ValidationError) -> NotifyProblem:
    """The first error, its field path and message; never the input value."""
    err = exc.errors(include_input=False, include_url=False)[0]
    field = ".".join(str(p) for p in err["loc"]) or None
    return problem(422, "invalid", "Invalid request", field, str(err["msg"])[:300])
