"""A verified delivery's body read into what Berth acts on: pure, no I/O.

Every forge's push reads into one :class:`Push` (ref, commit, head commit message, changed files); a ping
into :class:`Ping`; anything else into :class:`Other`. Where a forge's body lacks something (Bitbucket
sends no file lists, Bitbucket Server no commit message) or holds only part of it (GitLab lists at most
20 commits, GitHub 2,048), the field says so (``files_complete`` False, ``message`` None), so that the
rules never skip a deployment on missing information.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs

from berth_api.domain.forges import Delivery

ZERO_SHA = "0" * 40
MAX_FILES = 10_000  # changed paths kept per push (a longer list counts as incomplete)


class PayloadError(ValueError):
    """The body is not the JSON document the forge's event carries (the message names what is wrong)."""


@dataclass(frozen=True)
class Ping:
    """The forge checks the hook (GitHub ``ping``, Bitbucket Server ``diagnostics:ping``)."""


@dataclass(frozen=True)
class Other:
    """An event Berth does not act on (a pull request, an issue, a release...): named for the answer."""

    event: str


@dataclass(frozen=True)
class Push:
    """One pushed ref: a branch or tag name, the commit it now points at (None: the ref was deleted), the
    head commit's message (None: the body does not carry it), the changed paths, and whether they are all
    of them; the repository's default branch when the body names it."""

    kind: str  # branch | tag
    name: str
    commit: str | None
    message: str | None = None
    files: tuple[str, ...] = ()
    files_complete: bool = False
    default_branch: str | None = None
    extra: tuple[Push, ...] = field(default=(), repr=False)  # further refs of one Bitbucket push

    def refs(self) -> tuple[Push, ...]:
        return (self, *self.extra)


Event = Push | Ping | Other


def _ref(ref: str) -> tuple[str, str]:
    if ref.startswith("refs/tags/"):
        return "tag", ref.removeprefix("refs/tags/")
    return "branch", ref.removeprefix("refs/heads/")


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _files(commits: list[Any]) -> tuple[tuple[str, ...], bool]:
    seen: dict[str, None] = {}
    for commit in commits:
        if not isinstance(commit, dict):
            continue
        for key in ("added", "removed", "modified"):
            for path in commit.get(key) or ():
                if isinstance(path, str):
                    seen[path] = None
    complete = len(seen) <= MAX_FILES
    return tuple(list(seen)[:MAX_FILES]), complete


def _document(body: bytes, content_type: str) -> dict[str, Any]:
    """The JSON object of a body; a form-encoded one (GitHub's other content type) carries it in
    ``payload``."""
    raw: str | bytes = body
    if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        values = parse_qs(body.decode("utf-8", "replace")).get("payload")
        if not values:
            raise PayloadError("a form-encoded delivery carries its JSON in a 'payload' field")
        raw = values[0]
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise PayloadError("the body is not JSON") from None
    if not isinstance(doc, dict):
        raise PayloadError("the body is not a JSON object")
    return doc


def _hub_push(doc: dict[str, Any], repo_key: str) -> Push:
    """GitHub, Gitea, Forgejo and Gogs: ``ref``, ``after``, ``commits`` with their file lists, and
    ``head_commit``; GitLab: the same names, its head commit being ``checkout_sha``'s."""
    ref = _text(doc.get("ref"))
    after = _text(doc.get("after"))
    if ref is None or after is None:
        raise PayloadError("a push names 'ref' and 'after'")
    kind, name = _ref(ref)
    deleted = bool(doc.get("deleted")) or after == ZERO_SHA
    listed = doc.get("commits")
    commits: list[Any] = listed if isinstance(listed, list) else []
    files, complete = _files(commits)
    total = doc.get("total_commits_count", doc.get("total_commits"))
    if isinstance(total, int) and total > len(commits):
        complete = False  # GitLab lists at most 20 commits, Gitea a configured number
    if not commits:
        complete = False  # a forced push or a new branch may list none: nothing says what changed
    head = doc.get("head_commit") if isinstance(doc.get("head_commit"), dict) else None
    if head is None:
        head = next((c for c in commits if isinstance(c, dict) and c.get("id") == after), None)
    if head is None and commits and isinstance(commits[-1], dict):
        head = commits[-1]
    found = doc.get(repo_key)
    repo: dict[str, Any] = found if isinstance(found, dict) else {}
    commit = after
    if kind == "tag":  # an annotated tag's 'after' is the tag object: deploy the commit it points at
        commit = _text(doc.get("checkout_sha")) or (_text(head.get("id")) if head else None) or after
    return Push(
        kind=kind,
        name=name,
        commit=None if deleted else commit,
        message=_text(head.get("message")) if head else None,
        files=files,
        files_complete=complete,
        default_branch=_text(repo.get("default_branch")),
    )


def _bitbucket_cloud(doc: dict[str, Any]) -> Push:
    push = doc.get("push")
    changes = push.get("changes") if isinstance(push, dict) else None
    if not isinstance(changes, list) or not changes:
        raise PayloadError("a repo:push lists 'push.changes'")
    pushes = []
    for change in changes:
        new = change.get("new") if isinstance(change, dict) else None
        old = change.get("old") if isinstance(change, dict) else None
        ref: Any = new if isinstance(new, dict) else old
        if not isinstance(ref, dict) or not isinstance(ref.get("name"), str):
            raise PayloadError("each change names its branch or tag")
        target: dict[str, Any] = ref["target"] if isinstance(new, dict) and isinstance(ref.get("target"), dict) else {}
        pushes.append(
            Push(
                kind="tag" if ref.get("type") in ("tag", "annotated_tag") else "branch",
                name=ref["name"],
                commit=_text(target.get("hash")) if new else None,
                message=_text(target.get("message")),
            )
        )
    return replace(pushes[-1], extra=tuple(pushes[:-1]))


def _bitbucket_server(doc: dict[str, Any]) -> Push:
    changes = doc.get("changes")
    if not isinstance(changes, list) or not changes:
        raise PayloadError("a repo:refs_changed lists 'changes'")
    pushes = []
    for change in changes:
        ref = change.get("ref") if isinstance(change, dict) else None
        if not isinstance(ref, dict) or not isinstance(ref.get("id"), str):
            raise PayloadError("each change names its ref")
        kind, name = _ref(ref["id"])
        deleted = change.get("type") == "DELETE" or change.get("toHash") == ZERO_SHA
        pushes.append(Push(kind=kind, name=name, commit=None if deleted else _text(change.get("toHash"))))
    return replace(pushes[-1], extra=tuple(pushes[:-1]))


def read_event(delivery: Delivery, body: bytes, content_type: str = "application/json") -> Event:
    """The event a verified delivery carries (raises :class:`PayloadError` for a body that does not read)."""
    forge, event = delivery.forge, delivery.event
    if forge == "github" and event == "ping":
        return Ping()
    if forge.startswith("bitbucket") and event == "diagnostics:ping":
        return Ping()
    if forge in ("github", "gitea", "forgejo", "gogs") and event == "push":
        return _hub_push(_document(body, content_type), "repository")
    if forge == "gitlab" and event in ("Push Hook", "Tag Push Hook"):
        return _hub_push(_document(body, content_type), "project")
    if forge == "bitbucket" and event == "repo:push":
        return _bitbucket_cloud(_document(body, content_type))
    if forge == "bitbucket-server" and event == "repo:refs_changed":
        return _bitbucket_server(_document(body, content_type))
    return Other(event=event[:100])
