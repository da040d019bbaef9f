"""Preview environments per pull request: pure, no I/O.

A verified pull/merge request delivery reads into one :class:`PullRequest` (``read_pull_request``): its
number, whether it asks for a preview (opened, reopened, new commits: ``deploy``) or its end (closed,
merged, declined: ``close``), the head commit and branch, and whether it comes from a fork (another
repository than the one the webhook belongs to). The preview application's name, its hosts (the pattern,
default ``pr-{number}-{app}.{base}``), its configuration (the application's, building the head branch,
without custom domains; a compose service's other routed ports on hosts of their own from the pattern)
and its variables (the application's, the preview-only values winning) are made here, as are the forge
comment's text and the request that writes or updates it in place (the hosts of other routed ports:
``preview_ports``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

from berth_api.domain.commit_status import StatusRequest
from berth_api.domain.compose.translate import berth_name
from berth_api.domain.forge_payloads import PayloadError
from berth_api.domain.forges import Delivery, Forge
from berth_api.domain.names import hostname

Action = Literal["deploy", "close"]
DEFAULT_PATTERN = "pr-{number}-{app}.{base}"
PLACEHOLDERS = ("{number}", "{app}", "{service}", "{env}", "{base}")
MAX_LABEL = 63
MARKER = "<!-- berth-preview -->"

_GITHUB_LIKE = {"opened": "deploy", "reopened": "deploy", "synchronize": "deploy", "synchronized": "deploy"}
_GITLAB = {"open": "deploy", "reopen": "deploy", "update": "deploy", "close": "close", "merge": "close"}
_BITBUCKET = {
    "pullrequest:created": "deploy",
    "pullrequest:updated": "deploy",
    "pullrequest:fulfilled": "close",
    "pullrequest:rejected": "close",
}
_BITBUCKET_SERVER = {
    "pr:opened": "deploy",
    "pr:from_ref_updated": "deploy",
    "pr:merged": "close",
    "pr:declined": "close",
    "pr:deleted": "close",
}


@dataclass(frozen=True)
class PullRequest:
    """One pull/merge request event: ``action`` None: an event that changes nothing of a preview (a label,
    a review, an edited title)."""

    number: int
    action: Action | None
    commit: str
    branch: str
    title: str
    fork: bool
    head_repository: str | None  # the fork's clone URL, when the body gives it


def is_pull_request(delivery: Delivery) -> bool:
    forge, event = delivery.forge, delivery.event
    if forge in ("github", "gitea", "forgejo"):
        return event == "pull_request"
    if forge == "gitlab":
        return event == "Merge Request Hook"
    if forge == "bitbucket":
        return event in _BITBUCKET
    if forge == "bitbucket-server":
        return event in _BITBUCKET_SERVER
    return False


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise PayloadError(f"a pull request event names {what}")
    return value


def _number(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise PayloadError("a pull request event names its number")
    return value


def _github_like(doc: dict[str, Any]) -> PullRequest:
    pr = _obj(doc.get("pull_request"))
    head, base = _obj(pr.get("head")), _obj(pr.get("base"))
    head_repo, base_repo = _obj(head.get("repo")), _obj(base.get("repo"))
    action_name = doc.get("action")
    action: Action | None = "close" if action_name == "closed" else _GITHUB_LIKE.get(str(action_name))  # type: ignore[assignment]
    fork = bool(head_repo) and head_repo.get("full_name") != base_repo.get("full_name")
    return PullRequest(
        number=_number(doc.get("number", pr.get("number"))),
        action=action,
        commit=_str(head.get("sha"), "'pull_request.head.sha'"),
        branch=_str(head.get("ref"), "'pull_request.head.ref'"),
        title=str(pr.get("title") or "")[:300],
        fork=fork,
        head_repository=head_repo.get("clone_url") if fork and isinstance(head_repo.get("clone_url"), str) else None,
    )


def _gitlab(doc: dict[str, Any]) -> PullRequest:
    attrs = _obj(doc.get("object_attributes"))
    fork = attrs.get("source_project_id") != attrs.get("target_project_id")
    source = _obj(attrs.get("source"))
    return PullRequest(
        number=_number(attrs.get("iid")),
        action=_GITLAB.get(str(attrs.get("action"))),  # type: ignore[arg-type]
        commit=_str(_obj(attrs.get("last_commit")).get("id"), "'object_attributes.last_commit.id'"),
        branch=_str(attrs.get("source_branch"), "'object_attributes.source_branch'"),
        title=str(attrs.get("title") or "")[:300],
        fork=fork,
        head_repository=source.get("git_http_url") if fork and isinstance(source.get("git_http_url"), str) else None,
    )


def _bitbucket(doc: dict[str, Any], event: str) -> PullRequest:
    pr = _obj(doc.get("pullrequest"))
    src, dst = _obj(pr.get("source")), _obj(pr.get("destination"))
    src_repo, dst_repo = _obj(src.get("repository")), _obj(dst.get("repository"))
    fork = bool(src_repo) and src_repo.get("full_name") != dst_repo.get("full_name")
    return PullRequest(
        number=_number(pr.get("id")),
        action=_BITBUCKET[event],  # type: ignore[arg-type]
        commit=_str(_obj(src.get("commit")).get("hash"), "'pullrequest.source.commit.hash'"),
        branch=_str(_obj(src.get("branch")).get("name"), "'pullrequest.source.branch.name'"),
        title=str(pr.get("title") or "")[:300],
        fork=fork,
        head_repository=_bitbucket_clone(src_repo) if fork else None,
    )


def _bitbucket_clone(repo: dict[str, Any]) -> str | None:
    """A Bitbucket Cloud fork's HTTPS clone URL: its web page's address with ``.git`` (the webhook's
    repository names ``links.html`` and ``full_name``, not the clone links the REST API gives)."""
    page = _obj(_obj(repo.get("links")).get("html")).get("href")
    if isinstance(page, str) and page.startswith("https://") and " " not in page:
        return page.rstrip("/") + ".git"
    name = repo.get("full_name")
    if (
        isinstance(name, str)
        and name.count("/") == 1
        and all(part and part not in (".", "..") for part in name.split("/"))
    ):
        return f"https://bitbucket.org/{quote(name, safe='/')}.git"
    return None


def _bitbucket_server(doc: dict[str, Any], event: str) -> PullRequest:
    pr = _obj(doc.get("pullRequest"))
    src, dst = _obj(pr.get("fromRef")), _obj(pr.get("toRef"))
    src_repo, dst_repo = _obj(src.get("repository")), _obj(dst.get("repository"))
    fork = bool(src_repo) and (src_repo.get("slug"), _obj(src_repo.get("project")).get("key")) != (
        dst_repo.get("slug"),
        _obj(dst_repo.get("project")).get("key"),
    )
    clones = [_obj(c) for c in _obj(src_repo.get("links")).get("clone") or [] if isinstance(c, dict)]
    http = next((c.get("href") for c in clones if c.get("name") == "http" and isinstance(c.get("href"), str)), None)
    return PullRequest(
        number=_number(pr.get("id")),
        action=_BITBUCKET_SERVER[event],  # type: ignore[arg-type]
        commit=_str(src.get("latestCommit"), "'pullRequest.fromRef.latestCommit'"),
        branch=_str(src.get("displayId"), "'pullRequest.fromRef.displayId'"),
        title=str(pr.get("title") or "")[:300],
        fork=fork,
        head_repository=http if fork else None,
    )


def read_pull_request(delivery: Delivery, doc: dict[str, Any]) -> PullRequest:
    """The pull request a verified delivery's JSON document carries (raises ``PayloadError``)."""
    if delivery.forge in ("github", "gitea", "forgejo"):
        return _github_like(doc)
    if delivery.forge == "gitlab":
        return _gitlab(doc)
    if delivery.forge == "bitbucket":
        return _bitbucket(doc, delivery.event)
    return _bitbucket_server(doc, delivery.event)


