"""Berth's Traefik plugin that reads small request bodies whole before they are forwarded, as data.

Go's HTTP/1 server drains and closes a request body as soon as the handler starts its answer, and Go's
transport, after sending the body's ``Content-Length`` bytes to the application, reads the body once more to
check that nothing follows. On a busy machine the goroutine sending the body can be descheduled long enough
for the application to answer first; that last read then fails on the closed body and the transport closes
its connection to the application while Traefik is still copying the answer. The client gets an answer cut
before its end (golang/go#40747; seen as about one POST in a thousand under CPU load, the answers of
``Content-Length``-less applications, and any answer longer than the first read). Go's remedy
(``ResponseController.EnableFullDuplex``) must be called by the proxy itself, which Traefik does not do.

The plugin (``traefik_plugins/bodyread/bodyread.go``, run by Traefik's Go interpreter as a local plugin)
reads a body of known length up to ``MAX_BYTES`` into memory and forwards it from there, so the server's
close touches nothing the transport reads. Answers are untouched and stream as before; bodies of unknown
length or over the limit go on unread (streamed uploads), where a service's ``buffer_requests`` option
reads them whole.

Every Traefik Berth runs loads it: the static configuration names it (``static_config``) and puts it on
the web entry points as ``ENTRY_MIDDLEWARE``, whose definition is part of proxy-sync's sentinel file.
Traefik finds local plugins under ``plugins-local/src/<module>/`` of its working directory: the cli writes
them into Traefik's data folder and starts it there; a server's Traefik image carries them at ``/``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

PLUGIN = "berthbodyread"
MODULE = "github.com/berth/bodyread"
ENTRY_MIDDLEWARE = "berth-body-read"
MAX_BYTES = 1 << 20  # bodies up to 1 MiB are read whole: nearly every form and API call
LOCAL_DIR = "plugins-local"
_FILES = (".traefik.yml", "go.mod", "bodyread.go")


def static_part() -> dict[str, Any]:
    """The static configuration's ``experimental`` section that loads the plugin."""
    return {"localPlugins": {PLUGIN: {"moduleName": MODULE}}}


def middleware() -> dict[str, Any]:
    """The dynamic configuration's definition of ``ENTRY_MIDDLEWARE``."""
    return {"plugin": {PLUGIN: {"maxBytes": MAX_BYTES}}}


def files() -> dict[str, bytes]:
    """``{path under Traefik's working directory: content}`` of the plugin's source."""
    folder = resources.files("berth_common") / "traefik_plugins" / "bodyread"
    return {f"{LOCAL_DIR}/src/{MODULE}/{name}": (folder / name).read_bytes() for name in _FILES}


def write(workdir: Path) -> None:
    """The plugin's source under ``workdir`` (Traefik's working directory), as ``files`` has it."""
    for relative, content in files().items():
        path = workdir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_bytes() != content:
            path.write_bytes(content)
