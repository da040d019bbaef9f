"""Pull/merge request deliveries as each forge sends them, and a local stand-in for each forge's comment API
that checks the path, the auth header and the body as the forge would and keeps the comments it holds (so a
test sees one comment updated in place, not several)."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

from aiohttp import web

from tests.api.forge_bodies import headers
from tests.api.forge_receivers import StatusReceiver
from tests.support.receivers import HttpReceiver

PR_EVENT = {
    "github": "pull_request",
    "gitea": "pull_request",
    "forgejo": "pull_request",
    "gitlab": "Merge Request Hook",
}
BB_EVENT = {"deploy": "pullrequest:updated", "opened": "pullrequest:created", "closed": "pullrequest:fulfilled"}
BBS_EVENT = {"deploy": "pr:from_ref_updated", "opened": "pr:opened", "closed": "pr:merged"}


def pr_body(forge: str, action: str, number: int, sha: str, branch: str = "feature", fork: bool = False) -> dict:
    """``action``: opened, synchronize (new commits) or closed, in the forge's own words."""
    head_repo = "mallory/blog" if fork else "acme/blog"
    if forge in ("github", "gitea", "forgejo"):
        words = {"opened": "opened", "synchronize": "synchronize" if forge == "github" else "synchronized"}
        words["closed"] = "closed"
        return {
            "action": words[action],
            "number": number,
            "pull_request": {
                "number": number,
                "title": "A change",
                "merged": action == "closed",
                "head": {
                    "sha": sha,
                    "ref": branch,
                    "repo": {"full_name": head_repo, "clone_url": f"https://git.example.com/{head_repo}.git"},
                },
                "base": {"sha": "1" * 40, "ref": "main", "repo": {"full_name": "acme/blog"}},
            },
            "repository": {"full_name": "acme/blog"},
        }
    if forge == "gitlab":
        words = {"opened": "open", "synchronize": "update", "closed": "merge"}
        return {
            "object_kind": "merge_request",
            "object_attributes": {
                "iid": number,
                "action": words[action],
                "title": "A change",
                "source_branch": branch,
                "source_project_id": 9 if fork else 1,
                "target_project_id": 1,
                "last_commit": {"id": sha},
                "source": {"git_http_url": f"https://git.example.com/{head_repo}.git"},
            },
        }
    if forge == "bitbucket":
        return {
            "pullrequest": {
                "id": number,
                "title": "A change",
                "source": {
                    "branch": {"name": branch},
                    "commit": {"hash": sha},
                    "repository": {
                        "full_name": head_repo,
                        "links": {"html": {"href": f"https://bitbucket.org/{head_repo}"}},
                    },
                },
                "destination": {"branch": {"name": "main"}, "repository": {"full_name": "acme/blog"}},
            }
        }
    if forge == "bitbucket-server":
        owner = "MAL" if fork else "ACME"
        return {
            "eventKey": BBS_EVENT["closed" if action == "closed" else "opened"],
            "pullRequest": {
                "id": number,
                "title": "A change",
                "fromRef": {
                    "displayId": branch,
                    "latestCommit": sha,
                    "repository": {"slug": "blog", "project": {"key": owner}},
                },
                "toRef": {"displayId": "main", "repository": {"slug": "blog", "project": {"key": "ACME"}}},
            },
        }
    raise ValueError(forge)


def signed_pr(forge: str, secret: str, action: str, number: int, sha: str, **kw: Any) -> tuple[bytes, dict]:
    raw = json.dumps(pr_body(forge, action, number, sha, **kw)).encode()
    if forge == "bitbucket":
        event = BB_EVENT["closed" if action == "closed" else ("opened" if action == "opened" else "deploy")]
    elif forge == "bitbucket-server":
        event = BBS_EVENT["closed" if action == "closed" else ("opened" if action == "opened" else "deploy")]
    else:
        event = PR_EVENT[forge]
    return raw, headers(forge, secret, raw, event=event)


