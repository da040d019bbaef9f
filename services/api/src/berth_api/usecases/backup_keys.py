"""A team's backup key: 32 random bytes made on first use, sealed at rest (``SecretBox``, bound to the team),
carried sealed in the backup and restore commands that need it (``BackupKey``), and exported to the team's
admins so that a backup can be decrypted without Berth (``berth backup-decrypt``, or the format described
in ``docs/backup-encryption.md``).

The key never changes once made: every encrypted backup of the team stays readable with the one exported
copy. It is never logged, put in an event in the clear, or answered except by the audited export.
"""

from __future__ import annotations

import base64
from typing import Any

from pydantic import SecretStr

from berth_api.adapters import backup_keys as repo
from berth_api.adapters.sealed import hold_for_sealing
from berth_api.domain.applications import row_aad
from berth_api.domain.identity import Principal
from berth_api.usecases import Deps
from berth_common import streamcrypt
from berth_common.catalogue import BackupKey
from berth_common.logging import get_logger

log = get_logger(__name__)


def _aad(team_id: str) -> str:
    return row_aad("backup_keys", team_id)


async def team_key(deps: Deps, session: Any, team_id: str) -> BackupKey:
    """The team's key for a command, made (and kept, sealed) in ``session``'s transaction on first use; when
    two transactions make one at once, the first committed is kept and both use it."""
    row = await repo.get_key(session, team_id)
    if row is None:
        await hold_for_sealing(session, deps.box)
        key = streamcrypt.new_key()
        sealed = deps.box.seal(base64.b64encode(key).decode(), _aad(team_id))
        await repo.add_key(session, team_id, streamcrypt.key_id(key).hex(), sealed)
        row = await repo.get_key(session, team_id)
        assert row is not None
        log.info("backup key made", team_id=team_id, key_id=row["key_id"])
    opened = deps.box.open(row["sealed"], _aad(team_id))
    return BackupKey(team_id=team_id, key_id=row["key_id"], key=SecretStr(opened))


async def export(deps: Deps, principal: Principal) -> dict[str, Any]:
    """The team's key for its admins to keep offline (made now if the team has none); the route audits it."""
    async with deps.sessionmaker() as s, s.begin():
        key = await team_key(deps, s, principal.team_id)
        row = await repo.get_key(s, principal.team_id)
    assert row is not None
    log.info("backup key exported", team_id=principal.team_id, key_id=key.key_id)
    return {
        "key_id": key.key_id,
        "key": key.key.get_secret_value(),
        "format": f"berth-streamcrypt-v{streamcrypt.VERSION}",
        "algorithm": "AES-256-GCM",
        "created_at": row["created_at"],
    }
