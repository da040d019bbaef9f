"""Applications: desired state (configuration, variables with sealed secrets, host names) and its status."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters import applications as repo
from berth_api.adapters import deployments as deployments_repo
from berth_api.adapters import projects as projects_repo
from berth_api.adapters.applications import HostRow, StoredVariable
from berth_api.adapters.readpool import ReadPool
from berth_api.adapters.sealed import hold_for_sealing
from berth_api.domain import layers, tls
from berth_api.domain.applications import Variable, VariableInput, VariableKind, application_spec
from berth_api.domain.git_access import GivenAccess
from berth_api.domain.identity import Principal
from berth_api.domain.problems import ProblemError, invalid_field, not_in_team
from berth_api.usecases import (
    Deps,
    build_servers,
    compose_apps,
    compose_files,
    compose_snapshot,
    git_auth,
    published_ports,
    variables,
)
from berth_api.usecases import application_checks as checks
from berth_api.usecases.app_hosts import sync_hosts
from berth_api.usecases.placement import resolve_compose, resolve_servers
from berth_api.usecases.projects import environment_missing
from berth_common.catalogue import ApplicationSpec
from berth_common.envelope import new_id
from berth_common.logging import get_logger

log = get_logger(__name__)
VAR_LOC = {"runtime": "/body/env", "build": "/body/source/build_args"}


@dataclass(frozen=True)
class AppRecord:
    row: dict[str, Any]  # the applications row and its environment's name
    variables: list[StoredVariable]
    hosts: list[HostRow]
    last_deployment: dict[str, Any] | None = None  # its newest deployment (in a page of the list)


def application_missing(principal: Principal, application_id: str) -> ProblemError:
    return not_in_team("application", application_id, principal.team_name)


REMOVING_SLUG = "application-removing"


def refuse_if_removing(row: dict[str, Any]) -> None:
    """An application being removed is neither changed nor deployed (409, type ``...:application-removing``)."""
    if row.get("state") == "removing":
        raise ProblemError(
            409,
            f"Application {row['id']} is being removed: it can be neither changed nor deployed.",
            slug=REMOVING_SLUG,
            title="Application being removed",
        )


def _check_kept(incoming: list[VariableInput] | None, kind: VariableKind, stored: list[StoredVariable]) -> None:
    variables.check_kept(incoming, kind, stored, lambda i: f"{VAR_LOC[kind]}/{i}/value")


def _rows(
    deps: Deps, app_id: str, kind: VariableKind, incoming: list[VariableInput], stored: list[StoredVariable]
) -> list[StoredVariable]:
    return variables.seal_rows(deps.box, "application", app_id, kind, incoming, stored)


def open_variables(deps: Deps, app_id: str, stored: list[StoredVariable]) -> dict[str, list[Variable]]:
    """Plaintext variables by kind (for a deployment's snapshot): secrets opened from their seal."""
    return variables.open_rows(deps.box, "application", app_id, stored)


def build_spec(
    deps: Deps,
    row: dict[str, Any],
    stored: list[StoredVariable],
    hosts: list[HostRow],
    *,
    placeholders: bool = False,
    inherited: list[layers.Layer] | None = None,
) -> ApplicationSpec:
    """The snapshot of the application (``placeholders``: secret values not opened, to check the shape).

    ``inherited``: the layers under the application's own variables (groups, then the environment); the
    application's win (``domain.layers``).
    """
    if placeholders:
        own: dict[str, list[Variable]] = {"runtime": [], "build": []}
        for v in stored:
            own[v.kind].append(Variable(v.name, v.value or "x", v.secret))
    else:
        own = open_variables(deps, row["id"], stored)
    stack = [*(inherited or []), layers.Layer("application", own["runtime"], own["build"])]
    by_service: dict[str, list[str]] = {}
    for h in hosts:
        by_service.setdefault(h.service, []).append(h.host)
    for svc in row["config"].get("services") or []:  # a host shared by path is recorded for one service
        mine = by_service.setdefault(svc["name"], [])
        mine += [d for d in svc.get("domains") or [] if d not in mine]
    return application_spec(
        name=row["name"],
        environment=row["environment"],
        config=row["config"],
        runtime=layers.merge(stack, "runtime"),
        build=layers.merge(stack, "build") if row["config"]["source"]["kind"] == "git" else [],
        hosts=by_service,
        tls=tls.options(row["config"].get("tls"), any(not h.generated for h in hosts), deps.settings.acme_enabled),
    )


def _check_spec(deps: Deps, row: dict[str, Any], stored: list[StoredVariable], hosts: list[HostRow]) -> None:
    if compose_apps.untranslated(row["config"]):
        return  # a compose file of the repository: translated when the builder reads it
    try:
        spec = build_spec(deps, row, stored, hosts, placeholders=True)
        with contextlib.suppress(ProblemError):  # what only a deployment refuses (409), named there
            compose_snapshot.compose_spec(spec, row["config"], hosts=hosts)  # a compose service's own fields
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = "/body/" + "/".join(str(p) for p in first["loc"])
        raise invalid_field(loc, f"not accepted for a deployment: {first['msg']}") from None


async def create_application(
    deps: Deps,
    principal: Principal,
    environment_id: str,
    name: str,
    config: dict[str, Any],
    runtime: list[VariableInput],
    build: list[VariableInput],
    access: GivenAccess | None = None,
    files: list[dict[str, Any]] | None = None,
) -> AppRecord:
    """A new application; ``access``: its private repository's credential, used at once (a compose file
    at a path of the repository is read with it) and stored with it; ``files``: a compose application's
    files (``compose_files``: path, content, mode), sealed as they are stored."""
    cred = await git_auth.given(deps, config, access, principal.team_id) if access is not None else None
    if files:  # their paths for the translation; sealed below
        config = {**config, "compose": {**config["compose"], "files": [{"path": f["path"]} for f in files]}}
    if config.get("compose"):
        given = [(v.name, v.value, v.secret) for v in runtime]
        auth = cred.auth if cred is not None else None
        async with deps.sessionmaker() as s:  # the environment's COMPOSE_PROFILES (no group is attached yet)
            env = await projects_repo.get_environment(s, principal.team_id, environment_id)
            new = {"id": "", "environment_id": environment_id}
            below = await compose_apps.inherited_profiles(deps, s, new) if env is not None else None
        config = await compose_apps.translated(deps, config, given, principal.team_id, auth, inherited_profiles=below)
    checks.check_source(deps, config, principal.team_id)
    checks.check_mounts(deps, config, principal.team_id)
    checks.check_pre_deploy(config)
    _check_kept(runtime, "runtime", [])
    _check_kept(build, "build", [])
    app_id = new_id()
    try:
        async with deps.sessionmaker() as s, s.begin():
            env = await projects_repo.get_environment(s, principal.team_id, environment_id)
            if env is None:
                raise environment_missing(principal, environment_id)
            await build_servers.resolve(s, principal, config)
            await resolve_compose(s, principal.team_id, principal.team_name, config)
            await resolve_servers(s, principal.team_id, principal.team_name, config["services"])
            if variables.needs_sealing(runtime) or variables.needs_sealing(build) or files:
                await hold_for_sealing(s, deps.box)
            if files:
                config["compose"] = {**config["compose"], "files": compose_files.sealed(deps, app_id, files, [])}
            values = {"id": app_id, "team_id": principal.team_id, "project_id": env["project_id"]}
            await repo.insert_application(
                s, {**values, "environment_id": environment_id, "name": name, "config": config}
            )
            stored = _rows(deps, app_id, "runtime", runtime, []) + _rows(deps, app_id, "build", build, [])
            await repo.replace_variables(s, app_id, "runtime", [v for v in stored if v.kind == "runtime"])
            await repo.replace_variables(s, app_id, "build", [v for v in stored if v.kind == "build"])
            if cred is not None:
                await git_auth.keep_given(deps, s, principal, app_id, cred)
            with compose_apps.hosts_located(config):
                hosts = await sync_hosts(
                    deps, s, app_id, name, env["name"], config["services"], config.get("preview_hosts")
                )
            await published_ports.sync(s, app_id, principal.team_id, config)
            checks.check_tls(deps, config, hosts)
            row = await repo.get_application(s, principal.team_id, app_id)
            assert row is not None
            _check_spec(deps, row, stored, hosts)
    except IntegrityError:
        raise invalid_field(
            "/body/name", f"an application named {name!r} exists in this environment", status=409, type_="conflict"
        ) from None
    log.info("application created", application_id=app_id, team_id=principal.team_id)
    return AppRecord(row, stored, hosts)


async def update_application(
    deps: Deps,
    principal: Principal,
    application_id: str,
    changes: dict[str, Any],
    runtime: list[VariableInput] | None,
    build: list[VariableInput] | None,
    files: list[dict[str, Any]] | None = None,
) -> AppRecord:
    """``changes`` replace top-level configuration fields; ``runtime``/``build`` None: unchanged; ``files``:
    the files of a ``compose`` change (``compose_files``: one without content keeps the stored one)."""
    with _host_taken_meanwhile():
        async with deps.sessionmaker() as s, s.begin():
            row = await repo.get_application(s, principal.team_id, application_id, lock=True)
            if row is None:
                raise application_missing(principal, application_id)
            refuse_if_removing(row)
            config = {**row["config"], **changes}
            if "compose" in changes and files:
                if compose_files.needs_sealing(files):
                    await hold_for_sealing(s, deps.box)
                kept = compose_files.stored_files(row["config"])
                config["compose"] = {
                    **changes["compose"],
                    "files": compose_files.sealed(deps, application_id, files, kept),
                }
            if config.get("compose"):
                config = await _compose_again(deps, config, changes, runtime, row, s)
            elif "compose_hosts" in changes:
                raise invalid_field("/body/hosts", "hosts are set for a compose application (domains otherwise)")
            elif "compose_placement" in changes:
                raise invalid_field("/body/placement", "placement is set for a compose application (servers otherwise)")
            checks.check_source(deps, config, principal.team_id)
            checks.check_mounts(deps, config, principal.team_id)
            checks.check_pre_deploy(config)
            if "source" in changes:
                await build_servers.resolve(s, principal, config)
            if "services" in changes:
                await resolve_servers(s, principal.team_id, principal.team_name, config["services"])
            if config.get("compose"):  # its services translated again: placed by ids
                await resolve_compose(s, principal.team_id, principal.team_name, config)
            stored = (await repo.variables_of(s, [application_id]))[application_id]
            _check_kept(runtime, "runtime", stored)
            if "source" in changes:
                build = build if config["source"]["kind"] == "git" else []
            _check_kept(build, "build", stored)
            if variables.needs_sealing(runtime) or variables.needs_sealing(build):
                await hold_for_sealing(s, deps.box)
            for kind, incoming in (("runtime", runtime), ("build", build)):
                if incoming is not None:
                    rows = _rows(deps, application_id, kind, incoming, stored)  # type: ignore[arg-type]
                    await repo.replace_variables(s, application_id, kind, rows)  # type: ignore[arg-type]
                    stored = [v for v in stored if v.kind != kind] + rows
            await repo.update_application(s, application_id, config)
            with compose_apps.hosts_located(config):
                hosts = await sync_hosts(
                    deps,
                    s,
                    application_id,
                    row["name"],
                    row["environment"],
                    config["services"],
                    config.get("preview_hosts"),
                )
            await published_ports.sync(s, application_id, principal.team_id, config)
            checks.check_tls(deps, config, hosts)
            row = await repo.get_application(s, principal.team_id, application_id)
            assert row is not None
            _check_spec(deps, row, stored, hosts)
        log.info("application updated", application_id=application_id, fields=sorted(changes))
        return AppRecord(row, stored, hosts)


async def _compose_again(
    deps: Deps,
    config: dict[str, Any],
    changes: dict[str, Any],
    runtime: list[VariableInput] | None,
    row: dict[str, Any],
    s: AsyncSession,
) -> dict[str, Any]:
    """A compose application's configuration translated again with the changes (its services come from
    its compose file only); the variables: the incoming ones, else the stored ones. An application of
    services given a compose file becomes a compose application (its services replaced by the file's)."""
    if "services" in changes:
        raise invalid_field("/body/services", "a compose application's services come from its compose file")
    if runtime is not None:
        given = [(v.name, v.value, v.secret) for v in runtime]
    else:
        stored = (await repo.variables_of(s, [row["id"]]))[row["id"]]
        given = [(v.name, v.value, v.secret) for v in stored if v.kind == "runtime"]
    auth = await git_auth.auth_for(deps, s, {**row, "config": config})  # a private repository's
    below = await compose_apps.inherited_profiles(deps, s, row)
    return await compose_apps.translated(deps, config, given, row["team_id"], auth, inherited_profiles=below)


@contextmanager
def _host_taken_meanwhile() -> Iterator[None]:
    """A host of the change claimed concurrently by another application (the unique index refuses it)."""
    try:
        yield
    except IntegrityError:
        raise ProblemError(409, "A host name of this application was just taken by another application.") from None


async def records(s: AsyncSession, rows: list[dict[str, Any]]) -> list[AppRecord]:
    ids = [r["id"] for r in rows]
    stored = await repo.variables_of(s, ids)
    hosts = await repo.hosts_of(s, ids)
    return [AppRecord(r, stored[r["id"]], hosts[r["id"]]) for r in rows]


async def list_applications(
    deps: Deps,
    principal: Principal,
    *,
    project_id: str | None = None,
    environment_id: str | None = None,
    limit: int = 1000,
    offset: int = 0,
) -> list[AppRecord]:
    async with deps.sessionmaker() as s:
        if (
            environment_id is not None
            and await projects_repo.get_environment(s, principal.team_id, environment_id) is None
        ):
            raise environment_missing(principal, environment_id)
        rows = await repo.list_applications(
            s, principal.team_id, project_id=project_id, environment_id=environment_id, limit=limit, offset=offset
        )
        newest = await deployments_repo.newest_of(s, [r["id"] for r in rows])
        return [replace(r, last_deployment=newest.get(r.row["id"])) for r in await records(s, rows)]


async def list_page(
    pool: ReadPool, principal: Principal, *, project_id: str | None, limit: int, offset: int
) -> tuple[list[repo.PageEntry], int]:
    """A page of the team's applications (by name, environment, id) as read, each with the digest of its row
    (``record_of`` makes its record, secret values left out), and how many the team has in all (in the
    project): one statement."""
    return await repo.page_of(pool, principal.team_id, project_id, limit, offset)


def record_of(entry: repo.PageEntry) -> AppRecord:
    row, stored, hosts, last = entry.decoded()
    return AppRecord(row, stored, hosts, last)


async def get_application(
    deps: Deps, principal: Principal, application_id: str
) -> tuple[AppRecord, dict[str, Any] | None]:
    """The application and its live (last succeeded) deployment."""
    async with deps.sessionmaker() as s:
        row = await repo.get_application(s, principal.team_id, application_id)
        if row is None:
            raise application_missing(principal, application_id)
        (record,) = await records(s, [row])
        live = (await deployments_repo.live_of(s, [application_id])).get(application_id)
    return record, live