def check_pattern(pattern: str) -> str | None:
    """Why a host pattern is refused (None: accepted): it names the number, and the rest is host name text."""
    if "{number}" not in pattern:
        return "the pattern must contain {number}: each preview needs its own host"
    sample = pattern
    for i, p in enumerate(PLACEHOLDERS):
        sample = sample.replace(p, f"x{i}")
    if "{" in sample or "}" in sample:
        return "only {number}, {app}, {service}, {env} and {base} may be used"
    try:
        hostname(sample.replace("x4", "example.com") if "x4" in sample else sample)
    except ValueError as exc:
        return str(exc)
    return None


def _label(label: str) -> str:
    if len(label) <= MAX_LABEL:
        return label
    digest = hashlib.sha256(label.encode()).hexdigest()[:8]
    return f"{label[: MAX_LABEL - 9].rstrip('-')}-{digest}"


def preview_host(pattern: str, number: int, app: str, env: str, service: str, base: str, first: bool) -> str:
    """The host of one web service of preview ``number``; a further web service of the application gets its
    name in front when the pattern does not name the service."""
    text = pattern.format(number=number, app=app, service=service, env=env, base=base)
    if not first and "{service}" not in pattern:
        text = f"{service}-{text}"
    head, _, rest = text.partition(".")
    return hostname(f"{_label(head)}.{rest}" if rest else _label(head))


