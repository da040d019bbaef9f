"""Compose applications: the compose file normalised by the real parser and translated into the
application's services (``domain.compose``), stored with the application and shown on it.

The translation fills the configuration every other part of the api reads (``services``, ``source``,
``restart_policy``, ``stop_timeout_s``) and keeps the whole translation (``compose_translated``: each
service's image or build, entrypoint, environment, depends_on, start order, notes) for the scheduler and
for the user to see. The parser starts the services of the application's active compose profiles
(``compose.profiles`` and its variable ``COMPOSE_PROFILES``, else the one its environment or groups give:
``domain.compose.profiles``, :func:`inherited_profiles`); the others are
named in the notes. Interpolation gets the application's non-secret runtime variables in the parser's
environment; a ``${VAR}`` naming a secret variable is carried only inside a service's environment values,
as parts that name it (``domain.compose.secret_refs``): the translation is stored and shown, the value is
rendered into the deployment's snapshot as a secret variable.

A compose file at a path of the git repository (``compose.path``) is read by the builder, which clones
(``compose_source``), at the application's creation and update and again at each deployment (the file
may have changed at the ref), then translated by the same code as an inline one; a build context in it is
relative to the file's directory, and the translation records the path and the commit read (``file``).

A deployment's snapshot of a compose application is made by ``compose_snapshot.compose_spec``. A
compose.path file the builder could not read yet is refused (409).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import posixpath
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from secrets import token_bytes
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters import applications as apps_repo
from berth_api.adapters import compose_parser
from berth_api.domain import layers as layer_rules
from berth_api.domain import mounts
from berth_api.domain.compose import (
    ComposeRefusal,
    HostMap,
    Policy,
    inherited,
    precheck,
    profiles,
    published_ports,
    secret_refs,
    translate,
)
from berth_api.domain.compose.translate import berth_name
from berth_api.domain.placements import compose_placed
from berth_api.domain.problems import ProblemError, invalid_field
from berth_api.usecases import Deps, compose_files, compose_source, git_auth
from berth_api.usecases import layers as var_layers
from berth_api.usecases.compose_snapshot import not_deployable
from berth_common.catalogue.git_auth import GitAuth
from berth_common.logging import get_logger

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
        "buffer_requests",
        "path_prefix",
        "port_hosts",
        "shared_hosts",
    ),
    "worker": ("kind", "name", "replicas", "command", "health_command", "limits", "volumes", "binds", "strategy"),
}
log = get_logger(__name__)


def _loc(spot: str) -> str:
    return f"/body/{spot}" if spot.startswith("hosts/") else f"/body/compose/{spot}"


def refuse_untranslated(config: dict[str, Any]) -> None:
    """A compose file not translated yet (at a path of the git repository) cannot be deployed (409)."""
    if untranslated(config):
        raise not_deployable(
            "The compose file at a path of the git repository is not translated yet: it is read when the "
            "builder reads the repository."
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
            service = config["services"][int(found.group(1))]
            host = service["domains"][int(found.group(2))]
            given = [h.get("host") for h in config.get("compose_hosts") or []]
            named = [  # the service's own entry first: one host may be several services' (by path)
                k
                for k, h in enumerate(config.get("compose_hosts") or [])
                if h.get("host") == host and berth_name(h["service"]) == service["name"]
            ]
            if host in given:
                k = named[0] if named else given.index(host)
                old, err["loc"] = err["loc"], f"/body/hosts/{k}/host"
                exc.detail = (exc.detail or "").replace(old, err["loc"]) or None
        raise


def untranslated(config: dict[str, Any]) -> bool:
    """A compose file of the git repository stored before the builder could read it (it was not running):
    no services yet; it is read and translated at the application's next update or deployment."""
    return bool(config.get("compose")) and config.get("compose_translated") is None


NONCE_KEY = token_bytes(32)  # this process's: the nonces stay unguessable outside it


def placeholder_nonce(text: str, plain: Mapping[str, str], secret_names: Iterable[str], active: Sequence[str]) -> str:
    """The nonce of the secret placeholders (``secret_refs``) for this parse: an HMAC under this process's
    key of everything given to the parser, 16 hex digits. Unguessable as a random one (it cannot be known
    before the input it is made from, so an input cannot hold its own), and the same for the same input,
    so a file translated again unchanged finds the parser's kept outcome (``compose_parser.ParseCache``)."""
    given = json.dumps([text, sorted(plain.items()), sorted(secret_names), list(active)])
    return hmac.new(NONCE_KEY, given.encode(), hashlib.sha256).hexdigest()[:16]


