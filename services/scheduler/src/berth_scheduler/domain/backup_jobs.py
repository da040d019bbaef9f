"""The backup worker's protocol (pure): the job the scheduler writes to the worker's stdin, and the JSON
lines the worker writes to its stdout (progress, then one result).

The scheduler opens the destinations (the multipart upload is created and recorded, the directory's
``.partial`` file made) before the worker starts, and completes, verifies or aborts them after it ended:
the worker only streams the engine's exec output through the codec into the S3 parts and the files, with
its SHA-256 and size. The S3 secret key travels in the job only (stdin: never argv, environment, logs or
files); the result names the uploaded parts so the scheduler can complete the object.

A directory on another server is written (and read) by the worker over SFTP on an SSH connection of its
own (:class:`SftpFile`): the server's opened private key and its pinned host key travel in the job like
the S3 secret, so the bytes never pass through the scheduler's process.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field
from typing import Any

PROGRESS = "progress"
RESULT = "result"


@dataclass(frozen=True)
class S3Upload:
    """An open multipart upload the worker sends its parts to."""

    endpoint: str
    bucket: str
    region: str
    path_style: bool
    access_key: str
    secret_key: str = field(repr=False)
    key: str = ""
    upload_id: str = ""
    outbound_allow: list[str] = field(default_factory=list)  # the store's outbound rule (S3Destination's)
    outbound_private: bool = True


@dataclass(frozen=True)
class SftpFile:
    """A file on another server the worker reaches over SSH: the server's address, its user and opened
    private key (the scheduler unseals it; it travels in the job only), the pinned host key (no other is
    accepted), and the file's path there."""

    host: str
    port: int
    user: str
    private_key: str = field(repr=False)
    host_key: str = ""
    path: str = ""


def _sftp(data: dict[str, Any] | None) -> SftpFile | None:
    return SftpFile(**data) if data else None


@dataclass(frozen=True)
class DumpJob:
    """Run ``argv`` in ``container`` through the engine on the unix socket ``socket``; compress its stdout
    with ``compression`` and write it to every upload and file (each a ``.partial`` path the scheduler
    made). ``env`` may hold the database password and ``stdin`` a config document (base64 in the JSON).
    With ``attach``, ``container`` is a helper container made for the stream (a volume's tar) and ``argv``
    only names its command."""

    socket: str
    api_version: str
    container: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict, repr=False)
    stdin: bytes = field(default=b"", repr=False)
    compression: str = "gzip"
    part_size: int = 8 << 20
    s3_timeout_s: float = 30.0
    uploads: list[S3Upload] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    attach: bool = False  # ``container`` is a helper the scheduler created: attached, started, waited for
    key: str = field(default="", repr=False)  # the team's backup key (base64) when the backup is encrypted
    remote: list[SftpFile] = field(default_factory=list)  # ``.partial`` files on other servers, over SFTP

    def to_json(self) -> str:
        data = asdict(self)
        data["stdin"] = base64.b64encode(self.stdin).decode("ascii")
        return json.dumps({"kind": "dump", **data}, sort_keys=True)


@dataclass(frozen=True)
class CheckJob:
    """Read a stored backup object to its end (``source``: in S3, its ``upload_id`` unused; ``remote``: a
    file on another server; else the local file ``file``): the result is its size and SHA-256, before a
    restore writes anything."""

    source: S3Upload | None = None
    file: str = ""
    s3_timeout_s: float = 30.0
    remote: SftpFile | None = None

    def to_json(self) -> str:
        return json.dumps({"kind": "check", **asdict(self)}, sort_keys=True)


@dataclass(frozen=True)
class RestoreJob:
    """Stream a stored object (``source`` in S3, ``remote`` on another server, else the local ``file``), its
    SHA-256 checked against ``sha256``, decompressed, into the stdin of ``argv`` run in ``container`` (with ``attach``: the helper
    container made for it, attached with its stdin and started). The result's ``size`` is the bytes
    written into the tool, ``reason`` why it is not good (a wrong SHA-256, a damaged object, the tool)."""

    socket: str
    api_version: str
    container: str
    argv: list[str]
    sha256: str
    env: dict[str, str] = field(default_factory=dict, repr=False)
    compression: str = "gzip"
    source: S3Upload | None = None
    file: str = ""
    s3_timeout_s: float = 30.0
    attach: bool = False
    key: str = field(default="", repr=False)  # the team's backup key (base64) when the object is encrypted
    remote: SftpFile | None = None

    def to_json(self) -> str:
        return json.dumps({"kind": "restore", **asdict(self)}, sort_keys=True)


def job_from_json(text: str) -> DumpJob | CheckJob | RestoreJob:
    """The job of a worker's first stdin line."""
    data = json.loads(text)
    kind = data.pop("kind")
    if kind in ("check", "restore"):
        source = data.pop("source")
        made = CheckJob if kind == "check" else RestoreJob
        remote = _sftp(data.pop("remote", None))
        return made(source=S3Upload(**source) if source else None, remote=remote, **data)
    data["stdin"] = base64.b64decode(data.get("stdin", ""))
    data["uploads"] = [S3Upload(**u) for u in data.get("uploads", [])]
    data["remote"] = [SftpFile(**f) for f in data.get("remote", [])]
    return DumpJob(**data)


@dataclass(frozen=True)
class DumpResult:
    """How the stream ended. ``reason`` set: it is not good (the tool's exit or the store's refusal, in
    words); else ``parts`` holds each upload's ``[number, etag]`` pairs in the job's order, and the files
    are written and synced. ``peak_rss_kb``: the worker's own VmHWM when it ended."""

    size: int = 0
    sha256: str = ""
    parts: list[list[list[Any]]] = field(default_factory=list)
    exit_code: int | None = None
    reason: str | None = None
    status: int | None = None  # the engine's HTTP status when it refused the exec (404, 409)
    peak_rss_kb: int = 0

    def line(self) -> str:
        return json.dumps({"type": RESULT, **asdict(self)}, sort_keys=True)

    def upload_parts(self, index: int) -> list[tuple[int, str]]:
        return [(int(number), str(etag)) for number, etag in self.parts[index]]


def progress_line(written: int) -> str:
    return json.dumps({"type": PROGRESS, "bytes": written}, sort_keys=True)


def parse_line(text: str) -> DumpResult | int | None:
    """A worker's stdout line: its result, the bytes written so far (progress), or ``None`` (not ours)."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    kind = data.pop("type", None)
    if kind == PROGRESS:
        return int(data.get("bytes", 0))
    if kind == RESULT:
        return DumpResult(**data)
    return None
