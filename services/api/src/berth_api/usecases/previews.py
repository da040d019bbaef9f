"""Preview environments: one application per pull request, deployed from its head commit and destroyed
when it closes (``domain.previews`` reads the deliveries and makes names, hosts, configuration, variables;
``preview_settings`` holds what the application asks of its previews, ``preview_comments`` the comment).

A verified pull/merge request delivery (``webhook_deliveries.receive``) records what its preview needs
(``want``: deploy or destroy) in the webhook's transaction; the webhook sweep (``sweep``) then does it
through the normal paths: ``applications.create_application`` (the application's configuration building
the head branch, its own host, the variables layered), ``databases.create`` and ``links.link`` for a fresh
database, ``deployments.start_in`` with the head commit pinned, and ``removal.remove_application`` with
its volumes, then the database deleted with its volume. A pull request reopened while its preview is
being destroyed is recorded (``reopen``) and its preview made again from the new head once the destroy
ends; like a new pull request, only while the application has fewer previews than its limit. Inactive
previews past their time-to-live are destroyed the same way.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters import applications as apps_repo
from berth_api.adapters import databases as databases_repo
from berth_api.adapters import previews as repo
from berth_api.adapters import webhook_statuses as statuses_repo
from berth_api.adapters import webhooks as hooks_repo
from berth_api.domain import preview_ports
from berth_api.domain import previews as domain
from berth_api.domain.applications import VariableInput
from berth_api.domain.forge_payloads import _document
from berth_api.domain.forges import Delivery
from berth_api.domain.hosts import generated_host
from berth_api.domain.identity import Principal, system_principal
from berth_api.domain.problems import ProblemError
from berth_api.usecases import (
    Deps,
    applications,
    databases,
    deployments,
    links,
    preview_comments,
    preview_settings,
    removal,
)
from berth_common.catalogue import RolloutOptions
from berth_common.db import Unit
from berth_common.envelope import new_id
from berth_common.logging import get_logger

log = get_logger(__name__)
FINAL = ("succeeded", "failed", "cancelled")
# A preview's old version (replaced by a new commit, or its pull request closed) serves requests in flight
# this long, not the scheduler's default (30 s): a preview is not production traffic, and its commit status
# and comment say "deployed" only once the old version is stopped.
DRAIN_S = 2.0


def _actor(team_id: str) -> Principal:
    """Who a preview's changes are made by: no user, the webhook's team."""
    return system_principal(team_id, "preview")


# -- deliveries ----------------------------------------------------------------------------------------


async def on_delivery(
    s: AsyncSession, hook: dict[str, Any], delivery: Delivery, body: bytes, content_type: str, now: datetime
) -> tuple[str, str]:
    """What a verified pull request delivery asks of the application's preview, recorded for the sweep:
    (``queued`` or ``skipped``, the detail). Raises ``PayloadError`` for a body that does not read."""
    app_id = hook["application_id"]
    settings = await repo.settings_of(s, app_id, lock=True)
    if settings is None:
        return "skipped", "previews are off for this application"
    pr = domain.read_pull_request(delivery, _document(body, content_type))
    if pr.action is None:
        return "skipped", f"pull request #{pr.number}: nothing changes for its preview"
    row = await repo.get(s, app_id, pr.number, lock=True)
    if pr.action == "close":
        if row is None:
            return "skipped", f"pull request #{pr.number} has no preview"
        if row["state"] == "destroying":  # closed again before its destroy ended: not made again
            await repo.update(s, row["id"], reopen=False, last_activity_at=now)
        else:
            await repo.update(s, row["id"], want="destroy", last_activity_at=now)
        return "queued", f"the preview of pull request #{pr.number} is destroyed"
    if pr.fork and not settings["allow_forks"]:
        return "skipped", f"pull request #{pr.number} comes from a fork: not deployed (allow_forks is off)"
    if pr.fork and pr.head_repository is None:
        return "skipped", f"pull request #{pr.number} comes from a fork whose repository the delivery does not name"
    head: dict[str, Any] = {
        "head_commit": pr.commit,
        "head_ref": pr.branch[:300],
        "head_repository": pr.head_repository,
    }
    head |= {"title": pr.title, "last_activity_at": now, "want": "deploy"}
    if row is None:
        full = await preview_settings.room(s, app_id, settings)
        if full is not None:
            return "skipped", full
        values = {"id": new_id(), "team_id": hook["team_id"], "application_id": app_id, "number": pr.number}
        await repo.insert_preview(s, {**values, "forge": delivery.forge, "state": "active", **head})
    elif row["state"] == "destroying":  # reopened while its destroy runs: made again once it is gone
        full = None if row["reopen"] else await preview_settings.room(s, app_id, settings)
        if full is not None:  # a reopened pull request counts like a new one
            await repo.update(s, row["id"], last_activity_at=now)
            return "skipped", f"pull request #{pr.number} is not previewed again: {full}"
        await repo.update(s, row["id"], **{**head, "want": None, "reopen": True})
        return "queued", f"the preview of pull request #{pr.number} is made again at {pr.commit} once destroyed"
    elif row["head_commit"] == pr.commit and row["deployment_id"] and row["want"] is None:
        await repo.update(s, row["id"], last_activity_at=now)  # a title or a label changed: still active
        return "skipped", f"the preview of pull request #{pr.number} is at {pr.commit} already"
    else:
        await repo.update(s, row["id"], **head)
    return "queued", f"the preview of pull request #{pr.number} deploys {pr.commit}"


# -- the sweep -----------------------------------------------------------------------------------------


async def _create(deps: Deps, row: dict[str, Any], actor: Principal) -> str | None:
    """The preview application (made when missing); None: the application is gone."""
    async with deps.sessionmaker() as s:
        if row["preview_application_id"] and await apps_repo.get_application(
            s, row["team_id"], row["preview_application_id"]
        ):
            return cast(str, row["preview_application_id"])
        parent = await apps_repo.get_application(s, row["team_id"], row["application_id"])
        settings = await repo.settings_of(s, row["application_id"])
        stored = (await apps_repo.variables_of(s, [row["application_id"]]))[row["application_id"]]
    if parent is None or settings is None:
        return None
    name = domain.preview_name(parent["name"], row["number"])
    webs = [svc for svc in parent["config"]["services"] if svc["kind"] == "web"]
    base, pattern = deps.settings.base_domain, settings["host_pattern"]
    hosts = {
        svc["name"]: domain.preview_host(
            pattern, row["number"], parent["name"], parent["environment"], svc["name"], base, i == 0
        )
        for i, svc in enumerate(webs)
    }
    hosts.update(
        preview_ports.port_preview_hosts(
            parent["config"], pattern, row["number"], parent["name"], parent["environment"], base
        )
    )
    pr = domain.PullRequest(row["number"], "deploy", row["head_commit"], row["head_ref"], "", False, None)
    generated = {svc["name"]: generated_host(svc["name"], parent["name"], parent["environment"], base) for svc in webs}
    generated.update(preview_ports.port_generated_hosts(parent["config"], parent["name"], parent["environment"], base))
    config = domain.preview_config(parent["config"], pr, hosts, row["head_repository"], generated)
    opened = applications.open_variables(deps, parent["id"], stored)
    base_vars = [(v.name, v.value, v.secret) for v in opened["runtime"]]
    runtime = [
        VariableInput(n, v, sec)
        for n, v, sec in domain.layered(base_vars, preview_settings.open_variables(deps, settings))
    ]
    build = [VariableInput(v.name, v.value, v.secret) for v in opened["build"]]
    created = await applications.create_application(deps, actor, parent["environment_id"], name, config, runtime, build)
    app_id = created.row["id"]
    values: dict[str, Any] = {"preview_application_id": app_id, "host": next(iter(hosts.values()), None)}
    async with deps.sessionmaker() as s, s.begin():
        await repo.update(s, row["id"], **values)
    if settings["database"] == "fresh":
        db = await databases.create(
            deps, actor, databases.DatabaseInput(name=f"{name}-db", engine=settings["database_engine"])
        )
        async with deps.sessionmaker() as s, s.begin():
            await repo.update(s, row["id"], database_id=db["id"])
        await links.link(deps, actor, app_id, db["id"], None)
    return cast(str, app_id)


async def _deploy(deps: Deps, row: dict[str, Any]) -> None:
    actor = _actor(row["team_id"])
    app_id = await _create(deps, row, actor)
    if app_id is None:
        return

    async def body(unit: Unit) -> dict[str, Any]:
        options = RolloutOptions(when_busy="replace_queued", drain_grace_s=DRAIN_S)
        return await deployments.start_in(deps, unit, actor, app_id, options, commit=row["head_commit"])

    started = await deployments.run(deps, body)
    async with deps.sessionmaker() as s, s.begin():
        await repo.update(s, row["id"], deployment_id=started["id"], reason=None)
        hook = await hooks_repo.for_application(s, row["team_id"], row["application_id"])
        if hook is not None and await statuses_repo.target(s, hook["id"]) is not None:  # berth/preview
            await statuses_repo.owe(s, started["id"], hook["id"], row["head_commit"], datetime.now(UTC))
    log.info("preview deploying", preview_id=row["id"], number=row["number"], deployment_id=started["id"])


async def _destroy(deps: Deps, row: dict[str, Any]) -> None:
    """Take the preview application down with its volumes; its database follows (``_finish``)."""
    async with deps.sessionmaker() as s, s.begin():
        await repo.update(s, row["id"], state="destroying")
    if row["preview_application_id"]:
        try:
            await removal.remove_application(
                deps, _actor(row["team_id"]), row["preview_application_id"], drain_grace_s=DRAIN_S, delete_volumes=True
            )
        except ProblemError as exc:
            if exc.status != 404:
                raise
    log.info("preview destroying", preview_id=row["id"], number=row["number"])


async def _finish(deps: Deps, row: dict[str, Any]) -> bool:
    """A destroyed preview's database deleted once its application is gone, then the row; True: done."""
    actor = _actor(row["team_id"])
    async with deps.sessionmaker() as s:
        app = row["preview_application_id"] and await apps_repo.get_application(
            s, row["team_id"], row["preview_application_id"]
        )
        db = row["database_id"] and await databases_repo.get_database(s, row["team_id"], row["database_id"])
    if app:
        return False
    if db:
        if db["state"] != "removing":
            await databases.delete(deps, actor, row["database_id"], delete_volume=True)
        return False
    async with deps.sessionmaker() as s, s.begin():
        if await repo.reopened(s, row["id"]):
            log.info("preview destroyed and made again", preview_id=row["id"], number=row["number"])
            return False
    await preview_comments.comment(deps, {**row, "deployment_state": "destroyed"})
    async with deps.sessionmaker() as s, s.begin():
        if not await repo.delete(s, row["id"]):
            return False  # reopened while its comment was written: made again at the next sweep
    log.info("preview destroyed", preview_id=row["id"], number=row["number"])
    return True


