"""How many of Dokploy's blueprints become a Berth compose application: each blueprint folder of a
``blueprints`` folder (of Dokploy/templates; ``template.toml``, ``docker-compose.yml``, ``meta.json``)
imported as ``POST /v1/templates/import`` imports it, its template document read back as ``POST
/v1/templates/deploy`` reads it, then planned, parsed, translated under the default policy and its hosts
checked as the api claims them (``coolify_translate.template_refusal``). No database, no bus: what refuses
a blueprint is the translation's own refusal, listed by blueprint.

``python -m benchmarks.dokploy_translate <blueprints folder>`` prints the count and each refusal (not one
of the ``bench_*`` benchmarks: the folder is not part of this repository).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from benchmarks.coolify_translate import print_sweep, template_refusal
from berth_api.domain.problems import ProblemError
from berth_api.domain.templates.model import TemplateError
from berth_api.usecases.templates import import_template, parsed

FILES = ("template.toml", "docker-compose.yml", "meta.json")


async def refusal(folder: Path) -> str | None:
    """Why the blueprint in ``folder`` does not become an application (None: it does)."""
    files = {name: (folder / name).read_text() for name in FILES if (folder / name).is_file()}
    try:
        template = parsed(import_template("dokploy", files).template.to_yaml())
    except (TemplateError, ProblemError) as exc:
        return f"import: {exc}"
    return await template_refusal(template)


async def main(folder: Path) -> None:
    blueprints = sorted(p for p in folder.iterdir() if p.is_dir())
    refused = {p.name: why for p in blueprints if (why := await refusal(p)) is not None}
    print_sweep("blueprints", len(blueprints), refused)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
