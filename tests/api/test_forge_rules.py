"""Git forge deliveries as data: which forge sent one, its signature checked over the raw body, its body
read into a push, and what a push makes Berth do (no I/O)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from berth_api.domain.forge_payloads import Other, PayloadError, Ping, Push, read_event
from berth_api.domain.forges import identify, sign, verify
from berth_api.domain.webhook_rules import decide, due_at, skip_marker, watch_path_problem, watched
from tests.api.forge_bodies import FORGES, headers, push_body, signed_push

SECRET = "bwhs_test-secret-0123456789"
SHA = "a" * 40
GIT = {"kind": "git", "repository": "https://git.example.com/acme/blog.git", "branch": "main"}


def lower(h: dict) -> dict:
    return {k.lower(): v for k, v in h.items()}


def test_github_documented_test_vector():
    h = lower({"X-GitHub-Event": "push", "X-GitHub-Delivery": "d1"})
    h |= lower(sign("github", "It's a Secret to Everybody", b"Hello, World!"))
    assert h["x-hub-signature-256"] == "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    delivery = identify(h)
    assert delivery is not None and delivery.forge == "github"
    assert verify(delivery, h, "It's a Secret to Everybody", b"Hello, World!")


@pytest.mark.parametrize("forge", FORGES)
def test_each_forge_is_identified_and_verified(forge):
    raw, h = signed_push(forge, SECRET, "main", SHA)
    h = lower(h)
    delivery = identify(h)
    assert delivery is not None and delivery.forge == forge
    assert delivery.delivery_id
    assert verify(delivery, h, SECRET, raw)
    assert not verify(delivery, h, SECRET + "x", raw)  # wrong secret
    if forge != "gitlab":  # GitLab's token does not cover the body
        assert not verify(delivery, h, SECRET, raw.replace(b"main", b"prod"))  # tampered body
        assert not verify(delivery, h, SECRET, raw + b" ")  # the raw bytes, not the parsed JSON
    sigs = delivery.headers.signature  # Forgejo: its own header, else Gitea's
    assert not verify(delivery, {k: v for k, v in h.items() if k not in sigs}, SECRET, raw)  # unsigned


def test_gitea_is_checked_by_its_own_header_not_githubs():
    raw, h = signed_push("gitea", SECRET, "main", SHA)
    h = lower(h)
    h["x-gitea-signature"] = "0" * 64  # GitHub's header alone does not make it verified
    delivery = identify(h)
    assert delivery is not None and delivery.forge == "gitea"
    assert not verify(delivery, h, SECRET, raw)


def test_prefixed_signature_needs_sha256():
    raw, h = signed_push("bitbucket", SECRET, "main", SHA)
    h = lower(h)
    h["x-hub-signature"] = h["x-hub-signature"].replace("sha256=", "sha1=")
    delivery = identify(h)
    assert delivery is not None and not verify(delivery, h, SECRET, raw)


def test_bitbucket_cloud_and_server_told_apart():
    cloud = identify(lower(headers("bitbucket", SECRET, b"{}")))
    server = identify(lower(headers("bitbucket-server", SECRET, b"{}")))
    assert cloud is not None and cloud.forge == "bitbucket"
    assert server is not None and server.forge == "bitbucket-server"
    assert identify({"content-type": "application/json"}) is None


@pytest.mark.parametrize("forge", FORGES)
def test_each_forge_push_reads(forge):
    raw, h = signed_push(forge, SECRET, "main", SHA, message="fix it", files=["api/x.py"])
    delivery = identify(lower(h))
    assert delivery is not None
    event = read_event(delivery, raw)
    assert isinstance(event, Push)
    assert (event.kind, event.name, event.commit) == ("branch", "main", SHA)
    if forge != "bitbucket-server":
        assert event.message == "fix it"
    if forge.startswith("bitbucket"):
        assert not event.files_complete  # Bitbucket lists no files
    else:
        assert event.files == ("api/x.py",) and event.files_complete


def test_github_form_encoded_and_ping():
    from urllib.parse import urlencode

    doc = push_body("github", "main", SHA)
    raw = urlencode({"payload": json.dumps(doc)}).encode()
    delivery = identify(lower(headers("github", SECRET, raw)))
    assert delivery is not None
    assert read_event(delivery, raw, "application/x-www-form-urlencoded").commit == SHA  # type: ignore[union-attr]
    ping = identify(lower(headers("github", SECRET, b"{}", event="ping")))
    assert ping is not None and read_event(ping, b'{"zen": "x"}') == Ping()
    server_ping = identify(lower(headers("bitbucket-server", SECRET, b"{}", event="diagnostics:ping")))
    assert server_ping is not None and read_event(server_ping, b"{}") == Ping()
    pr = identify(lower(headers("github", SECRET, b"{}", event="pull_request")))
    assert pr is not None and read_event(pr, b"{}") == Other("pull_request")
    with pytest.raises(PayloadError):
        read_event(delivery, b"not json")


def _push(**kw) -> Push:
    base = {"kind": "branch", "name": "main", "commit": SHA, "message": "m", "files": ("a/b.py",)}
    return Push(**{**base, "files_complete": True, **kw})


def test_rules():
    assert decide(_push(), GIT, tags=False, watch_paths=[]).action == "deploy"
    assert decide(_push(name="dev"), GIT, tags=False, watch_paths=[]).reason.endswith("tracks branch main")
    assert decide(_push(commit=None), GIT, tags=False, watch_paths=[]).reason == "the branch main was deleted"
    for marker in ("[skip ci]", "[CI SKIP]", "[skip deploy]"):
        assert decide(_push(message=f"docs {marker}"), GIT, tags=False, watch_paths=[]).action == "skip"
    tag = _push(kind="tag", name="v1.0")
    assert decide(tag, GIT, tags=False, watch_paths=[]).action == "skip"
    assert decide(tag, GIT, tags=True, watch_paths=[]).ref == "tag v1.0"
    pinned = {**GIT, "branch": None, "commit": "b" * 40}
    assert decide(_push(), pinned, tags=False, watch_paths=[]).reason == "the application is pinned to a commit"
    default = {**GIT, "branch": None}
    assert decide(_push(default_branch="main"), default, tags=False, watch_paths=[]).action == "deploy"
    image = {"kind": "image", "image": "nginx"}
    assert decide(_push(), image, tags=False, watch_paths=[]).action == "skip"
    assert decide(Ping(), GIT, tags=False, watch_paths=[]).action == "pong"


def test_watch_paths():
    assert watched(["services/api/x.py"], ["services/api"])
    assert not watched(["services/apix/x.py"], ["services/api"])
    assert watched(["docs/a/b.md"], ["docs/**/*.md"])
    assert watched(["docs/b.md"], ["docs/**/*.md"])
    assert not watched(["docs/a/b.md"], ["docs/*.md"])
    assert not watched(["README.md"], ["**", "!*.md"])
    assert watched(["README.md", "src/x"], ["**", "!*.md"])
    assert decide(_push(files=("web/x",)), GIT, tags=False, watch_paths=["api"]).reason.startswith("no changed")
    incomplete = _push(files=("web/x",), files_complete=False)
    assert decide(incomplete, GIT, tags=False, watch_paths=["api"]).action == "deploy"  # missing info never skips
    assert watch_path_problem("../x") and watch_path_problem("/abs") and watch_path_problem("a\nb")
    assert watch_path_problem("!src/**") is None
    assert skip_marker("feat: x") is None


def test_debounce_due_time():
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    assert due_at(t0, t0, 3, 30) == t0 + timedelta(seconds=3)
    assert due_at(t0 + timedelta(seconds=29), t0, 3, 30) == t0 + timedelta(seconds=30)  # never past the max


def test_an_annotated_tag_deploys_its_commit_not_the_tag_object():
    for forge in ("github", "gitlab"):
        doc = push_body(forge, "refs/tags/v1", SHA)
        doc["after"] = "f" * 40  # the tag object
        raw = json.dumps(doc).encode()
        delivery = identify(lower(headers(forge, SECRET, raw)))
        assert delivery is not None
        event = read_event(delivery, raw)
        assert isinstance(event, Push) and (event.kind, event.commit) == ("tag", SHA), forge


def test_commit_status_requests():
    from berth_api.domain.commit_status import request, state_of

    assert [state_of(s) for s in ("queued", "building", "succeeded", "failed", "cancelled")] == [
        "pending",
        "pending",
        "success",
        "failure",
        None,
    ]
    gitlab = request(
        "gitlab", "https://gl.example.com/api/v4/", "grp/sub/app", "glpat-x", SHA, "failure", "https://b/d"
    )
    assert gitlab.url == f"https://gl.example.com/api/v4/projects/grp%2Fsub%2Fapp/statuses/{SHA}"
    assert gitlab.headers["PRIVATE-TOKEN"] == "glpat-x" and gitlab.json["state"] == "failed"
    assert "glpat-x" not in repr(gitlab)
    gitea = request("forgejo", "https://code.example.com/api/v1", "acme/blog", "t0k", SHA, "pending", None)
    assert gitea.headers["Authorization"] == "token t0k" and "target_url" not in gitea.json


def test_a_preview_status_has_its_own_context():
    from berth_api.domain.commit_status import PREVIEW_CONTEXT, request

    assert PREVIEW_CONTEXT == "berth/preview"
    github = request("github", "https://api.github.com", "acme/blog", "t", SHA, "success", "https://b/d")
    assert github.json["context"] == "berth/deploy"  # the default: the application's own deployments
    preview = request("github", "https://api.github.com", "acme/blog", "t", SHA, "success", None, PREVIEW_CONTEXT)
    assert preview.json["context"] == "berth/preview"
    assert request("gitlab", "https://gl", "a/b", "t", SHA, "pending", None, PREVIEW_CONTEXT).json["name"] == (
        "berth/preview"
    )
    for forge in ("bitbucket", "bitbucket-server"):
        body = request(forge, "https://bb", "acme/blog", "t", SHA, "failure", "https://b/d", PREVIEW_CONTEXT).json
        assert body["key"] == "berth-preview" and body["name"] == "berth/preview", forge
        deploy = request(forge, "https://bb", "acme/blog", "t", SHA, "failure", "https://b/d").json
        assert deploy["key"] == "berth-deploy", forge  # unchanged for the application's own statuses
