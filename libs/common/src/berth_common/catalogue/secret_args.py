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

from pydantic import Field, SecretStr

from berth_common import sealing
from berth_common.catalogue.sealed_value import SealedValue

__all__ = ["MAX_ARG_CHARS", "SecretArg"]

MAX_ARG_CHARS = 65536


class SecretArg(SealedValue):
    """The value of argument ``index`` of the service's ``argv`` (its ``command`` or its ``entrypoint``)."""

    PURPOSE: ClassVar[str] = "arg"

    argv: Literal["command", "entrypoint"]
    index: int = Field(ge=0, le=4095)
    value: SecretStr = Field(max_length=sealing.sealed_length(4 * MAX_ARG_CHARS))

    @property
    def aad(self) -> str:
        return f"berth/{self.PURPOSE}/{self.argv}/{self.index}"
