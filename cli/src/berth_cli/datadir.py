"""The data dir's secrets (made on first start, reused after) and small file helpers."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any


def write_private(path: Path, text: str | bytes) -> None:
    """Write ``text`` (or bytes) to ``path`` with mode 0600 from the first byte, atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(text.encode() if isinstance(text, str) else text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def ensure_secret(path: Path, nbytes: int = 48) -> str:
    """The secret stored at ``path``, generated (urlsafe, ``nbytes`` random bytes) if there is none."""
    if path.exists():
        value = path.read_text().strip()
        if value:
            if path.stat().st_mode & 0o077:
                path.chmod(0o600)
            return value
    # what secrets.token_urlsafe does, without importing it: it loads OpenSSL's libcrypto (through hmac),
    # a few MB resident in the long-lived supervisor that has no other use for it
    value = base64.urlsafe_b64encode(os.urandom(nbytes)).rstrip(b"=").decode("ascii")
    write_private(path, value + "\n")
    return value


def write_json(path: Path, data: Any) -> None:
    """Atomically replace ``path`` with ``data`` as JSON (readers never see half a file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def tail(path: Path, lines: int = 20, max_bytes: int = 64_000) -> str:
    """The last ``lines`` lines of a log file ('' when there is none)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def rotate(path: Path, max_bytes: int = 10_000_000) -> None:
    """Keep one previous generation of a log that grew past ``max_bytes``."""
    try:
        if path.stat().st_size > max_bytes:
            os.replace(path, path.with_suffix(path.suffix + ".1"))
    except FileNotFoundError:
        pass
