"""Host names of web services: one generated per service, plus the custom ones a user adds."""

from __future__ import annotations

import hashlib
from collections.abc import Collection

from berth_api.domain.names import hostname

MAX_LABEL = 63


def generated_label(service: str, app: str, env: str) -> str:
    """``<service>-<app>-<env>``; when longer than a DNS label allows, cut and made unique with a hash."""
    label = f"{service}-{app}-{env}"
    if len(label) <= MAX_LABEL:
        return label
    digest = hashlib.sha256(label.encode()).hexdigest()[:8]
    return f"{label[: MAX_LABEL - 9].rstrip('-')}-{digest}"


def generated_host(service: str, app: str, env: str, base_domain: str) -> str:
    return hostname(f"{generated_label(service, app, env)}.{base_domain}")


def port_host(service: str, port: int, app: str, env: str, base_domain: str) -> str:
    """The generated host of another routed port of a service (MinIO's console): ``<service>-<port>-<app>-
    <env>``, claimed like the service's own (a name under the base domain: no user takes it)."""
    return generated_host(f"{service}-{port}", app, env, base_domain)


def reserved_for_generated(host: str, base_domain: str) -> bool:
    """Custom hosts may not take names under the base domain: those belong to generated hosts."""
    return host == base_domain or host.endswith("." + base_domain)


def own_namespace(host: str, app: str, env: str, base_domain: str, own: Collection[str]) -> bool:
    """Whether ``host`` is in the application's own part of the base domain: a name (at any depth) whose label
    right under the base domain ends with ``-<app>-<env>`` (a name one of its services could be generated),
    or a name under one of its own generated hosts ``own`` (whose label a hash may have cut). A template
    derives such names from its generated host (Dokploy's ``web-${domain}``, ``db.${domain}``,
    ``habitica.${domain}``). The label tells the application only by its name and environment: another
    team's application of the same name has labels ending alike, so the part is the first holder's
    (``namespace_of``: checked against the hosts other applications hold when the hosts are claimed)."""
    top = namespace_of(host, base_domain)
    if top is None:
        return False
    if host != top and top in own:
        return True
    label = top[: -len(base_domain) - 1]
    return label.endswith(f"-{app}-{env}") and len(label) <= MAX_LABEL


def namespace_of(host: str, base_domain: str) -> str | None:
    """The name one label under the base domain that ``host`` is or is under (its part of the base domain:
    ``habitica.main-app-production.<base>`` -> ``main-app-production.<base>``); None for a host outside the
    base domain, or the base domain itself."""
    if not host.endswith("." + base_domain):
        return None
    return f"{host[: -len(base_domain) - 1].rsplit('.', 1)[-1]}.{base_domain}"