async def sweep(deps: Deps) -> bool:
    """Do what previews want, destroy expired ones, finish destroyed ones, update their comments; whether
    something is still under way (the webhook sweep then looks again soon)."""
    now = datetime.now(UTC)
    async with deps.sessionmaker() as s, s.begin():
        for found in await repo.expired(s, now):
            await repo.update(s, found["id"], want="destroy", reason="inactive past the time-to-live")
        for found in await repo.orphaned(s):
            await repo.update(s, found["id"], want="destroy", reason="the application was deleted")
        wanting = await repo.wanting(s)
    for row in wanting:
        async with deps.sessionmaker() as s, s.begin():
            if not await repo.claim(s, row["id"], row["want"], row["head_commit"]):
                continue
        try:
            await (_deploy(deps, row) if row["want"] == "deploy" else _destroy(deps, row))
        except ProblemError as exc:
            log.warning("preview not done", preview_id=row["id"], want=row["want"], error=exc.detail)
            async with deps.sessionmaker() as s, s.begin():
                await repo.update(s, row["id"], reason=(exc.detail or exc.title or "refused")[:500])
    async with deps.sessionmaker() as s:
        gone = await repo.destroying(s)
    busy = False
    for row in gone:
        busy = not await _finish(deps, row) or busy
    async with deps.sessionmaker() as s:
        rows = await repo.commenting(s)
    for row in rows:
        if row["state"] == "active":
            await preview_comments.comment(deps, row)
            busy = busy or row["deployment_state"] not in FINAL
    return busy or bool(wanting)