COMMENT_RULES: dict[str, dict[str, Any]] = {
    "github": {
        "new": r"^/api/repos/acme/blog/issues/(\d+)/comments$",
        "edit": ("PATCH", r"^/api/repos/acme/blog/issues/comments/(\d+)$"),
        "auth": ("Authorization", "Bearer {token}"),
        "text": lambda d: d.get("body"),
    },
    "gitea": {
        "new": r"^/api/repos/acme/blog/issues/(\d+)/comments$",
        "edit": ("PATCH", r"^/api/repos/acme/blog/issues/comments/(\d+)$"),
        "auth": ("Authorization", "token {token}"),
        "text": lambda d: d.get("body"),
    },
    "gitlab": {
        "new": r"^/api/projects/acme%2Fblog/merge_requests/(\d+)/notes$",
        "edit": ("PUT", r"^/api/projects/acme%2Fblog/merge_requests/\d+/notes/(\d+)$"),
        "auth": ("PRIVATE-TOKEN", "{token}"),
        "text": lambda d: d.get("body"),
    },
    "bitbucket": {
        "new": r"^/api/repositories/acme/blog/pullrequests/(\d+)/comments$",
        "edit": ("PUT", r"^/api/repositories/acme/blog/pullrequests/\d+/comments/(\d+)$"),
        "auth": ("Authorization", "Bearer {token}"),
        "text": lambda d: (d.get("content") or {}).get("raw"),
    },
    "bitbucket-server": {
        "new": r"^/api/rest/api/1.0/projects/ACME/repos/blog/pull-requests/(\d+)/comments$",
        "edit": ("PUT", r"^/api/rest/api/1.0/projects/ACME/repos/blog/pull-requests/\d+/comments/(\d+)$"),
        "auth": ("Authorization", "Bearer {token}"),
        "text": lambda d: d.get("text"),
    },
}


def _of(pattern: str, repository: str) -> str:
    """A rule's path pattern for ``repository`` (``owner/name``) instead of ``acme/blog``."""
    return pattern.replace("acme/blog", repository).replace("acme%2Fblog", quote(repository, safe=""))


class CommentReceiver(HttpReceiver):
    """The forge's pull request comments: ``comments`` maps a comment id to its current text."""

    METHOD = "*"  # POST a new comment, PATCH or PUT it in place

    def __init__(self, forge: str, token: str, repository: str = "acme/blog") -> None:
        super().__init__()
        self.forge, self.token = forge, token
        rule = COMMENT_RULES["gitea" if forge == "forgejo" else forge]
        method, edit = rule["edit"]
        self.rule = {**rule, "new": _of(rule["new"], repository), "edit": (method, _of(edit, repository))}
        self.comments: dict[int, str] = {}
        self.versions: dict[int, int] = {}
        self.status = StatusReceiver(forge, token, repository=repository)  # the statuses, at the same address
        self.statuses: list[dict[str, Any]] = []  # each accepted status's body, in order

    def check(self, request: web.Request, body: bytes) -> list[str]:
        if request.method == "POST" and re.match(self.status.rule["path"], request.path_qs):
            return self.status.check(request, body)
        name, template = self.rule["auth"]
        if request.headers.get(name) != template.format(token=self.token):
            return ["unauthorized"]
        try:
            data = json.loads(body)
        except ValueError:
            return ["not JSON"]
        text = self.rule["text"](data)
        if not isinstance(text, str) or not text:
            return ["no comment text"]
        method, edit = self.rule["edit"]
        if request.method == "POST" and re.match(self.rule["new"], request.path_qs):
            return []
        found = re.match(edit, request.path_qs)
        if request.method == method and found and int(found.group(1)) in self.comments:
            if self.forge == "bitbucket-server" and data.get("version") != self.versions[int(found.group(1))]:
                return ["stale version"]  # Bitbucket Server refuses an edit of an older version (409)
            return []
        return [f"no such comment route {request.method} {request.path_qs}"]

    def refuse(self, problems: list[str]) -> web.Response:
        return web.json_response({"message": problems[0]}, status=401 if problems == ["unauthorized"] else 404)

    def accept(self, rec: Any) -> web.Response:
        if re.match(self.status.rule["path"], rec.path):
            self.statuses.append(rec.json)
            return web.json_response({"id": len(self.statuses)}, status=201)
        text = self.rule["text"](rec.json)
        found = re.match(self.rule["edit"][1], rec.path)
        cid = int(found.group(1)) if found else len(self.comments) + 100
        self.comments[cid] = text
        self.versions[cid] = self.versions.get(cid, -1) + 1
        return web.json_response({"id": cid, "version": self.versions[cid]}, status=200 if found else 201)
