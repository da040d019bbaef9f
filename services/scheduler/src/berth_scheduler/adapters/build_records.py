"""The builds of a deployment whose compose services build their own images (``deployment_builds``), and
what each service with an image of its own ran (``deployment_images``)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from berth_scheduler.adapters.tables import deployment_builds as t
from berth_scheduler.adapters.tables import deployment_images, deployments
from berth_scheduler.domain.builds import Build
from berth_scheduler.domain.service_images import ServiceImage


async def insert_builds(s: AsyncSession, deployment_id: str, builds: list[Build]) -> None:
    """Record the planned builds (pending); a build already recorded stays as it is."""
    if not builds:
        return
    rows = [
        {
            "deployment_id": deployment_id,
            "build_id": b.build_id,
            "position": i,
            "service": b.service,
            "image_tag": b.image_tag,
            "state": b.state,
        }
        for i, b in enumerate(builds)
    ]
    await s.execute(insert(t).values(rows).on_conflict_do_nothing())


async def builds_of(s: AsyncSession, deployment_id: str, *, lock: bool = False) -> list[Build]:
    """The deployment's builds in the plan's order (empty: it has a single build, or none)."""
    q = sa.select(t).where(t.c.deployment_id == deployment_id).order_by(t.c.position)
    if lock:
        q = q.with_for_update()
    return [_build(r) for r in await s.execute(q)]


def _build(row: Any) -> Build:
    return Build(
        service=row.service,
        build_id=row.build_id,
        image_tag=row.image_tag,
        state=row.state,
        image=row.image,
        pushed_ref=row.pushed_ref,
        reason=row.reason,
        deadline_at=row.deadline_at,
    )


async def save_build(s: AsyncSession, deployment_id: str, build: Build) -> None:
    await s.execute(
        sa.update(t)
        .where(t.c.deployment_id == deployment_id, t.c.build_id == build.build_id)
        .values(
            state=build.state,
            image=build.image,
            pushed_ref=build.pushed_ref,
            reason=build.reason[:4000],
            deadline_at=build.deadline_at,
        )
    )


async def set_spec(s: AsyncSession, deployment_id: str, spec: dict[str, Any]) -> None:
    """The deployment's snapshot as its replicas run it (its built services with their images)."""
    await s.execute(sa.update(deployments).where(deployments.c.id == deployment_id).values(spec=spec))


async def service_repositories(s: AsyncSession, application_id: str) -> set[str]:
    """The repositories (``berth/<app>-<service>``) the application's compose services were built into."""
    rows = await s.execute(
        sa.select(t.c.image_tag)
        .join(deployments, deployments.c.id == t.c.deployment_id)
        .where(deployments.c.application_id == application_id, t.c.service != "")
        .distinct()
    )
    return {str(tag).rsplit(":", 1)[0] for (tag,) in rows}


async def service_pushed_refs(s: AsyncSession, application_id: str) -> set[str]:
    """Every reference Berth pushed to a push registry for the application's compose services' builds."""
    rows = await s.execute(
        sa.select(t.c.pushed_ref)
        .join(deployments, deployments.c.id == t.c.deployment_id)
        .where(deployments.c.application_id == application_id, t.c.pushed_ref.is_not(None))
        .distinct()
    )
    return {str(r) for r in rows.scalars()}


async def service_images_in_use(s: AsyncSession, application_id: str, keep: int) -> set[str]:
    """The images the compose services' builds made for the last ``keep`` successful deployments of the
    application and for every unfinished one (as ``store.images_in_use`` for the application's image)."""
    succeeded = (
        sa.select(deployments.c.id)
        .where(deployments.c.application_id == application_id, deployments.c.state == "succeeded")
        .order_by(deployments.c.finished_at.desc())
        .limit(keep)
    )
    unfinished = sa.select(deployments.c.id).where(
        deployments.c.application_id == application_id,
        deployments.c.state.not_in(["succeeded", "failed", "cancelled"]),
    )
    rows = await s.execute(
        sa.select(t.c.image_tag, t.c.image, t.c.pushed_ref).where(
            t.c.service != "", sa.or_(t.c.deployment_id.in_(succeeded), t.c.deployment_id.in_(unfinished))
        )
    )
    ran = await s.execute(  # a rollback's services run images built for an earlier deployment
        sa.select(deployment_images.c.image).where(
            sa.or_(deployment_images.c.deployment_id.in_(succeeded), deployment_images.c.deployment_id.in_(unfinished))
        )
    )
    return {str(x) for row in [*rows, *ran] for x in row if x}


async def record_images(s: AsyncSession, deployment_id: str, images: list[ServiceImage]) -> None:
    """What the deployment's services with images of their own run (a repeated step records the same)."""
    if not images:
        return
    rows = [{"deployment_id": deployment_id, "service": i.service, "named": i.named, "image": i.image} for i in images]
    q = insert(deployment_images).values(rows)
    await s.execute(
        q.on_conflict_do_update(
            index_elements=[deployment_images.c.deployment_id, deployment_images.c.service],
            set_={"named": q.excluded.named, "image": q.excluded.image},
        )
    )


async def images_of(s: AsyncSession, deployment_id: str) -> list[ServiceImage]:
    """What the services with images of their own ran in the deployment."""
    rows = await s.execute(sa.select(deployment_images).where(deployment_images.c.deployment_id == deployment_id))
    return [ServiceImage(r.service, r.named, r.image) for r in rows]
