"""Uploaded certificates changed for an application (``evt.certificates.changed``): its live and waiting
deployments carry the new set from now on.

proxy-sync applies the application's routes again with the new set at once; what the scheduler keeps is
what its own later route commands carry (a scale, a Swarm switch, the routes put back after a failed
deployment), which it reads from the deployment's spec. Each spec records the refresh's revision: a refresh
older than the one a spec has is ignored, so a late redelivery never brings a deleted certificate back.
"""

from __future__ import annotations

from dataclasses import dataclass

from berth_common.catalogue import CertificatesChanged
from berth_common.db import Unit
from berth_common.logging import get_logger
from berth_scheduler.adapters import store
from berth_scheduler.adapters.sealing import Sealer

log = get_logger(__name__)


@dataclass
class CertificatesRefresh:
    sealer: Sealer

    async def refresh(self, msg: CertificatesChanged, unit: Unit) -> None:
        changed = []
        for row in await store.specs_serving(unit.session, msg.application_id):
            spec = self.sealer.open(row.spec)
            if spec.tls.certificates_revision >= msg.revision:
                continue
            tls = spec.tls.refreshed(msg.hosts, msg.certificates, msg.revision)
            await store.replace_spec(unit.session, row.id, self.sealer.seal(spec.model_copy(update={"tls": tls})))
            changed.append(row.id)
        log.info(
            "uploaded certificates recorded",
            application_id=msg.application_id,
            revision=msg.revision,
            deployments=changed,
            certificates=[c.certificate_id for c in msg.certificates],
        )
