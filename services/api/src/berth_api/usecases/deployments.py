"""Deployments: record one (queued) and publish its command in the same unit of work; rollback; cancel.

The command travels through the outbox (``Unit.emit``), so a crash between the commit and the publish
loses nothing. Its JSON carries secret values in the clear for the scheduler: the outbox row is deleted as
soon as it is published (and a sweeper removes any the relay published later).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from berth_api.adapters import applications as apps_repo
from berth_api.adapters import deployments as repo
from berth_api.adapters.sealed import hold_for_sealing
from berth_api.domain.applications import (
    mask_spec,
    open_spec,
    rollback_gaps,
    runs_app_image,
    seal_spec,
    snapshot_aad,
    with_image,
)
from berth_api.domain.deployments import CANCELLABLE, TERMINAL
from berth_api.domain.identity import Principal
from berth_api.domain.problems import ProblemError, invalid_field, not_in_team
from berth_api.usecases import (
    Deps,
    certificates,
    compose_apps,
    compose_files,
    compose_snapshot,
    git_auth,
    layers,
    published_ports,
    ref_pin,
    registries,
)
from berth_api.usecases.app_hosts import sync_hosts
from berth_api.usecases.applications import (
    application_missing,
    build_spec,
    records,
    refuse_if_removing,
)
from berth_api.usecases.connection_urls import with_links
from berth_api.usecases.outbox import run as run  # the other use cases import it from here too
from berth_common.catalogue import (
    ApplicationSpec,
    CancelDeployment,
    DeploymentQueued,
    GitSource,
    ImageSource,
    RolloutOptions,
    StartDeployment,
)
from berth_common.db import Unit
from berth_common.envelope import new_id
from berth_common.logging import get_logger

log = get_logger(__name__)


def deployment_missing(principal: Principal, deployment_id: str) -> ProblemError:
    return not_in_team("deployment", deployment_id, principal.team_name)


def masked(row: dict[str, Any]) -> dict[str, Any]:
    """A deployment row as it may be shown: the snapshot's secret values masked."""
    return {**row, "spec": mask_spec(row["spec"])}


async def _record(
    deps: Deps,
    unit: Unit,
    principal: Principal,
    app: dict[str, Any],
    spec: ApplicationSpec,
    options: RolloutOptions,
    *,
    kind: str = "deploy",
    rollback_of: str | None = None,
    images_of: str | None = None,
    commit: str | None = None,
) -> dict[str, Any]:
    deployment_id = new_id()
    spec = await registries.with_credentials(deps, unit.session, principal.team_id, spec)
    spec = await git_auth.with_auth(deps, unit.session, app, spec)
    image = spec.source.image if isinstance(spec.source, ImageSource) else None
    number = await repo.next_number(unit.session, app["id"])
    row = await repo.insert_deployment(
        unit.session,
        {
            "id": deployment_id,
            "team_id": principal.team_id,
            "application_id": app["id"],
            "number": number,
            "kind": kind,
            "rollback_of": rollback_of,
            "created_by": principal.user_id or None,
            "state": "queued",
            "step": "queued",
            "detail": "",
            "image": image,
            "commit": commit,
            "spec": seal_spec(spec, deps.box.seal_text, snapshot_aad(deployment_id)),
            "options": options.model_dump(mode="json"),
        },
    )
    command = StartDeployment(
        deployment_id=deployment_id,
        application_id=app["id"],
        team_id=principal.team_id,
        spec=spec,
        options=options,
        images_of=images_of,
        number=number,
    )
    await unit.emit(command, id=f"deployment-start-{deployment_id}")
    queued = DeploymentQueued(deployment_id=deployment_id, application_id=app["id"], team_id=principal.team_id)
    await unit.emit(queued, id=f"deployment-queued-{deployment_id}")
    # The command's logged form: secret values print as '**********' (SecretStr), never in the clear.
    log.info("deployment requested", deployment_id=deployment_id, kind=kind, command=repr(command))
    return row


async def purge(deps: Deps) -> None:
    try:
        async with deps.sessionmaker() as s, s.begin():
            await repo.purge_published_secrets(s)
    except Exception as exc:  # the sweeper tries again
        log.warning("outbox purge failed", error=str(exc))


