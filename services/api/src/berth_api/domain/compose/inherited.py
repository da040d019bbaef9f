"""Build args a compose file gives without a value (``args: [NPM_TOKEN]``, ``args: {NPM_TOKEN: }``): compose
takes them from the environment it runs in, which for Berth is the application's build args. The parser
drops such an arg (the environment it is given holds no build args: they may be secret), so they are read
from the file itself and put back into the translation with the value None (the application's build arg
of that name, resolved when a deployment's snapshot is made). Pure."""

from __future__ import annotations

from typing import Any

from berth_api.domain.compose.precheck import load
from berth_api.domain.compose.translate import berth_name


def unset_build_args(text: str) -> dict[str, list[str]]:
    """The arg names each service's build gives without a value, by the service's Berth name (the file
    passed ``precheck`` already: it is valid YAML of a bounded size)."""
    data = load(text)
    services = data.get("services") if isinstance(data, dict) else None
    out: dict[str, list[str]] = {}
    for name, svc in (services or {}).items() if isinstance(services, dict) else []:
        build = svc.get("build") if isinstance(svc, dict) else None
        args: Any = build.get("args") if isinstance(build, dict) else None
        if isinstance(args, dict):
            names = [str(k) for k, v in args.items() if v is None]
        elif isinstance(args, list):
            names = [str(a) for a in args if isinstance(a, str) and "=" not in a]
        else:
            names = []
        if names:
            out[berth_name(str(name))] = names
    return out


def with_unset_args(services: list[dict[str, Any]], unset: dict[str, list[str]]) -> None:
    """Add each service build's value-less args (value None) that the translation does not have."""
    for svc in services:
        build = svc.get("build")
        if build is None:
            continue
        have = {a["name"] for a in build.get("build_args") or []}
        extra = [{"name": n, "value": None} for n in unset.get(svc["name"], []) if n not in have]
        if extra:
            build["build_args"] = sorted([*build.get("build_args", []), *extra], key=lambda a: a["name"])
