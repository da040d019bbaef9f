"""What a compose service asks of its containers' runtime beyond its limits: resources reserved for it
(``deploy.resources.reservations``) and its secret files (compose's ``secrets``): part of the service
(``catalogue/composed.py``).

- ``Reservations``: memory the engine keeps for the container when memory is short (Docker's
  ``MemoryReservation``, a soft limit), and CPU cores a Swarm counts as taken on the node it places a task on
  (``Resources.Reservations``). A single engine has no CPU reservation: there the cores are noted, not
  applied (a reservation is no limit: ``NanoCpus`` would cap the container at them).
- ``SecretFile``: a file of the container holding one secret value (a Berth variable's), read-only at its
  ``target`` (``/run/secrets/<name>`` unless compose names another), with its permission bits. The value
  is treated as a secret variable's is: printed as ``**********``, sealed whenever serialised to JSON
  (bound to its target), revealed only where the scheduler puts it into the service's read-only files.
- ``InternalNetwork``: where a service on compose networks with ``internal: true`` sits: ``only`` on the
  application's internal network (``berth-app-<application id>-internal``, Docker's ``Internal``: nothing is
  forwarded out of it, so the service reaches no other network nor the internet, and neither the proxy's
  side nor any other reaches it; the server's own addresses stay reachable, as on any internal network), or
  ``also`` there and on the application's private network (it reaches both sides).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, SecretStr

from berth_common import sealing
from berth_common.catalogue.mounts import MountPath
from berth_common.catalogue.sealed_value import SealedValue
from berth_common.catalogue.spec_base import Spec

__all__ = ["MAX_SECRET_CHARS", "SECRETS_DIR", "InternalNetwork", "Reservations", "SecretFile", "SecretFiles"]

SECRETS_DIR = "/run/secrets"
MAX_SECRET_CHARS = 65536
InternalNetwork = Literal["only", "also"]


class Reservations(Spec):
    """Resources kept for the service's containers: ``memory_mb`` (Docker's ``MemoryReservation``) and
    ``cpus`` (cores; a Swarm's ``Resources.Reservations.NanoCPUs``, nothing on a single engine)."""

    cpus: float | None = Field(default=None, gt=0, le=512, exclude_if=lambda v: v is None)
    memory_mb: int | None = Field(default=None, ge=6, le=4_194_304, exclude_if=lambda v: v is None)


class SecretFile(SealedValue):
    """One secret value as a read-only file at ``target`` in the service's containers, with ``mode``."""

    PURPOSE: ClassVar[str] = "secret-file"

    target: MountPath
    mode: int = Field(default=0o444, ge=0, le=0o777)
    value: SecretStr = Field(max_length=sealing.sealed_length(4 * MAX_SECRET_CHARS))

    @property
    def aad(self) -> str:
        return f"berth/{self.PURPOSE}/{self.target}"


SecretFiles = Annotated[list[SecretFile], Field(max_length=64)]