async def refreshed(deps: Deps, s: AsyncSession, app: dict[str, Any]) -> dict[str, Any]:
    """The application row with its ``compose.path`` file read again at its ref and translated (the file may
    have changed since it was stored), an inline file translated again when the profiles active now differ
    from those it was read with (``COMPOSE_PROFILES`` of an environment or group changed since); the new
    configuration is stored when it differs. Another application
    is returned as it is. A builder that cannot be asked is a 503 for an application whose file was read
    before (a deployment needs the file as it is now); one never read stays so (it has no services yet)."""
    config = app["config"]
    if not config.get("compose"):
        return app
    stored = (await apps_repo.variables_of(s, [app["id"]]))[app["id"]]
    given = [(v.name, v.value, v.secret) for v in stored if v.kind == "runtime"]
    below = await inherited_profiles(deps, s, app)
    if config["compose"].get("path") is None and not _profiles_changed(config, given, below):
        return app  # an inline file read with the profiles active now
    auth = await git_auth.auth_for(deps, s, app)
    found = await translated(deps, config, given, app["team_id"], auth, inherited_profiles=below)
    if untranslated(found):
        return app
    refused = mounts.refusal(found["services"], deps.settings.bind_roots(app["team_id"]))
    if refused is not None:
        raise invalid_field(*refused)
    if found != config:
        await apps_repo.update_application(s, app["id"], found)
    return {**app, "config": found}


async def inherited_profiles(deps: Deps, s: AsyncSession, app: dict[str, Any]) -> str | None:
    """The value of ``COMPOSE_PROFILES`` an application (a row: its id and environment) inherits from its
    groups and its environment, merged as its containers' variables are (``domain.layers``: the environment
    over its groups); None: none, or a secret one (a secret is never interpolated)."""
    stack = await var_layers.inherited(deps, s, app, reveal=False)
    found = next((v for v in layer_rules.merge(stack, "runtime") if v.name == profiles.VARIABLE), None)
    return None if found is None or found.secret else found.value


def profiles_value(given: Iterable[tuple[str, str | None, bool]], inherited_value: str | None) -> str | None:
    """The ``COMPOSE_PROFILES`` a translation reads: the application's own (a secret one: none), else the
    inherited one; the application's hides the inherited, as in its containers' variables."""
    own = next(((value, secret) for name, value, secret in given if name == profiles.VARIABLE), None)
    if own is None:
        return inherited_value
    return None if own[1] else own[0]


def _profiles_changed(config: dict[str, Any], given: list[tuple[str, str | None, bool]], below: str | None) -> bool:
    """Whether the profiles active now differ from those the stored translation was read with."""
    try:
        active = profiles.active(config["compose"].get("profiles") or [], profiles_value(given, below))
    except ValueError:
        return True  # the translation names the bad value
    return list(active) != list((config.get("compose_translated") or {}).get("profiles") or [])


def _core(service: dict[str, Any]) -> dict[str, Any]:
    """The fields of an application's ``services[]`` entry, as a request of services stores them."""
    defaults: dict[str, Any] = {"command": None, "limits": None}
    extra: dict[str, Any] = {"domains": []} if service["kind"] == "web" else {"health_command": None}
    defaults.update(extra)
    return {k: service.get(k, defaults.get(k)) for k in CORE[service["kind"]] if k in service or k in defaults}


