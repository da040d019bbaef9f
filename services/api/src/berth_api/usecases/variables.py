"""Stored variables of every scope (application, environment, group): secret values sealed with associated
data naming their row, a stored value kept when a request sends the variable back without one."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from berth_api.adapters.applications import StoredVariable
from berth_api.adapters.secretbox import SecretBox, SecretUnavailableError
from berth_api.domain.applications import (
    MissingValueError,
    Variable,
    VariableInput,
    VariableKind,
    check_kept_values,
    variable_aad,
)
from berth_api.domain.problems import ProblemError, invalid_field

KINDS: tuple[VariableKind, ...] = ("runtime", "build")


def check_kept(
    incoming: Sequence[VariableInput] | None,
    kind: VariableKind,
    stored: list[StoredVariable],
    loc: Callable[[int], str],
) -> None:
    """422 naming ``loc(index)`` for a variable sent without a value where the stored one cannot be kept."""
    if incoming is None:
        return
    try:
        check_kept_values(incoming, {v.name: v.secret for v in stored if v.kind == kind})
    except MissingValueError as exc:
        raise invalid_field(loc(exc.index), str(exc)) from None


def needs_sealing(incoming: Sequence[VariableInput] | None) -> bool:
    return any(v.secret and v.value is not None for v in incoming or ())


def seal_rows(
    box: SecretBox,
    scope: str,
    owner_id: str,
    kind: VariableKind,
    incoming: Sequence[VariableInput],
    stored: list[StoredVariable],
) -> list[StoredVariable]:
    """Rows to store: new values (secrets sealed), or the stored value kept (a sealed one as it is)."""
    old = {v.name: v for v in stored if v.kind == kind}
    rows = []
    for var in incoming:
        value, kept = var.value, old.get(var.name)
        if value is None and kept is not None and kept.secret and var.secret:
            rows.append(kept)
            continue
        if value is None and kept is not None:
            value = kept.value  # a plain stored value (check_kept refused revealing a secret)
        assert value is not None
        sealed = box.seal(value, variable_aad(scope, owner_id, kind, var.name)) if var.secret else None
        rows.append(StoredVariable(kind, var.name, var.secret, None if var.secret else value, sealed))
    return rows


def open_rows(box: SecretBox, scope: str, owner_id: str, stored: list[StoredVariable]) -> dict[str, list[Variable]]:
    """Plaintext variables by kind (for a deployment's snapshot or an export): secrets opened from their seal."""
    out: dict[str, list[Variable]] = {"runtime": [], "build": []}
    for v in stored:
        if v.secret:
            assert v.sealed is not None
            try:
                value = box.open(v.sealed, variable_aad(scope, owner_id, v.kind, v.name))
            except SecretUnavailableError as exc:
                raise ProblemError(500, f"The secret {v.name} cannot be read on this server: {exc}.") from None
        else:
            value = v.value or ""
        out[v.kind].append(Variable(v.name, value, v.secret))
    return out


def masked_rows(stored: list[StoredVariable]) -> dict[str, list[Variable]]:
    """Variables by kind with secret values left out (an empty value, ``secret`` set): nothing is opened."""
    out: dict[str, list[Variable]] = {"runtime": [], "build": []}
    for v in stored:
        out[v.kind].append(Variable(v.name, "" if v.secret else (v.value or ""), v.secret))
    return out
