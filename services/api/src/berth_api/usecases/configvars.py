"""Variables of environments (they apply to every application in them), ``.env`` import and export for
applications, environments and groups.

Precedence at deploy time: environment groups (attach order) < the environment < the application
(``domain.layers``). Each variable is runtime or build-time (build args reach only git builds) and may be
secret (sealed at rest, never returned; an export masks it unless an admin asks to reveal it, audited).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters import applications as apps_repo
from berth_api.adapters import configvars as repo
from berth_api.adapters import projects as projects_repo
from berth_api.adapters.applications import StoredVariable
from berth_api.adapters.sealed import hold_for_sealing
from berth_api.domain import dotenv, layers
from berth_api.domain.applications import VariableInput, VariableKind
from berth_api.domain.identity import Principal
from berth_api.domain.problems import ProblemError, invalid_field
from berth_api.usecases import Deps, variables
from berth_api.usecases.applications import application_missing, refuse_if_removing
from berth_api.usecases.layers import inherited
from berth_api.usecases.projects import environment_missing
from berth_common.logging import get_logger

log = get_logger(__name__)
Scoped = tuple[VariableKind, VariableInput]  # a variable of an environment or a group, with its kind
MAX_VARIABLES = {"runtime": 500, "build": 200}


@dataclass(frozen=True)
class DotenvImport:
    content: str
    kind: VariableKind
    secret: bool  # imported variables are secret (a name that is a secret already stays one)
    replace: bool  # the kind's variables become exactly the file's; else merged (the file's win)


async def replace_scope(
    deps: Deps, s: AsyncSession, scope: str, owner_id: str, incoming: list[Scoped], stored: list[StoredVariable]
) -> list[StoredVariable]:
    """Store ``incoming`` as the variables of an environment or a group (secrets sealed, kept ones kept)."""
    for kind in variables.KINDS:
        idx = [i for i, (k, _) in enumerate(incoming) if k == kind]
        inputs = [incoming[i][1] for i in idx]
        variables.check_kept(inputs, kind, stored, lambda j, idx=idx: f"/body/variables/{idx[j]}/value")  # type: ignore[misc]
    if variables.needs_sealing([v for _, v in incoming]):
        await hold_for_sealing(s, deps.box)
    rows: list[StoredVariable] = []
    for kind in variables.KINDS:
        rows += variables.seal_rows(deps.box, scope, owner_id, kind, [v for k, v in incoming if k == kind], stored)
    await repo.replace_variables(s, scope, owner_id, rows)
    return rows


async def environment_variables(deps: Deps, principal: Principal, environment_id: str) -> list[StoredVariable]:
    async with deps.sessionmaker() as s:
        if await projects_repo.get_environment(s, principal.team_id, environment_id) is None:
            raise environment_missing(principal, environment_id)
        return (await repo.variables_of(s, "environment", [environment_id]))[environment_id]


async def put_environment_variables(
    deps: Deps, principal: Principal, environment_id: str, incoming: list[Scoped]
) -> list[StoredVariable]:
    async with deps.sessionmaker() as s, s.begin():
        await _lock_environment(s, principal, environment_id)
        stored = (await repo.variables_of(s, "environment", [environment_id]))[environment_id]
        rows = await replace_scope(deps, s, "environment", environment_id, incoming, stored)
    log.info("environment variables set", environment_id=environment_id, count=len(rows))
    return rows


async def _lock_environment(s: AsyncSession, principal: Principal, environment_id: str) -> None:
    """404 unless the team has it; its row locked (writers of one environment's variables serialise)."""
    if await projects_repo.get_environment(s, principal.team_id, environment_id, lock=True) is None:
        raise environment_missing(principal, environment_id)


# --- .env import and export ---------------------------------------------------------------------------


def parse_dotenv(content: str) -> list[dotenv.Entry]:
    try:
        return dotenv.parse(content)
    except dotenv.DotenvError as exc:
        raise ProblemError(
            422,
            f"The .env content is invalid at line {exc.line}: {exc.why}.",
            errors=[{"loc": "/body/content", "detail": str(exc), "type": "dotenv", "line": str(exc.line)}],
        ) from None


def merge_import(stored: list[StoredVariable], imp: DotenvImport) -> list[VariableInput]:
    """The kind's variables after an import: the stored ones kept (in place) unless replaced, then new ones."""
    entries = parse_dotenv(imp.content)
    current = [v for v in stored if v.kind == imp.kind]
    secret_now = {v.name: v.secret for v in current}
    out: dict[str, VariableInput] = {}
    if not imp.replace:
        out = {v.name: VariableInput(v.name, None, v.secret) for v in current}
    for e in entries:
        out[e.name] = VariableInput(e.name, e.value, imp.secret or secret_now.get(e.name, False))
    if len(out) > MAX_VARIABLES[imp.kind]:
        raise invalid_field("/body/content", f"at most {MAX_VARIABLES[imp.kind]} {imp.kind} variables")
    return list(out.values())


async def import_application(
    deps: Deps, principal: Principal, application_id: str, imp: DotenvImport
) -> list[StoredVariable]:
    async with deps.sessionmaker() as s, s.begin():
        app = await apps_repo.get_application(s, principal.team_id, application_id, lock=True)
        if app is None:
            raise application_missing(principal, application_id)
        refuse_if_removing(app)
        if imp.kind == "build" and app["config"]["source"]["kind"] != "git":
            raise invalid_field("/body/kind", "build args are for applications built from git")
        stored = (await apps_repo.variables_of(s, [application_id]))[application_id]
        incoming = merge_import(stored, imp)
        if variables.needs_sealing(incoming):
            await hold_for_sealing(s, deps.box)
        rows = variables.seal_rows(deps.box, "application", application_id, imp.kind, incoming, stored)
        await apps_repo.replace_variables(s, application_id, imp.kind, rows)
        await apps_repo.update_application(s, application_id, app["config"])
        stored = [v for v in stored if v.kind != imp.kind] + rows
    log.info("variables imported", application_id=application_id, kind=imp.kind, count=len(rows))
    return stored


async def import_scope(
    deps: Deps, s: AsyncSession, scope: str, owner_id: str, imp: DotenvImport
) -> list[StoredVariable]:
    """Import into an environment's or a group's variables (the caller locked the owner's row)."""
    stored = (await repo.variables_of(s, scope, [owner_id]))[owner_id]
    merged = merge_import(stored, imp)
    other = [(v.kind, VariableInput(v.name, None, v.secret)) for v in stored if v.kind != imp.kind]
    incoming: list[Scoped] = [*other, *((imp.kind, v) for v in merged)]
    return await replace_scope(deps, s, scope, owner_id, incoming, stored)


async def import_environment(
    deps: Deps, principal: Principal, environment_id: str, imp: DotenvImport
) -> list[StoredVariable]:
    async with deps.sessionmaker() as s, s.begin():
        await _lock_environment(s, principal, environment_id)
        rows = await import_scope(deps, s, "environment", environment_id, imp)
    log.info("variables imported", environment_id=environment_id, kind=imp.kind)
    return rows


def export_text(
    deps: Deps, scope: str, owner_id: str, stored: list[StoredVariable], kind: VariableKind, reveal: bool
) -> str:
    """``.env`` text of one kind; secrets masked (commented out) unless ``reveal``."""
    opened = variables.open_rows(
        deps.box, scope, owner_id, [v for v in stored if v.kind == kind and (reveal or not v.secret)]
    )
    values = {v.name: v.value for v in opened[kind]}
    entries = [(v.name, values.get(v.name) if (reveal or not v.secret) else None) for v in stored if v.kind == kind]
    return dotenv.render(entries, header=f"{kind} variables exported by Berth")


async def export_application(
    deps: Deps, principal: Principal, application_id: str, kind: VariableKind, reveal: bool, merged: bool
) -> str:
    """The application's own variables, or (``merged``) what a deployment would get: groups < environment <
    application, each line's origin in a comment."""
    async with deps.sessionmaker() as s:
        app = await apps_repo.get_application(s, principal.team_id, application_id)
        if app is None:
            raise application_missing(principal, application_id)
        stored = (await apps_repo.variables_of(s, [application_id]))[application_id]
        if not merged:
            return export_text(deps, "application", application_id, stored, kind, reveal)
        stack = await inherited(deps, s, app, reveal=reveal)
    own = (
        variables.open_rows(deps.box, "application", application_id, stored)
        if reveal
        else variables.masked_rows(stored)
    )
    stack.append(layers.Layer("application", own["runtime"], own["build"]))
    lines = []
    for r in layers.resolve(stack, kind):
        lines.append((r.variable.name, None if r.variable.secret and not reveal else r.variable.value, r.origin))
    header = f"{kind} variables a deployment gets (groups < environment < application)"
    out = [f"# {header}"]
    for name, value, origin in lines:
        out.append(f"# from {origin}")
        out.append(dotenv.render([(name, value)]).rstrip("\n"))
    return "\n".join(out) + "\n"


async def export_environment(
    deps: Deps, principal: Principal, environment_id: str, kind: VariableKind, reveal: bool
) -> str:
    stored = await environment_variables(deps, principal, environment_id)
    return export_text(deps, "environment", environment_id, stored, kind, reveal)
