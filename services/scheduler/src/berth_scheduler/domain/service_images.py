"""The image each compose service of a deployment ran, and the snapshot a rollback to that deployment runs.
Pure.

A deployment records, per service with an image of its own (``deployment_images``), the reference its
snapshot named and the image its replicas ran: a service's build by its tag on the build server
(``berth/<app>-<service>:<deployment short>``) or by the reference pushed to the team's push registry, a
pulled image by its ``repo@sha256:...`` digest (the name itself when the registry gave none).

A rollback (``StartDeployment.images_of``) runs the application's configuration as it is now with the
images of that deployment: each service with a ``build`` runs the image built for it then (no build; a
service that had no image then cannot roll back, and the deployment fails naming it); each service with an
``image`` runs that deployment's image by digest when it named another reference then, and is left as it is
when it named the same one (so an unchanged stateful service keeps running, adopted, not recreated).
"""

from __future__ import annotations

from dataclasses import dataclass

from berth_common.catalogue import ApplicationSpec, GitSource, ImageSource


@dataclass(frozen=True)
class ServiceImage:
    """What one service of a deployment ran: ``named`` in its snapshot, ``image`` by its replicas."""

    service: str
    named: str
    image: str


def ran(service: str, named: str, digest: str) -> ServiceImage:
    """The record of a service whose image ``named`` was made ready with ``digest`` ("": none known)."""
    return ServiceImage(service, named, digest or named)


@dataclass(frozen=True)
class RolledBack:
    spec: ApplicationSpec
    missing: tuple[str, ...]  # the built services the deployment rolled back to has no image of

    @property
    def refusal(self) -> str | None:
        if not self.missing:
            return None
        return (
            f"cannot roll back: the compose service(s) {', '.join(self.missing)} build their own image and ran none "
            "in the deployment rolled back to"
        )


def rolled_back(spec: ApplicationSpec, recorded: list[ServiceImage]) -> RolledBack:
    """``spec`` running the images of the deployment that recorded ``recorded`` (see the module)."""
    by_service = {r.service: r for r in recorded}
    push = spec.source.push if isinstance(spec.source, GitSource) else None
    services, missing = [], []
    for svc in spec.services:
        found = by_service.get(svc.name)
        if svc.build is not None:
            if found is None:
                missing.append(svc.name)
                services.append(svc)
                continue
            pushed = push is not None and found.image.startswith(f"{push.auth.registry}/")
            own = ImageSource(image=found.image, auth=push.auth if pushed and push is not None else None)
            services.append(svc.model_copy(update={"build": None, "image": own}))
        elif svc.image is not None and found is not None and found.named != svc.image.image:
            policy = svc.image.pull_policy if found.image == found.named else None  # a digest needs none
            own = svc.image.model_copy(update={"image": found.image, "pull_policy": policy})
            services.append(svc.model_copy(update={"image": own}))
        else:
            services.append(svc)
    return RolledBack(spec.model_copy(update={"services": services}), tuple(missing))


def builds_nothing(spec: ApplicationSpec) -> bool:
    """Every service runs an image of its own: a rollback's snapshot needs no build at all."""
    return all(svc.image is not None and svc.build is None for svc in spec.services)
