"""The files of a compose application (``compose.files``): what the compose file mounts as
``./files/<path>``. Their contents may hold rendered template values, generated secrets among them, so they
are treated as secret variables are: stored sealed in the application's configuration (bound to the
application and the path), shown only as path, mode, size and sha256, opened only into a deployment's
snapshot, where they travel sealed (``berth_common.catalogue.files``).

A request gives each file with its content, or without it to keep the stored file of that path (how a
file is kept when the compose file changes, as a secret variable is kept).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from berth_api.domain.applications import file_aad
from berth_api.domain.problems import invalid_field
from berth_api.usecases import Deps

LOC = "/body/compose/files"
DEFAULT_MODE = 0o644


def stored_files(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The stored files of a configuration: ``{path, mode, size, sha256, sealed}`` each."""
    return list((config.get("compose") or {}).get("files") or [])


def paths(config: dict[str, Any]) -> frozenset[str]:
    return frozenset(f["path"] for f in stored_files(config))


def needs_sealing(given: Sequence[dict[str, Any]] | None) -> bool:
    return any(f.get("content") is not None for f in given or [])


def sealed(
    deps: Deps, app_id: str, given: Sequence[dict[str, Any]], stored: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The files to store: each given content sealed; a file given without content keeps the stored one of
    its path (a 422 naming it when there is none)."""
    kept = {f["path"]: f for f in stored}
    out = []
    for i, f in enumerate(given):
        path, content, mode = f["path"], f.get("content"), f.get("mode")
        if content is None:
            if path not in kept:
                raise invalid_field(f"{LOC}/{i}/content", "a content is required (only a stored file may omit it)")
            out.append({**kept[path], **({"mode": mode} if mode is not None else {})})
            continue
        data = content.encode()
        out.append(
            {
                "path": path,
                "mode": DEFAULT_MODE if mode is None else mode,
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "sealed": deps.box.seal_text(content, file_aad(app_id, path)),
            }
        )
    return out


def opened(deps: Deps, app_id: str, config: dict[str, Any]) -> list[dict[str, Any]]:
    """The files of a deployment's snapshot: ``{path, content, mode}``, each content opened."""
    return [
        {"path": f["path"], "content": deps.box.open_text(f["sealed"], file_aad(app_id, f["path"])), "mode": f["mode"]}
        for f in stored_files(config)
    ]


def shown(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The files as an answer shows them: never their content."""
    return [{k: f[k] for k in ("path", "mode", "size", "sha256")} for f in stored_files(config)]
