"""Image retention after a deployment succeeded: the application's images no kept deployment needs are
removed on every server that held its containers, and the api is told which built tags went (a rollback
to a deployment that ran one of them has nothing to run); so are its read-only files volumes no container
binds any more (``domain/app_files.py``).

It runs once the deployment has ended, in the application's slot while nothing else wants it: the
orchestrator (``orchestrator.py``) gives it up for the application's next deployment, scale or removal
(and takes it up again once the application is free), so a server that hangs holds no deployment up; each
server is given at most ``prune_server_timeout_s`` (a server nobody reported unreachable yet would
otherwise hold each engine call for the engine call's own time limit)."""

from __future__ import annotations

import asyncio
import hashlib

from berth_common import labels
from berth_common.catalogue import ImagesPruned
from berth_common.db.unit import Unit
from berth_common.logging import get_logger
from berth_scheduler.adapters import build_records, files_volumes, store
from berth_scheduler.adapters.docker import DockerOperationError
from berth_scheduler.domain import app_files, retention
from berth_scheduler.domain.routing import LOCAL
from berth_scheduler.usecases.rollout.context import RolloutContext
from berth_scheduler.usecases.rollout.steps import read, servers_of

log = get_logger(__name__)


async def prune(rt: RolloutContext, application_id: str, image: str | None) -> None:
    """What a succeeded deployment leaves to remove: the images no kept deployment needs, then the read-only
    files volumes nothing binds any more."""
    await prune_images(rt, application_id, image)
    await prune_files_volumes(rt, application_id)


async def prune_files_volumes(rt: RolloutContext, application_id: str) -> None:
    """Remove the application's read-only files volumes no container of it binds files from any more (with
    their fillers, one an interrupted fill left too), on every server that held its containers (best
    effort: never fails a deployment; each server within ``prune_server_timeout_s``)."""
    try:
        servers = list(dict.fromkeys([LOCAL, *await servers_of(rt, application_id, None)]))
    except Exception as exc:
        log.warning("files volumes pruning failed", application_id=application_id, error=str(exc))
        return

    async def on(server: str) -> None:
        try:
            async with asyncio.timeout(rt.settings.prune_server_timeout_s):
                docker = rt.docker if server == LOCAL else await rt.fleet.docker(server)
                selector = {labels.APP: application_id}
                found = [c.labels for c in await docker.list_containers(selector)]
                for volume in app_files.unused_volumes(application_id, await docker.list_volumes(selector), found):
                    try:
                        await files_volumes.remove_volume(docker, volume)  # its filler first
                    except DockerOperationError as exc:  # mounted by a container made since the listing: kept
                        if exc.status != 409:
                            raise
        except Exception as exc:  # a timeout too: the next deployment tries again
            log.warning("files volumes pruning failed", application_id=application_id, server_id=server, error=str(exc))

    await asyncio.gather(*(on(server) for server in servers))


async def prune_images(rt: RolloutContext, application_id: str, image: str | None) -> list[str]:
    """Untag the application's built images that no kept deployment needs (its own image's repository and
    those its compose services were built into), and remove the images pulled by digest from a push
    registry that Berth pushed for it and no kept deployment runs, on every server that held its containers
    (best effort: never fails a deployment; the servers at once, each within ``prune_server_timeout_s``: a
    server that does not answer in that time is skipped until the next deployment; an image a container
    still uses stays). Returns the references removed (on remote servers as ``<server>:<reference>``)."""
    repos = [image.rsplit(":", 1)[0]] if image and image.startswith("berth/") else []  # else the user's own
    try:
        keep = await read(rt, store.images_in_use, application_id, rt.settings.keep_images)
        keep |= await read(rt, build_records.service_images_in_use, application_id, rt.settings.keep_images)
        repos += sorted(await read(rt, build_records.service_repositories, application_id))
        pushed = await read(rt, store.pushed_refs, application_id)
        pushed |= await read(rt, build_records.service_pushed_refs, application_id)
        keep_refs = keep | await read(rt, store.refs_in_use, application_id, rt.settings.keep_images)
        servers = await servers_of(rt, application_id, None) if repos or pushed else []
    except Exception as exc:
        log.warning("image pruning failed", application_id=application_id, error=str(exc))
        return []
    built_gone: set[str] = set()  # tags of built images removed anywhere: told to the api (rollbacks)

    async def on(server: str) -> list[str]:
        removed: list[str] = []
        try:
            async with asyncio.timeout(rt.settings.prune_server_timeout_s):
                docker = rt.docker if server == LOCAL else await rt.fleet.docker(server)
                gone: list[str] = []
                if repos:
                    built = retention.built_images(await docker.list_images({labels.APPLICATION: application_id}))
                    ids = [b.deployment for b in built if b.deployment]
                    finished = await read(rt, store.finished_deployments, ids)
                    untagged = [t for repo in repos for t in retention.tags_to_remove(built, keep, repo, finished)]
                    gone += untagged
                if pushed:
                    repositories = sorted({retention.repository_of(p) for p in pushed})  # as the engine matches
                    pulled = retention.pulled_images(await docker.images_of(repositories))
                    done = await read(rt, store.finished_deployments, [p.deployment for p in pulled if p.deployment])
                    gone += [r for r in retention.pulled_to_remove(pulled, pushed, keep_refs, done) if r not in gone]
                for ref in gone:
                    if await docker.untag_image(ref):
                        removed.append(ref if server == LOCAL else f"{server}:{ref}")
                        if repos and ref in untagged:
                            built_gone.add(ref)
        except TimeoutError:
            limit = rt.settings.prune_server_timeout_s
            log.warning("image pruning skipped: the server did not answer in time", server_id=server, limit_s=limit)
        except Exception as exc:
            log.warning("image pruning failed", application_id=application_id, server_id=server, error=str(exc))
        return removed

    wanted = list(dict.fromkeys([LOCAL, *servers])) if repos or pushed else []
    removed = [ref for refs in await asyncio.gather(*(on(server) for server in wanted)) for ref in refs]
    if removed:
        log.info("old images pruned", application_id=application_id, removed=removed)
    if built_gone:
        await _tell_pruned(rt, application_id, sorted(built_gone))
    return removed


async def _tell_pruned(rt: RolloutContext, application_id: str, images: list[str]) -> None:
    """``evt.application.images_pruned`` (best effort, as the pruning: a tag removed again later is told then)."""
    event = ImagesPruned(application_id=application_id, images=images[:1000])
    key = hashlib.sha256("\0".join(images).encode()).hexdigest()[:32]

    async def body(unit: Unit) -> None:
        await unit.emit(event, id=f"images-pruned-{application_id}-{key}")

    try:
        await rt.units.run(body)
    except Exception as exc:
        log.warning("image pruning not told", application_id=application_id, error=str(exc))
