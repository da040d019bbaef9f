"""Templates: every template of the catalogue parsed, rendered (secrets from the CSPRNG, hosts generated)
and planned as a deployment; every Coolify and Dokploy fixture of the tests imported and rendered.

``imported_ok`` counts those that went through without an error, of ``total``; ``seconds`` is the wall
time of the whole pass. Pure work in this process (no database, no bus), a few hundred milliseconds.
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Any

from berth_api.adapters import template_files
from berth_api.domain.templates.coolify import import_coolify
from berth_api.domain.templates.dokploy import import_dokploy
from berth_api.domain.templates.format import parse_text
from berth_api.domain.templates.render import SystemSource, render
from berth_api.usecases.templates import plan_deploy

NAME = "templates"
GOALS = {"imported_ok_ratio": (">=", 1.0)}
FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "api" / "fixtures" / "templates"


def _filled(template: Any) -> dict[str, str]:
    return {v.name: "given" for v in template.variables if v.kind == "input" and v.options.get("required")}


def _render(template: Any) -> None:
    render(template, SystemSource(), app="bench", overrides=_filled(template), generate_host=lambda v: "h.bench.test")


def run() -> dict[str, Any]:
    ok, failures = 0, []
    start = time.perf_counter()
    catalogue = template_files.catalogue()
    for template in catalogue:
        try:
            again = parse_text(template.to_yaml())
            _render(again)
            plan_deploy(
                again, app="bench", environment="production", base_domain="bench.test", overrides=_filled(again)
            )
            ok += 1
        except Exception:
            failures.append(f"catalogue/{template.slug}: {traceback.format_exc(limit=1)}")
    coolify = sorted((FIXTURES / "coolify").glob("*.y*ml"))
    for path in coolify:
        try:
            _render(import_coolify(path.name, path.read_text()).template)
            ok += 1
        except Exception:
            failures.append(f"coolify/{path.name}: {traceback.format_exc(limit=1)}")
    dokploy = sorted(p for p in (FIXTURES / "dokploy").iterdir() if p.is_dir())
    for folder in dokploy:
        try:
            files = {p.name: p.read_text() for p in folder.iterdir() if p.is_file()}
            _render(import_dokploy(files, folder.name).template)
            ok += 1
        except Exception:
            failures.append(f"dokploy/{folder.name}: {traceback.format_exc(limit=1)}")
    seconds = time.perf_counter() - start
    total = len(catalogue) + len(coolify) + len(dokploy)
    return {
        "templates": len(catalogue),
        "coolify_files": len(coolify),
        "dokploy_files": len(dokploy),
        "total": total,
        "imported_ok": ok,
        "imported_ok_ratio": round(ok / total, 3) if total else 0.0,
        "failures": failures,
        "seconds": round(seconds, 3),
    }