async def translated(
    deps: Deps,
    config: dict[str, Any],
    variables: Iterable[tuple[str, str | None, bool]],
    team_id: str | None,
    auth: GitAuth | None = None,
    *,
    inherited_profiles: str | None = None,
) -> dict[str, Any]:
    """``config`` with its compose file translated (raises a 422 naming the spot). ``variables``: the
    application's runtime variables as (name, value, secret); only non-secret values are interpolated.
    ``team_id``: the owner, whose own allowances (dangerous keys, bind-mount paths) apply; ``auth``: the
    repository's credentials, for a file at ``compose.path``; ``inherited_profiles``: the value of
    ``COMPOSE_PROFILES`` the application inherits (:func:`inherited_profiles`), which its own hides."""
    compose = config["compose"]
    source = config.get("source")
    if compose.get("path") is not None:
        if (source or {}).get("kind") != "git":
            raise invalid_field("/body/source", "a compose file at a path is read from the git repository: give one")
        try:
            read = await compose_source.read(deps, config, auth, team_id)
        except compose_source.BuilderAway as exc:
            if (config.get("compose_translated") or {}).get("file"):  # read before: never dropped for this
                raise compose_source.unavailable(str(exc)) from None
            log.warning("compose.path stored untranslated: the builder cannot be asked", reason=str(exc))
            return {**config, "services": [], "compose_translated": None}
        text, text_loc, read_from = read.text, "/body/compose/path", {"path": read.path, "commit": read.commit}
        base = posixpath.dirname(read.path)  # a build context is relative to the compose file
    else:
        text, text_loc, read_from = compose["inline"], "/body/compose/inline", None
        base = (source or {}).get("subdirectory") or ""  # the context under the source's subdirectory
    given = list(variables)
    plain = {name: value for name, value, secret in given if not secret and value is not None}
    try:  # the services compose starts: the application's profiles and its variable's (or the inherited one)
        active = profiles.active(compose.get("profiles") or [], profiles_value(given, inherited_profiles))
    except ValueError as exc:
        at = next((i for i, (name, _, _) in enumerate(given) if name == profiles.VARIABLE), None)
        loc, whose = (
            ("/body/env", " inherited from the environment or a group") if at is None else (f"/body/env/{at}/value", "")
        )
        raise invalid_field(loc, f"{profiles.VARIABLE}{whose}: {exc}") from None
    names = [name for name, _, secret in given if secret]
    nonce = placeholder_nonce(text, plain, names, active)
    secrets = secret_refs.placeholders(names, nonce)
    hosts = [
        HostMap(
            h["service"], h["port"], h.get("host"), h.get("path"), (h.get("buffer_requests") or {}).get("max_body_mb")
        )
        for h in config.get("compose_hosts") or []
    ]
    policy = Policy(
        bind_allow=tuple(deps.settings.bind_roots(team_id)),
        allowed=deps.settings.compose_allowed(team_id),
        has_repository=config.get("source", {}).get("kind") == "git",
        files=compose_files.paths(config),
        published=deps.settings.published_ranges(team_id),
        runtimes=deps.settings.compose_runtimes_for(team_id),
    )
    try:
        order = precheck(text)
        found = await compose_parser.normalise(
            text,
            {**plain, **secrets},
            profiles=active,
            timeout_s=deps.settings.compose_timeout_s,
            max_bytes=deps.settings.compose_max_bytes,
        )
        declared = profiles.declared(text)
        result = translate(
            found.model, order, hosts=hosts, policy=policy, secrets_nonce=nonce, declared_profiles=declared
        )
    except ComposeRefusal as exc:
        raise invalid_field(text_loc if exc.spot == "inline" else _loc(exc.spot), exc.why) from None
    except compose_parser.ComposeParseError as exc:
        refused = profiles.dependency_refusal(str(exc), text)  # a need of a service compose does not start
        if refused is not None:
            raise invalid_field(_loc(refused.spot), refused.why) from None
        raise invalid_field(text_loc, f"the compose parser refused the file: {exc}") from None
    inherited.with_unset_args(result["services"], inherited.unset_build_args(text))
    if config.get("preview_hosts") is not None:  # a pull request's preview: the ports stay the application's
        published_ports.unpublished_for_preview(result)
    for svc in result["services"]:
        if "build" in svc and source is not None:
            inner = posixpath.join(base, svc["build"]["subdirectory"])
            svc["build"]["subdirectory"] = inner.rstrip("/")
    if read_from is not None:
        result["file"] = read_from  # the file read, and the commit it was read at
    if active:
        result["profiles"] = list(active)  # the profiles the file was read with
    services = [_core(s) for s in result["services"]]
    if source is None or source.get("kind") != "git":
        first = next((s for s in result["services"] if s["kind"] == "web"), result["services"][0])
        source = {"kind": "image", "image": first["image"]}
    out = {
        **config,
        "source": source,
        "services": services,
        "restart_policy": result["restart_policy"],
        "stop_timeout_s": result.get("stop_timeout_s", config.get("stop_timeout_s", 10)),
        "compose_translated": result,
    }
    return compose_placed(out)  # each service on the servers the application's placement names
