"""How many of Coolify's templates become a Berth compose application: each template of a folder
(``templates/compose`` of coollabsio/coolify) imported, planned as ``POST /v1/templates/deploy`` plans it
(required inputs filled), its compose text normalised by the real parser (compose-go) with the plan's
variables (secret ones as placeholders), translated with the plan's hosts under the default policy (no
dangerous key or host bind mount allowed), and its hosts checked as the api claims them. No database, no
bus: what refuses a template is the translation's own refusal, listed by template.

``python -m benchmarks.coolify_translate <folder>`` prints the count and each refusal (not one of the
``bench_*`` benchmarks: the folder is not part of this repository).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from secrets import token_hex

from berth_api.adapters.compose_parser import ComposeParseError, normalise
from berth_api.domain import host_claims
from berth_api.domain.compose import ComposeRefusal, HostMap, Policy, precheck, profiles, secret_refs, translate
from berth_api.domain.problems import ProblemError
from berth_api.domain.templates.coolify import import_coolify
from berth_api.domain.templates.model import Template, TemplateError
from berth_api.usecases.templates import plan_deploy

BASE, APP, ENV = "bench.test", "app", "production"


async def refusal(path: Path) -> str | None:
    """Why the template at ``path`` does not become an application (None: it does)."""
    try:
        template = import_coolify(path.name, path.read_text()).template
    except (TemplateError, ProblemError) as exc:
        return f"import or plan: {exc}"
    return await template_refusal(template)


async def template_refusal(template: Template) -> str | None:
    """Why an imported ``template`` does not become an application (None: it does): planned with its
    required inputs given, parsed, translated under the default policy, its hosts claimed."""
    try:
        given = {v.name: "given" for v in template.variables if v.kind == "input" and v.options.get("required")}
        request = plan_deploy(template, app=APP, environment=ENV, base_domain=BASE, overrides=given).request
    except (TemplateError, ProblemError) as exc:
        return f"import or plan: {exc}"
    text, env = request["compose"]["inline"], request["env"]
    nonce = token_hex(8)
    variables = {e["name"]: e["value"] for e in env if not e["secret"]}
    variables.update(secret_refs.placeholders([e["name"] for e in env if e["secret"]], nonce))
    hosts = [HostMap(h["service"], h["port"], h.get("host"), h.get("path")) for h in request["hosts"]]
    files = frozenset(f["path"] for f in request["compose"].get("files") or [])
    try:
        found = await normalise(text, variables, timeout_s=30)
        declared = profiles.declared(text)
        policy = Policy(files=files)
        result = translate(
            found.model, precheck(text), hosts=hosts, policy=policy, secrets_nonce=nonce, declared_profiles=declared
        )
        host_claims.claims(result["services"], APP, ENV, BASE)
    except ComposeRefusal as exc:
        return f"{exc.spot}: {exc.why}"
    except ComposeParseError as exc:
        refused = profiles.dependency_refusal(str(exc), text)
        return f"{refused.spot}: {refused.why}" if refused is not None else f"the parser: {exc}"
    except ProblemError as exc:
        err = (exc.errors or [{}])[0]
        return f"{err.get('loc')}: {err.get('detail', exc.detail)}"
    return None


def print_sweep(what: str, total: int, refused: dict[str, str]) -> None:
    """How many of ``total`` files translate, then each refused one with its first refusal."""
    print(f"{total - len(refused)} of {total} {what} translate")
    for name, why in refused.items():
        print(f"  {name}: {why}")


async def main(folder: Path) -> None:
    paths = sorted(folder.glob("*.y*ml"))
    print_sweep("templates", len(paths), {p.name: why for p in paths if (why := await refusal(p)) is not None})


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
