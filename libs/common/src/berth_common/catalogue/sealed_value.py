"""A part of a spec whose ``value`` is a secret bound to its place: printed as ``**********``, sealed whenever
serialised to JSON (the additional data ``aad`` names the place, so a sealed value moved to another place
does not open), revealed only at the point of use."""

from __future__ import annotations

from typing import ClassVar

from pydantic import SecretStr, field_serializer

from berth_common import sealing
from berth_common.catalogue.spec_base import Spec

__all__ = ["SealedValue"]


class SealedValue(Spec):
    """A secret ``value`` sealed on the wire; a subclass names its place (``aad``) and bounds the value."""

    PURPOSE: ClassVar[str]

    value: SecretStr

    @property
    def aad(self) -> str:
        raise NotImplementedError

    def reveal(self) -> str:
        """The plaintext, for the point of use only (raises ``sealing.UnsealError`` if it does not open)."""
        raw = self.value.get_secret_value()
        return sealing.unseal(raw, self.aad) if sealing.is_sealed(raw) else raw

    @field_serializer("value", when_used="json")
    def _sealed_on_the_wire(self, value: SecretStr) -> str:
        raw = value.get_secret_value()
        return sealing.reseal(raw, self.aad) if sealing.is_sealed(raw) else sealing.seal(raw, self.aad)
