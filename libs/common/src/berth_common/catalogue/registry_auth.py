"""Registry credentials in an application's spec (``catalogue/specs.py``): those a pull uses, and where a
build's image is pushed. A password is sealed whenever serialised to JSON, bound to its registry host."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, SecretStr, field_serializer

from berth_common import sealing
from berth_common.catalogue.spec_base import MAX_SEALED_CHARS, Spec
from berth_common.registries import HOST_PATTERN

__all__ = ["NAMESPACE_PATTERN", "PullPolicy", "PushTarget", "RegistryAuth"]


class RegistryAuth(Spec):
    """Credentials for pulling from one registry (a team's ``registries`` entry whose host the image names).

    ``password`` (a password or token) is sealed whenever serialised to JSON, like a secret variable, bound
    to the registry host; the scheduler sends it to the engine as ``X-Registry-Auth`` for that pull only.
    """

    PURPOSE: ClassVar[str] = "registry"

    registry: str = Field(pattern=HOST_PATTERN, max_length=255)
    username: str = Field(min_length=1, max_length=255)
    password: SecretStr = Field(max_length=MAX_SEALED_CHARS)

    @property
    def aad(self) -> str:
        return f"berth/{self.PURPOSE}/{self.registry}"

    def reveal(self) -> str:
        """The plaintext, for the point of use only (raises ``sealing.UnsealError`` if it does not open)."""
        raw = self.password.get_secret_value()
        return sealing.unseal(raw, self.aad) if sealing.is_sealed(raw) else raw

    @field_serializer("password", when_used="json")
    def _sealed_on_the_wire(self, value: SecretStr) -> str:
        raw = value.get_secret_value()
        return sealing.reseal(raw, self.aad) if sealing.is_sealed(raw) else sealing.seal(raw, self.aad)


PullPolicy = Literal["always", "if-missing"]
NAMESPACE_PATTERN = r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*){0,3}$"


class PushTarget(Spec):
    """Where a build's image is pushed: the team's registry marked as the push target for builds. The image
    goes to ``<auth.registry>/<namespace>/<application>:<deployment tag>``; ``auth`` is sealed on the wire."""

    auth: RegistryAuth
    namespace: str = Field(default="berth", max_length=200, pattern=NAMESPACE_PATTERN)

    def repository(self, application: str) -> str:
        """``<registry host>/<namespace>/<application>``: the repository a build of ``application`` goes to."""
        return f"{self.auth.registry}/{self.namespace}/{application}"
