"""Push and ping deliveries as each git forge sends them (headers and body), signed with a secret here, in
the test, the way the forge signs (the facts: docs/webhooks.md)."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any


def _hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def push_body(forge: str, branch: str, sha: str, message: str = "change", files: list[str] | None = None) -> dict:
    """A push of one commit to ``branch`` (``refs/tags/...`` for a tag) in the forge's own shape."""
    files = ["src/app.py"] if files is None else files
    ref = branch if branch.startswith("refs/") else f"refs/heads/{branch}"
    commit = {"id": sha, "message": message, "added": [], "removed": [], "modified": files}
    if forge in ("github", "gitea", "forgejo", "gogs"):
        return {
            "ref": ref,
            "before": "1" * 40,
            "after": sha,
            "deleted": False,
            "commits": [commit],
            "head_commit": commit,
            "repository": {"full_name": "acme/blog", "default_branch": "main"},
        }
    if forge == "gitlab":
        return {
            "object_kind": "tag_push" if ref.startswith("refs/tags/") else "push",
            "ref": ref,
            "before": "1" * 40,
            "after": sha,
            "checkout_sha": sha,
            "commits": [commit],
            "total_commits_count": 1,
            "project": {"path_with_namespace": "acme/blog", "default_branch": "main"},
        }
    name = ref.removeprefix("refs/heads/").removeprefix("refs/tags/")
    kind = "tag" if ref.startswith("refs/tags/") else "branch"
    if forge == "bitbucket":
        new = {"type": kind, "name": name, "target": {"type": "commit", "hash": sha, "message": message}}
        return {"push": {"changes": [{"new": new, "old": None, "truncated": False}]}, "repository": {"name": "blog"}}
    if forge == "bitbucket-server":
        change = {"ref": {"id": ref, "displayId": name, "type": kind.upper()}, "fromHash": "1" * 40, "toHash": sha}
        return {"eventKey": "repo:refs_changed", "changes": [{**change, "type": "UPDATE"}]}
    raise ValueError(forge)


PUSH_EVENT = {
    "github": "push",
    "gitea": "push",
    "forgejo": "push",
    "gogs": "push",
    "gitlab": "Push Hook",
    "bitbucket": "repo:push",
    "bitbucket-server": "repo:refs_changed",
}
FORGES = tuple(PUSH_EVENT)


def headers(forge: str, secret: str, raw: bytes, event: str | None = None, delivery: str | None = None) -> dict:
    """The headers the forge sends with ``raw``, signed with ``secret`` (GitLab: the token itself)."""
    event = event or PUSH_EVENT[forge]
    delivery = delivery or str(uuid.uuid4())
    digest = _hex(secret, raw)
    h: dict[str, str] = {"Content-Type": "application/json"}
    if forge == "github":
        h |= {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": f"sha256={digest}"}
        h["X-Hub-Signature"] = "sha1=" + hmac.new(secret.encode(), raw, hashlib.sha1).hexdigest()
    elif forge == "gitlab":
        h |= {"X-Gitlab-Event": event, "X-Gitlab-Event-UUID": delivery, "X-Gitlab-Token": secret}
    elif forge == "gitea":
        h |= {"X-Gitea-Event": event, "X-Gitea-Delivery": delivery, "X-Gitea-Signature": digest}
        h |= {"X-Gogs-Signature": digest, "X-GitHub-Event": event, "X-Hub-Signature-256": f"sha256={digest}"}
    elif forge == "forgejo":
        h |= {"X-Forgejo-Event": event, "X-Forgejo-Delivery": delivery, "X-Forgejo-Signature": digest}
        h |= {"X-Gitea-Event": event, "X-Gitea-Signature": digest, "X-GitHub-Event": event}
    elif forge == "gogs":
        h |= {"X-Gogs-Event": event, "X-Gogs-Delivery": delivery, "X-Gogs-Signature": digest}
    elif forge == "bitbucket":
        h |= {"X-Event-Key": event, "X-Request-UUID": delivery, "X-Hook-UUID": "{hook}", "X-Attempt-Number": "1"}
        h["X-Hub-Signature"] = f"sha256={digest}"
    elif forge == "bitbucket-server":
        h |= {"X-Event-Key": event, "X-Request-Id": delivery, "X-Hub-Signature": f"sha256={digest}"}
    else:
        raise ValueError(forge)
    return h


def signed_push(forge: str, secret: str, branch: str, sha: str, **kw: Any) -> tuple[bytes, dict]:
    raw = json.dumps(push_body(forge, branch, sha, **kw)).encode()
    return raw, headers(forge, secret, raw)
