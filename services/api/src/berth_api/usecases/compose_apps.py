"""Compose applications: the compose file normalised by the real parser and translated into the
application's services (``domain.compose``), stored with the application and shown on it.

The translation fills the configuration every other part of the api reads (``services``, ``source``,
``restart_policy``, ``stop_timeout_s``) and keeps the whole translation (``compose_translated``: each
service's image or build, entrypoint, environment, depends_on, start order, notes) for the scheduler and
for the user to see. Interpolation gets the application's non-secret runtime variables in the parser's
environment; a ``${VAR}`` naming a secret variable is refused (the translation is stored and shown).

Not yet: a compose file at a path of the git repository is read by the builder (it has the checkout; the
api does not clone), so ``compose.path`` is validated and stored with no services and no translation
until the builder reads and the api translates it (a later slice); and the scheduler runs one image per
deployment, so a compose application is refused at deployment time (409) until it runs each service's
own image in the start order (``COMPOSE_NOT_DEPLOYABLE``).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from berth_api.adapters import compose_parser
from berth_api.domain.compose import ComposeRefusal, HostMap, Policy, precheck, translate
from berth_api.domain.problems import ProblemError, invalid_field
from berth_api.usecases import Deps

CORE = {
    "web": (
        "kind",
        "name",
        "port",
        "replicas",
        "health_path",
        "command",
        "domains",
        "limits",
        "volumes",
        "binds",
        "strategy",
    ),
    "worker": ("kind", "name", "replicas", "command", "health_command", "limits", "volumes", "binds", "strategy"),
}
COMPOSE_NOT_DEPLOYABLE = "compose-not-deployable"


def _loc(spot: str) -> str:
    return f"/body/{spot}" if spot.startswith("hosts/") else f"/body/compose/{spot}"


def refuse_deployment(config: dict[str, Any]) -> None:
    """A compose application is not deployed yet: the scheduler runs one image per deployment (409)."""
    if config.get("compose"):
        raise ProblemError(
            409,
            "A compose application is translated and stored, but not deployed yet: the scheduler runs one "
            "image per deployment, and a compose application's services each run their own image in the "
            "start order of their depends_on (see compose.translated).",
            slug=COMPOSE_NOT_DEPLOYABLE,
            title="Compose application not deployable yet",
        )


DOMAIN_LOC = re.compile(r"^/body/services/(\d+)/domains/(\d+)$")


@contextmanager
def hosts_located(config: dict[str, Any]) -> Iterator[None]:
    """A refused host of a compose application named where the request gave it (``/body/hosts/<k>/host``),
    not at the services' domains it was translated into."""
    try:
        yield
    except ProblemError as exc:
        for err in exc.errors or [] if config.get("compose") else []:
            found = DOMAIN_LOC.match(err.get("loc", ""))
            if found is None:
                continue
            host = config["services"][int(found.group(1))]["domains"][int(found.group(2))]
            given = [h.get("host") for h in config.get("compose_hosts") or []]
            if host in given:
                old, err["loc"] = err["loc"], f"/body/hosts/{given.index(host)}/host"
                exc.detail = (exc.detail or "").replace(old, err["loc"]) or None
        raise


def untranslated(config: dict[str, Any]) -> bool:
    """A compose file of the git repository: stored, translated once the builder reads it (not yet)."""
    return bool(config.get("compose")) and config.get("compose_translated") is None


def _core(service: dict[str, Any]) -> dict[str, Any]:
    """The fields of an application's ``services[]`` entry, as a request of services stores them."""
    defaults: dict[str, Any] = {"command": None, "limits": None}
    extra: dict[str, Any] = {"domains": []} if service["kind"] == "web" else {"health_command": None}
    defaults.update(extra)
    return {k: service.get(k, defaults.get(k)) for k in CORE[service["kind"]] if k in service or k in defaults}


async def translated(
    deps: Deps, config: dict[str, Any], variables: Iterable[tuple[str, str | None, bool]]
) -> dict[str, Any]:
    """``config`` with its compose file translated (raises a 422 naming the spot). ``variables``: the
    application's runtime variables as (name, value, secret); only non-secret values are interpolated."""
    compose = config["compose"]
    if compose.get("path") is not None:
        if config.get("source", {}).get("kind") != "git":
            raise invalid_field("/body/source", "a compose file at a path is read from the git repository: give one")
        return {**config, "services": [], "compose_translated": None}
    given = list(variables)
    plain = {name: value for name, value, secret in given if not secret and value is not None}
    secrets = [name for name, _, secret in given if secret]
    hosts = [HostMap(h["service"], h["port"], h.get("host")) for h in config.get("compose_hosts") or []]
    policy = Policy(
        bind_allow=tuple(deps.settings.bind_mount_allow),
        allowed=frozenset(deps.settings.compose_allow),
        has_repository=config.get("source", {}).get("kind") == "git",
    )
    text = compose["inline"]
    try:
        order = precheck(text)
        found = await compose_parser.normalise(
            text, plain, timeout_s=deps.settings.compose_timeout_s, max_bytes=deps.settings.compose_max_bytes
        )
        result = translate(
            found.model, order, hosts=hosts, policy=policy, variables=found.variables, secret_names=secrets
        )
    except ComposeRefusal as exc:
        raise invalid_field(_loc(exc.spot), exc.why) from None
    except compose_parser.ComposeParseError as exc:
        raise invalid_field("/body/compose/inline", f"the compose parser refused the file: {exc}") from None
    source = config.get("source")
    for svc in result["services"]:
        if "build" in svc and source is not None:  # the context under the source's subdirectory
            inner = posixpath.join(source.get("subdirectory") or "", svc["build"]["subdirectory"])
            svc["build"]["subdirectory"] = inner.rstrip("/")
    services = [_core(s) for s in result["services"]]
    if source is None or source.get("kind") != "git":
        first = next((s for s in result["services"] if s["kind"] == "web"), result["services"][0])
        source = {"kind": "image", "image": first["image"]}
    return {
        **config,
        "source": source,
        "services": services,
        "restart_policy": result["restart_policy"],
        "stop_timeout_s": result.get("stop_timeout_s", config.get("stop_timeout_s", 10)),
        "compose_translated": result,
    }