async def _snapshot(deps: Deps, unit: Unit, app: dict[str, Any]) -> ApplicationSpec:
    """The application's snapshot: its configuration, hosts and variables merged over its groups' and its
    environment's (``domain.layers``); the key lock is taken for the sealing that follows."""
    s = unit.session
    app = await compose_apps.refreshed(deps, s, app)  # compose.path: the file as it is now at the ref
    compose_apps.refuse_untranslated(app["config"])
    (record,) = await records(s, [app])
    config = app["config"]
    hosts = await sync_hosts(
        deps, s, app["id"], app["name"], app["environment"], config["services"], config.get("preview_hosts")
    )
    await published_ports.sync(s, app["id"], app["team_id"], config)  # the file may publish others now
    stack = await layers.inherited(deps, s, app)
    try:
        spec = compose_snapshot.compose_spec(
            build_spec(deps, app, record.variables, hosts, inherited=stack),
            app["config"],
            compose_files.opened(deps, app["id"], app["config"]),
            hosts,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "/".join(str(p) for p in first["loc"])
        raise ProblemError(
            422,
            f"The merged configuration (groups, environment, application) is not deployable: {where}: {first['msg']}.",
        ) from None
    await hold_for_sealing(s, deps.box)
    custom = await certificates.for_spec(deps, s, app["team_id"], app["id"], [h.host for h in hosts])
    if custom:
        spec = spec.model_copy(update={"tls": spec.tls.model_copy(update={"certificates": custom})})
    return await with_links(deps, s, app, spec)


async def start_in(
    deps: Deps,
    unit: Unit,
    principal: Principal,
    application_id: str,
    options: RolloutOptions,
    *,
    commit: str | None = None,
) -> dict[str, Any]:
    """Inside ``unit``: snapshot the application, record the deployment (queued), stage its start command;
    ``commit``: build that commit of a git source (a push's), recorded on the deployment at once. Without
    one, a git source builds the commit its branch or tag names now (``ref_pin``), when the builder can say."""
    app = await apps_repo.get_application(unit.session, principal.team_id, application_id, lock=True)
    if app is None:
        raise application_missing(principal, application_id)
    refuse_if_removing(app)
    spec = await _snapshot(deps, unit, app)
    if commit is not None and not isinstance(spec.source, GitSource):
        raise invalid_field("/body/commit", f"the application is built from {spec.source.kind}, not from git")
    if commit is None and ref_pin.to_resolve(spec) is not None:  # the commit its branch names now
        authed = await git_auth.with_auth(deps, unit.session, app, spec)
        commit = await ref_pin.commit_now(deps, authed, app["team_id"])
    if commit is not None and isinstance(spec.source, GitSource):
        spec = spec.model_copy(update={"source": spec.source.model_copy(update={"ref": commit})})
    return await _record(deps, unit, principal, app, spec, options, commit=commit)


async def start(
    deps: Deps, principal: Principal, application_id: str, options: RolloutOptions, *, commit: str | None = None
) -> dict[str, Any]:
    """Snapshot the application, record the deployment as queued, publish ``cmd.deployment.start``;
    ``commit``: build that commit of its git repository."""

    async def body(unit: Unit) -> dict[str, Any]:
        return await start_in(deps, unit, principal, application_id, options, commit=commit)

    row = await run(deps, body)
    await purge(deps)
    return masked(row)


async def rollback(
    deps: Deps, principal: Principal, application_id: str, target_id: str | None, options: RolloutOptions
) -> dict[str, Any]:
    """A new deployment of the application's current configuration running a succeeded deployment's image
    (by default the one that succeeded before the live one): no build; a pulled image by its recorded
    digest (``repo@sha256:...``). A compose application's services with images of their own run the ones
    they ran in that deployment (``StartDeployment.images_of``: the scheduler recorded them); a service
    that builds its own image and did not run there is a 409 naming it."""

    async def body(unit: Unit) -> dict[str, Any]:
        s = unit.session
        app = await apps_repo.get_application(s, principal.team_id, application_id, lock=True)
        if app is None:
            raise application_missing(principal, application_id)
        refuse_if_removing(app)
        if target_id is not None:
            target = await repo.get_deployment(s, principal.team_id, target_id)
            if target is None or target["application_id"] != application_id:
                raise deployment_missing(principal, target_id)
            if target["state"] != "succeeded":
                raise ProblemError(409, f"Deployment {target_id} did not succeed: there is no image to roll back to.")
        else:
            done = await repo.succeeded(s, application_id, limit=2)
            if len(done) < 2:
                raise ProblemError(409, "There is no earlier successful deployment to roll back to.")
            target = done[1]
        if target.get("images_pruned_at") is not None and not target.get("image_digest"):
            raise ProblemError(
                409,
                f"The image of deployment {target['id']} was removed by image retention (the images of the "
                "latest deployments are kept): there is no image to roll back to; deploy its commit instead.",
            )
        spec = await _snapshot(deps, unit, app)
        if runs_app_image(spec):
            if not target["image"]:
                raise ProblemError(
                    409, f"Deployment {target['id']} did not succeed: there is no image to roll back to."
                )
            digest = target.get("image_digest")  # a pulled image runs by digest: a moved tag cannot change it
            spec = with_image(spec, str(digest or target["image"]), keep_policy=not digest)
        images_of = None
        if any(svc.build is not None or svc.image is not None for svc in spec.services):
            ran = open_spec(target["spec"], deps.box.open_text, snapshot_aad(target["id"]))
            missing = rollback_gaps(spec, ran)
            if missing:
                raise ProblemError(
                    409,
                    f"The compose services {', '.join(missing)} build their own images and did not run in "
                    f"deployment {target['id']}: there is no image of them to roll back to; deploy instead.",
                )
            images_of = target["id"]  # the scheduler runs each service on the image it ran there
        return await _record(
            deps, unit, principal, app, spec, options, kind="rollback", rollback_of=target["id"], images_of=images_of
        )

    row = await run(deps, body)
    await purge(deps)
    return masked(row)


async def cancel(deps: Deps, principal: Principal, deployment_id: str, reason: str) -> dict[str, Any]:
    """Ask the scheduler to cancel (it answers with evt.deployment.cancelled, or refuses once live)."""

    async def body(unit: Unit) -> dict[str, Any]:
        row = await repo.get_deployment(unit.session, principal.team_id, deployment_id)
        if row is None:
            raise deployment_missing(principal, deployment_id)
        if row["state"] in TERMINAL:
            raise ProblemError(409, f"Deployment {deployment_id} already {row['state']}.")
        if row["state"] not in CANCELLABLE:
            raise ProblemError(409, f"Too late to cancel: the new version already serves traffic ({row['state']}).")
        await repo.update_fields(unit.session, deployment_id, cancel_requested_at=datetime.now(UTC))
        command = CancelDeployment(deployment_id=deployment_id, reason=reason)
        await unit.emit(command, id=f"deployment-cancel-{deployment_id}")
        fresh = await repo.get_deployment(unit.session, principal.team_id, deployment_id)
        assert fresh is not None
        return fresh

    row = await run(deps, body)
    log.info("deployment cancel requested", deployment_id=deployment_id)
    return masked(row)


async def get(deps: Deps, principal: Principal, deployment_id: str) -> dict[str, Any]:
    async with deps.sessionmaker() as s:
        row = await repo.get_deployment(s, principal.team_id, deployment_id)
    if row is None:
        raise deployment_missing(principal, deployment_id)
    return masked(row)


async def list_for(
    deps: Deps, principal: Principal, application_id: str, limit: int, before: int | None
) -> list[dict[str, Any]]:
    async with deps.sessionmaker() as s:
        if await apps_repo.get_application(s, principal.team_id, application_id) is None:
            raise application_missing(principal, application_id)
        rows = await repo.list_deployments(s, principal.team_id, application_id, limit, before)
    return [masked(r) for r in rows]


async def purge_loop_once(deps: Deps) -> None:
    await purge(deps)
