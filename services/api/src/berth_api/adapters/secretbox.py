"""The api's secret values at rest: ``berth_common.sealing`` for the api's purpose, keys from its key file.

A value is sealed as bytes in a ``sealed`` column, or as text inside a deployment snapshot; the associated
data binds it to where it belongs (an application's variable, a deployment's snapshot), so a value copied
into another row or team does not open. The key file is created at first start (mode 0600); key rotation
(``berth_api.usecases.rotation``) re-seals everything with a new one, and :class:`KeyRing` re-reads it.
"""

from __future__ import annotations

from pathlib import Path

from berth_common.keyfile import KeyFile
from berth_common.sealing import API_SECRETS, Box, Keyring, UnsealError

SecretUnavailableError = UnsealError  # a sealed value does not open; the message never holds a value


class SecretBox(Box):
    """Seal and open single values. ``materials[0]`` is the current key, the others only open."""

    def __init__(self, materials: list[bytes] | None = None, *, source: KeyFile | None = None) -> None:
        super().__init__(source if source is not None else Keyring.from_materials(materials or [], API_SECRETS))

    def seal(self, value: str, aad: str) -> bytes:
        return self.seal_bytes(value, aad)

    def open(self, blob: bytes, aad: str) -> str:
        return self.open_bytes(blob, aad)

    def sealed_with_current(self, blob: bytes) -> bool:
        """Whether a sealed value was written with the current key (key rotation skips those)."""
        return self.is_current(bytes(blob))

    def sealed_with_text(self, text: str) -> bool:
        """``sealed_with_current`` for a sealed text (False for anything else, and for an older format)."""
        return self.is_current(text)


class KeyRing(SecretBox):
    """A box whose keys are files: the key file (seals and opens) and its dated backups (open only)."""

    def __init__(self, path: Path, previous: list[Path] | None = None) -> None:
        self.file = KeyFile(path, previous, purpose=API_SECRETS)
        super().__init__(source=self.file)

    def refresh(self) -> bool:
        """Re-read the keys if the key file changed since the last read; whether it did."""
        return self.file.refresh()


def open_box(path: Path, previous: list[Path] | None = None) -> KeyRing:
    """The box of the key file at ``path`` (created if missing), its backups and older key files for reading."""
    return KeyRing(path, previous)
