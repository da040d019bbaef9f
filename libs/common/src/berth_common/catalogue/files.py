"""Files an application takes with it (a compose application's ``compose.files``, a template's files): part
of the application's spec (``catalogue/specs.py``).

A file's ``content`` may hold rendered template values, generated secrets among them: it is treated as a
secret variable's value is, printed as ``**********`` and sealed whenever serialised to JSON (bound to its
purpose and path). A service mounts a file, or a directory of them, at a path of its containers
(``FileMount``: compose's bind mount of ``./files/<source>``); the scheduler writes them into each replica
before it starts (``berth_scheduler.domain.app_files``).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from typing import Annotated, ClassVar

from pydantic import AfterValidator, Field, SecretStr, field_serializer, field_validator

from berth_common import sealing
from berth_common.catalogue.mounts import MountPath
from berth_common.catalogue.spec_base import Spec

__all__ = [
    "MAX_FILES",
    "MAX_FILES_BYTES",
    "MAX_FILE_BYTES",
    "AppFile",
    "FileMount",
    "FilePath",
    "file_path",
    "files_refusal",
    "mounted_files",
]

MAX_FILE_BYTES = 256 * 1024  # one file
MAX_FILES_BYTES = 1024 * 1024  # every file of an application together
MAX_FILES = 64
_CONTROL = re.compile(r"[\x00-\x1f\x7f\\]")


def file_path(value: str) -> str:
    """A relative path of the application's files: no leading ``/``, no ``..`` or ``.`` segment, no empty
    segment, no backslash or control character."""
    if value.startswith("/"):
        raise ValueError("a file path is relative (files/<path>): no leading /")
    if _CONTROL.search(value):
        raise ValueError("a file path cannot contain control characters or backslashes")
    parts = value.split("/")
    if any(p == ".." for p in parts):
        raise ValueError("a file path cannot contain '..'")
    if any(p in ("", ".") for p in parts) or posixpath.normpath(value) != value:
        raise ValueError("a file path cannot contain '//', '/./' or end with '/'")
    return value


FilePath = Annotated[str, Field(min_length=1, max_length=1024), AfterValidator(file_path)]


class AppFile(Spec):
    """A file of the application: ``path`` under its files, ``content`` (text, sealed on the wire) and its
    permission bits ``mode``."""

    PURPOSE: ClassVar[str] = "file"

    path: FilePath
    content: SecretStr = Field(max_length=sealing.sealed_length(4 * MAX_FILE_BYTES))
    mode: int = Field(default=0o644, ge=0, le=0o777)

    @field_validator("content")
    @classmethod
    def _size(cls, value: SecretStr) -> SecretStr:
        raw = value.get_secret_value()
        if len(raw.encode()) > MAX_FILE_BYTES and not sealing.is_sealed(raw):
            raise ValueError(f"a file is limited to {MAX_FILE_BYTES} bytes")
        return value

    @property
    def aad(self) -> str:
        return f"berth/{self.PURPOSE}/{self.path}"

    def reveal(self) -> str:
        """The plaintext, for the point of use only (raises ``sealing.UnsealError`` if it does not open)."""
        raw = self.content.get_secret_value()
        return sealing.unseal(raw, self.aad) if sealing.is_sealed(raw) else raw

    @field_serializer("content", when_used="json")
    def _sealed_on_the_wire(self, value: SecretStr) -> str:
        raw = value.get_secret_value()
        return sealing.reseal(raw, self.aad) if sealing.is_sealed(raw) else sealing.seal(raw, self.aad)


class FileMount(Spec):
    """The application's file ``source`` (or the directory of its files under ``source``) at ``target`` in
    the service's containers. ``read_only`` (compose's ``:ro``): the files are written without any write
    permission, and the mount itself is read-only in the replicas (a read-only bind mount from the files'
    volume on a single server, a read-only secret mount on a Swarm), so root there cannot change them."""

    source: FilePath
    target: MountPath
    read_only: bool = Field(default=False, exclude_if=lambda v: not v)


def mounted_files(files: Sequence[AppFile], source: str) -> list[AppFile]:
    """The files ``source`` names: the file of that path, or every file under that directory."""
    exact = [f for f in files if f.path == source]
    return exact or [f for f in files if f.path.startswith(source + "/")]


def files_refusal(files: Sequence[AppFile], mounts: Sequence[tuple[str, Sequence[FileMount]]]) -> str | None:
    """Why an application's ``files`` and its services' ``mounts`` (service name, its file mounts) cannot
    be placed, or None: a path given twice, more than ``MAX_FILES_BYTES`` together, a mount of no file."""
    paths = [f.path for f in files]
    if len(set(paths)) != len(paths):
        return "file paths must be unique"
    plain = [f.content.get_secret_value() for f in files]
    if sum(len(c.encode()) for c in plain if not sealing.is_sealed(c)) > MAX_FILES_BYTES:
        return f"the files are limited to {MAX_FILES_BYTES} bytes together"
    for service, given in mounts:
        for m in given:
            if not mounted_files(files, m.source):
                return f"service {service} mounts files/{m.source}: no file of the application"
    return None
