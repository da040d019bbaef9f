"""What the template tests share: a deterministic random source and the fixture folders."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx

FIXTURES = Path(__file__).parent / "fixtures" / "templates"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


class CountingSource:
    """Bytes 0, 1, 2, ...; the alphabet's characters in turn; the lowest number; a fixed clock."""

    def __init__(self) -> None:
        self.n = 0

    def token_bytes(self, n: int) -> bytes:
        out = bytes((self.n + i) % 256 for i in range(n))
        self.n += n
        return out

    def choice(self, alphabet: str) -> str:
        c = alphabet[self.n % len(alphabet)]
        self.n += 1
        return c

    def randbelow(self, n: int) -> int:
        return 7 % n

    def now(self) -> datetime:
        return NOW


def coolify_files() -> list[Path]:
    return sorted((FIXTURES / "coolify").glob("*.y*ml"))


def dokploy_dirs() -> list[Path]:
    return sorted(p for p in (FIXTURES / "dokploy").iterdir() if p.is_dir())


def dokploy_files(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in folder.iterdir() if p.is_file()}


async def deploy_dokploy(
    client: httpx.AsyncClient, headers: dict[str, str], env: str, files: dict[str, str], name: str
) -> httpx.Response:
    """Import a Dokploy blueprint (its files by name) and deploy the imported document as ``name`` in ``env``:
    the deploy's answer (the import is asserted to succeed)."""
    imported = await client.post("/v1/templates/import", headers=headers, json={"format": "dokploy", "files": files})
    assert imported.status_code == 200, imported.text
    body = {"environment_id": env, "document": imported.json()["template"]["document"], "name": name}
    return await client.post("/v1/templates/deploy", headers=headers, json=body)
