"""An argument of a compose service's command or entrypoint that holds a secret variable
(``redis-server --requirepass ${REDIS_PASSWORD}``, common in Coolify's templates): part of the service
(``catalogue/composed.py``).

The service's ``command`` or ``entrypoint`` keeps the argument's text with the reference, as the compose
file has it; the ``SecretArg`` carries the rendered value, treated as a secret variable's value is: printed
as ``**********``, sealed whenever serialised to JSON (bound to its place), revealed only where the
scheduler makes the container's configuration, which it replaces the argument in.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, SecretStr, field_serializer

from berth_common import sealing
from berth_common.catalogue.spec_base import Spec

__all__ = ["MAX_ARG_CHARS", "SecretArg"]

MAX_ARG_CHARS = 65536


class SecretArg(Spec):
    """The value of argument ``index`` of the service's ``argv`` (its ``command`` or its ``entrypoint``)."""

    PURPOSE: ClassVar[str] = "arg"

    argv: Literal["command", "entrypoint"]
    index: int = Field(ge=0, le=4095)
    value: SecretStr = Field(max_length=sealing.sealed_length(4 * MAX_ARG_CHARS))

    @property
    def aad(self) -> str:
        return f"berth/{self.PURPOSE}/{self.argv}/{self.index}"

    def reveal(self) -> str:
        """The plaintext, for the point of use only (raises ``sealing.UnsealError`` if it does not open)."""
        raw = self.value.get_secret_value()
        return sealing.unseal(raw, self.aad) if sealing.is_sealed(raw) else raw

    @field_serializer("value", when_used="json")
    def _sealed_on_the_wire(self, value: SecretStr) -> str:
        raw = value.get_secret_value()
        return sealing.reseal(raw, self.aad) if sealing.is_sealed(raw) else sealing.seal(raw, self.aad)