def preview_name(app: str, number: int) -> str:
    """The preview application's name (a slug, at most 63 characters)."""
    suffix = f"-pr-{number}"
    return app[: 63 - len(suffix)].rstrip("-") + suffix


def shared_under_path(config: dict[str, Any], generated: dict[str, str]) -> dict[str, str]:
    """Services routed under a path of a host another service of the application has (compose
    ``hosts[].path``): service -> that other service (the one whose generated host it is, else the first
    with it), or the ``preview_ports.port_key`` of the other port whose generated host it is. ``generated``:
    the application's generated hosts by service (and by port: ``preview_ports.port_generated_hosts``)."""
    webs = [svc for svc in config["services"] if svc.get("kind") == "web"]
    owner: dict[str, str] = {h.lower(): name for name, h in generated.items()}
    for svc in webs:
        for domain in svc.get("domains") or []:
            owner.setdefault(domain.lower(), svc["name"])
    out: dict[str, str] = {}
    for svc in webs:
        if (svc.get("path_prefix") or "/") == "/":
            continue
        for domain in svc.get("domains") or []:
            other = owner.get(domain.lower())
            if other is not None and other != svc["name"]:
                out[svc["name"]] = other
                break
    return out


def preview_config(
    config: dict[str, Any],
    pr: PullRequest,
    hosts: dict[str, str],
    repository: str | None,
    generated: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The application's configuration building the pull request's branch (a fork's repository when given),
    its hosts ``hosts`` (service -> host; ``preview_ports.port_key`` -> the host of another routed port) and
    no custom domain (those stay the application's). A service routed under a path of another service's host
    (``shared_under_path``, ``generated``: the application's generated hosts) keeps that path under the
    other service's preview host: the preview has the same origin layout as the application. A compose
    service's other routed ports are routed too (``_preview_entries``)."""
    source = config.get("source")
    if source and source.get("kind") == "git":
        source = {**source, "branch": pr.branch, "commit": None}
        if repository:
            source["repository"] = repository
    shared = shared_under_path(config, generated or {})
    services = [
        {**svc, "domains": [hosts[shared[svc["name"]]]] if svc["name"] in shared else []}
        if svc.get("kind") == "web"
        else svc
        for svc in config["services"]
    ]
    out = {**config, "source": source, "services": services, "preview_hosts": hosts}
    if config.get("compose_hosts"):
        out["compose_hosts"] = _preview_entries(config["compose_hosts"], shared, hosts, generated or {})
    return out


def _preview_entries(
    entries: list[dict[str, Any]], shared: dict[str, str], hosts: dict[str, str], generated: dict[str, str]
) -> list[dict[str, Any]]:
    """The compose ``hosts`` entries of the preview: each service's first port on its preview host (or under
    its path of another service's preview host, ``_shares``); each other routed port on the preview host of
    that port (``preview_ports.port_key``, the entry's host dropped: custom hosts stay the application's)
    under its path, or, when the application routes it under a path of a host a service's first port has
    (its own or another's), under that path of that service's preview host."""
    first: dict[str, int] = {}
    for h in entries:
        first.setdefault(h["service"], h["port"])
    owner = {host.lower(): name for name, host in generated.items()}
    for h in entries:
        if h.get("host") and h["port"] == first[h["service"]]:
            owner.setdefault(h["host"].lower(), berth_name(h["service"]))
    out: list[dict[str, Any]] = []
    for h in entries:
        if h["port"] == first[h["service"]]:
            entry = {**h, "host": hosts[shared[berth_name(h["service"])]] if _shares(h, shared) else None}
        else:
            path = h.get("path") or "/"
            under = owner.get((h.get("host") or "").lower()) if path != "/" else None
            entry = {**h, "host": hosts[under] if under in hosts else None}
        if entry not in out:
            out.append(entry)
    return out


def _shares(entry: dict[str, Any], shared: dict[str, str]) -> bool:
    """Whether a compose ``hosts`` entry is a path under another service's host."""
    return bool(entry.get("host")) and (entry.get("path") or "/") != "/" and berth_name(entry["service"]) in shared


def layered(base: Sequence[tuple[str, str | None, bool]], preview: list[dict[str, Any]]) -> list[tuple[str, str, bool]]:
    """The preview's runtime variables: the application's (name, value, secret), the preview-only values
    winning; a preview-only ``value`` of None removes the application's variable."""
    merged: dict[str, tuple[str, str, bool]] = {n: (n, v or "", s) for n, v, s in base if v is not None}
    for item in preview:
        if item.get("value") is None:
            merged.pop(item["name"], None)
        else:
            merged[item["name"]] = (item["name"], item["value"], bool(item.get("secret")))
    return list(merged.values())


def dump_variables(items: list[dict[str, Any]]) -> str:
    return json.dumps(items, sort_keys=True)


def comment_body(url: str | None, status: str, commit: str, detail: str | None = None) -> str:
    """The one comment a preview keeps on its pull request."""
    lines = [MARKER, "**Berth preview**", "", f"- Status: {status}", f"- Commit: `{commit[:12]}`"]
    if url:
        lines.append(f"- URL: {url}")
    if detail:
        lines.append(f"- {detail[:300]}")
    return "\n".join(lines)


def comment_request(
    forge: Forge, api_url: str, repository: str, token: str, number: int, comment_id: str | None, body: str
) -> tuple[str, StatusRequest]:
    """(method, request) that writes the preview's comment on pull request ``number``: a new one
    (``comment_id`` None) or the same one updated in place."""
    api = api_url.rstrip("/")
    json_headers = {"Accept": "application/json", "Content-Type": "application/json"}
    if forge in ("github", "gitea", "forgejo", "gogs"):
        auth = f"Bearer {token}" if forge == "github" else f"token {token}"
        headers = {**json_headers, "Authorization": auth}
        if comment_id is None:
            return "POST", StatusRequest(f"{api}/repos/{repository}/issues/{number}/comments", headers, {"body": body})
        return "PATCH", StatusRequest(f"{api}/repos/{repository}/issues/comments/{comment_id}", headers, {"body": body})
    if forge == "gitlab":
        headers = {**json_headers, "PRIVATE-TOKEN": token}
        notes = f"{api}/projects/{quote(repository, safe='')}/merge_requests/{number}/notes"
        if comment_id is None:
            return "POST", StatusRequest(notes, headers, {"body": body})
        return "PUT", StatusRequest(f"{notes}/{comment_id}", headers, {"body": body})
    headers = {**json_headers, "Authorization": f"Bearer {token}"}
    if forge == "bitbucket":
        comments = f"{api}/repositories/{repository}/pullrequests/{number}/comments"
        if comment_id is None:
            return "POST", StatusRequest(comments, headers, {"content": {"raw": body}})
        return "PUT", StatusRequest(f"{comments}/{comment_id}", headers, {"content": {"raw": body}})
    project, _, slug = repository.partition("/")
    comments = f"{api}/rest/api/1.0/projects/{project}/repos/{slug}/pull-requests/{number}/comments"
    if comment_id is None:
        return "POST", StatusRequest(comments, headers, {"text": body})
    cid, _, version = comment_id.partition(":")
    return "PUT", StatusRequest(f"{comments}/{cid}", headers, {"text": body, "version": int(version or 0)})
