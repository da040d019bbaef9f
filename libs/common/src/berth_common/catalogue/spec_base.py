"""The base of every part of an application's spec: immutable, and no field it does not know."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from berth_common import sealing

MAX_VALUE_CHARS = 65536
MAX_SEALED_CHARS = sealing.sealed_length(4 * MAX_VALUE_CHARS)  # a token of the longest value (UTF-8)


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
