"""Channel secrets at rest: ``berth_common.sealing`` for the notifier's purpose, bound to the channel's row.

A channel's secret fields are sealed together as one JSON mapping; the associated data is the row's ids,
so a blob copied to another channel or team does not open. The key comes from the notifier's key file
(or BERTH_SECRET_KEY); blobs written with a previous key still open, and the notifier re-seals them with
the current one at start (``store.rotate_secrets``).
"""

from __future__ import annotations

import json
from pathlib import Path

from berth_common.keyfile import read_or_create_key
from berth_common.sealing import NOTIFIER_CHANNELS, Box, Keyring, UnsealError

SecretUnavailableError = UnsealError  # a blob does not open; the message never holds a value
MIN_KEY_BYTES = 16


class SecretBox(Box):
    """Seal and open a channel's secret fields. ``materials[0]`` is the current key, the others only open."""

    def __init__(self, materials: list[bytes]) -> None:
        super().__init__(Keyring.from_materials(materials, NOTIFIER_CHANNELS))

    def encrypt(self, values: dict[str, str], aad: str) -> bytes:
        return self.seal_bytes(json.dumps(values, sort_keys=True), aad)

    def decrypt(self, blob: bytes, aad: str) -> dict[str, str]:
        values = json.loads(self.open_bytes(blob, aad))
        if not isinstance(values, dict):
            raise SecretUnavailableError("secret blob holds no mapping")
        return {str(k): str(v) for k, v in values.items()}

    def rotate_blob(self, blob: bytes, aad: str) -> bytes:
        return self.encrypt(self.decrypt(blob, aad), aad)


def from_settings(key_file: Path | None, secret_key: str, previous: list[str]) -> SecretBox:
    """The current key from the key file (or BERTH_SECRET_KEY), then the previous ones."""
    current = read_or_create_key(key_file, MIN_KEY_BYTES) if key_file is not None else secret_key.encode()
    return SecretBox([current, *(p.encode() for p in previous if p)])
