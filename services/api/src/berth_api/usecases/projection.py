"""The deployment projection: each deployment's status kept current from the scheduler's and builder's events.

Carries out ``evt.deployment.progressed``, ``evt.deployment.succeeded``, ``evt.deployment.failed``,
``evt.deployment.cancelled``, ``evt.build.succeeded`` and ``evt.application.images_pruned`` for the api's
``deployments`` table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from berth_api.adapters import deployments as deployments_repo
from berth_api.adapters.secretbox import SecretBox
from berth_api.domain import deployments as projection
from berth_api.domain.applications import open_spec, redact, snapshot_aad
from berth_common.catalogue import (
    BuildSucceeded,
    DeploymentCancelled,
    DeploymentFailed,
    DeploymentProgressed,
    DeploymentSucceeded,
    ImagesPruned,
)
from berth_common.db import Unit
from berth_common.logging import get_logger

log = get_logger(__name__)


@dataclass
class DeploymentProjection:
    """Keeps each deployment's status current from the scheduler's and the builder's events.

    Each handler runs inside ``berth_common.db.consume_once`` (the message id is recorded with the change);
    the deployment row is locked, so events of one deployment apply one at a time, and the pure rules of
    ``domain.deployments`` drop stale ones. Texts are redacted of the deployment's secret values.
    """

    box: SecretBox

    def secrets_of(self, row: dict[str, Any]) -> list[str]:
        try:
            spec = open_spec(row["spec"], self.box.open_text, snapshot_aad(row["id"]))
        except Exception:  # an unreadable snapshot must not block the projection
            return []
        return spec.secret_values()

    @staticmethod
    def _at(unit: Unit) -> datetime:
        return unit.delivery.envelope.time if unit.delivery is not None else datetime.now(UTC)

    async def on_progressed(self, msg: DeploymentProgressed, unit: Unit) -> None:
        row = await deployments_repo.lock_deployment(unit.session, msg.deployment_id)
        if row is None:
            log.info("event for an unknown deployment ignored", deployment_id=msg.deployment_id, type=msg.TYPE)
            return
        secrets = self.secrets_of(row)
        step, detail = redact(msg.step, secrets), redact(msg.detail, secrets)
        new = projection.on_progressed(deployments_repo.projection_of(row), msg.state, step, detail, self._at(unit))
        if new is None:
            log.info("stale progress ignored", deployment_id=msg.deployment_id, state=msg.state, current=row["state"])
            return
        digest = {"image_digest": msg.image_digest} if msg.image_digest else {}
        await deployments_repo.save_projection(unit.session, msg.deployment_id, new, **digest)

    async def _terminal(
        self, deployment_id: str, state: str, reason: str | None, unit: Unit, failed_in: str | None = None, **extra: Any
    ) -> None:
        row = await deployments_repo.lock_deployment(unit.session, deployment_id)
        if row is None:
            log.info("event for an unknown deployment ignored", deployment_id=deployment_id, state=state)
            return
        reason = redact(reason, self.secrets_of(row)) if reason else None
        at = self._at(unit)
        new = projection.on_terminal(deployments_repo.projection_of(row), state, reason, at, failed_in)
        if new is None:
            log.warning("conflicting end ignored", deployment_id=deployment_id, state=state, current=row["state"])
            return
        await deployments_repo.save_projection(unit.session, deployment_id, new, **extra)

    async def on_succeeded(self, msg: DeploymentSucceeded, unit: Unit) -> None:
        extra: dict[str, Any] = {"duration_s": msg.duration_s, "previous_deployment_id": msg.previous_deployment_id}
        if msg.image:
            extra["image"] = msg.image
        if msg.image_digest:
            extra["image_digest"] = msg.image_digest
        await self._terminal(msg.deployment_id, "succeeded", None, unit, **extra)

    async def on_failed(self, msg: DeploymentFailed, unit: Unit) -> None:
        await self._terminal(
            msg.deployment_id, "failed", msg.reason, unit, failed_in=msg.failed_in, duration_s=msg.duration_s
        )

    async def on_cancelled(self, msg: DeploymentCancelled, unit: Unit) -> None:
        await self._terminal(msg.deployment_id, "cancelled", msg.reason or "cancelled", unit)

    async def on_build_succeeded(self, msg: BuildSucceeded, unit: Unit) -> None:
        """The commit built and, when Berth detected how to build, the Dockerfile it generated (a compose
        service's own build names no image of the deployment: its services' images are in its spec)."""
        row = await deployments_repo.lock_deployment(unit.session, msg.deployment_id)
        if row is None:
            return
        values: dict[str, Any] = {"commit": msg.commit or None, "generated_dockerfile": msg.generated_dockerfile}
        if not row["image"] and msg.image and msg.service is None:
            values["image"] = msg.image
        await deployments_repo.update_fields(unit.session, msg.deployment_id, **values)

    async def on_images_pruned(self, msg: ImagesPruned, unit: Unit) -> None:
        """The application's deployments that ran a removed image (and have no digest to pull it by) can no
        longer be rolled back to."""
        marked = await deployments_repo.mark_images_pruned(unit.session, msg.application_id, msg.images, self._at(unit))
        log.info("deployments' images pruned", application_id=msg.application_id, deployments=marked)
