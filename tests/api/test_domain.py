"""Pure rules of the api: name grammars, generated hosts, the status projection, snapshots and sealing."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest

from berth_api.adapters.secretbox import SecretBox, SecretUnavailableError
from berth_api.domain import names
from berth_api.domain.applications import Variable, application_spec, mask_spec, open_spec, seal_spec, with_image
from berth_api.domain.deployments import Projection, on_progressed, on_terminal, status_of
from berth_api.domain.hosts import generated_host, generated_label

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/acme/shop.git",
        "http://127.0.0.1:9418/repo",
        "git://127.0.0.1/repo.git",
        "ssh://git@github.com/acme/shop.git",
        "git@github.com:acme/shop.git",
        "https://[::1]:8443/x/y",
    ],
)
def test_good_git_urls(url):
    assert names.git_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "ext::sh -c id",
        "ext::sh",
        "fd::17",
        "-uhttps://x/y",
        "--upload-pack=/bin/sh",
        "file:///etc/passwd",
        "/etc",
        "./repo",
        "https://x.example/r\n",
        "https://x.example/r\x00",
        "https://x.example/%0a",
        "https://user:pw@x.example/r",
        "https://token@x.example/r",
        "https://x.example/",
        "https://-x.example/r",
        "https://x.example/-r",
        "git@-oProxyCommand=x:r",
        "ftp://x.example/r",
        "https://x.exámple/r",
        "https://x.example/r#frag",
        "x" * 3000,
    ],
)
def test_bad_git_urls(url):
    with pytest.raises(ValueError):
        names.git_url(url)


def test_local_git_only_when_allowed():
    assert names.git_url("file:///srv/git/app", allow_local=True) == "file:///srv/git/app"
    assert names.git_url("/srv/git/app", allow_local=True) == "/srv/git/app"
    for bad in ("file:///srv/../etc", "/srv//x", "relative/path"):
        with pytest.raises(ValueError):
            names.git_url(bad, allow_local=True)


@pytest.mark.parametrize("ref", ["main", "feature/x-1", "v1.2.3", "refs/heads/main", "release_2026"])
def test_good_branches(ref):
    assert names.branch(ref) == ref


@pytest.mark.parametrize(
    "ref",
    [
        "-x",
        "--upload-pack=x",
        "a..b",
        "a b",
        "a~1",
        "a^",
        "a:b",
        "a?",
        "a*",
        "a[",
        "a\\b",
        "x.lock",
        "a/.b",
        "/a",
        "a/",
        "a//b",
        "a.",
        "@",
        "a@{1}",
        "a\nb",
        "é",
        "x" * 300,
    ],
)
def test_bad_branches(ref):
    with pytest.raises(ValueError):
        names.branch(ref)


@pytest.mark.parametrize("path", ["", "app", "a/b", "web/Dockerfile.prod", "a.b/c_d"])
def test_good_paths_are_kept_exactly(path):
    assert names.relative_path(path) == path


BAD_PATHS = ["..", "../x", "a/../../x", "a/..", "/etc", "a\\b", "-x", "a/-b", "a\nb", "x" * 2000]
NOT_NORMAL = [".", "a/b/", "./a", "a/./b", "a//b", "file:///etc/passwd"]  # refused, never rewritten


@pytest.mark.parametrize("path", [*BAD_PATHS, *NOT_NORMAL])
def test_bad_paths(path):
    with pytest.raises(ValueError):
        names.relative_path(path)


@pytest.mark.parametrize(
    "image",
    [
        "nginx",
        "nginx:1.27",
        "library/nginx:latest",
        "registry.example.com:5000/a/b:c",
        "ghcr.io/acme/app@sha256:" + "a" * 64,
        "berth/app:0123abcd",
        "a__b",
        "a-b.c/d",
    ],
)
def test_good_images(image):
    assert names.image_ref(image) == image


@pytest.mark.parametrize(
    "image",
    [
        "",
        "Nginx",
        "-nginx",
        "nginx:",
        "nginx:-x",
        "a b",
        "a;b",
        "a/../b",
        "a:99999/b",
        "nginx@sha256:xyz",
        "ngïnx",
        "a" * 300,
    ],
)
def test_bad_images(image):
    with pytest.raises(ValueError):
        names.image_ref(image)


def test_hostnames():
    assert names.hostname("Shop.Example.COM.") == "shop.example.com"
    for bad in (
        "localhost",
        "a..b",
        "-a.b",
        "a-.b",
        "1.2.3.4",
        "a b.c",
        "ex\u0430mple.com",
        "a" * 64 + ".com",
        "a.b\n",
    ):
        with pytest.raises(ValueError):
            names.hostname(bad)


def test_generated_hosts_fit_a_dns_label():
    assert generated_host("web", "shop", "production", "apps.example.com") == "web-shop-production.apps.example.com"
    long = generated_label("s" * 32, "a" * 32, "e" * 32)
    assert len(long) <= 63 and names.LABEL_RE.fullmatch(long)
    assert long != generated_label("s" * 32, "a" * 32, "e" * 31 + "f")  # still unique


def _p(state="queued", at=None, **kw):
    return Projection(
        state=state, step=state, detail="", reason=None, last_event_at=at, started_at=None, finished_at=None, **kw
    )


def test_projection_moves_forward_only():
    p = on_progressed(_p(), "building", "build requested", "", T0)
    assert p and p.state == "building" and p.started_at == T0
    assert on_progressed(p, "queued", "queued", "", T0 + timedelta(seconds=1)) is None  # back: stale
    later = on_progressed(p, "verifying", "replicas started", "", T0 + timedelta(seconds=2))
    assert later and later.started_at == T0
    assert on_progressed(later, "verifying", "old step", "", T0 + timedelta(seconds=1)) is None  # older, same state
    same = on_progressed(later, "verifying", "replica ready", "", T0 + timedelta(seconds=3))
    assert same and same.step == "replica ready"


def test_projection_terminal_is_final():
    done = on_terminal(_p("routing", T0), "succeeded", None, T0 + timedelta(seconds=5))
    assert done and done.state == "succeeded" and done.finished_at == T0 + timedelta(seconds=5)
    assert on_progressed(done, "draining", "x", "", T0 + timedelta(seconds=9)) is None
    assert on_progressed(done, "succeeded", "succeeded", "", T0 + timedelta(seconds=9)) is None
    assert on_terminal(done, "failed", "boom", T0 + timedelta(seconds=9)) is None
    again = on_terminal(done, "succeeded", None, T0 + timedelta(seconds=6))
    assert again and again.finished_at == done.finished_at
    # A progressed "failed" announces the end; the failed event then fills in its reason.
    ended = on_progressed(_p("verifying", T0), "failed", "failed", "readiness timed out", T0 + timedelta(seconds=1))
    assert ended and ended.state == "failed" and ended.reason == "readiness timed out"
    assert [status_of(s) for s in ("queued", "routing", "succeeded", "cancelled")] == [
        "queued",
        "in_progress",
        "succeeded",
        "cancelled",
    ]


CONFIG = {
    "source": {
        "kind": "git",
        "repository": "https://x.example/r.git",
        "branch": None,
        "commit": None,
        "subdirectory": "",
        "dockerfile": None,
    },
    "services": [
        {
            "kind": "web",
            "name": "web",
            "port": 80,
            "replicas": 1,
            "health_path": "/",
            "command": None,
            "domains": [],
            "limits": None,
        }
    ],
    "limits": {"cpus": None, "memory_mb": None},
    "restart_policy": "always",
    "stop_timeout_s": 5,
}


def test_snapshot_sealed_masked_and_opened_again():
    spec = application_spec(
        name="app",
        environment="production",
        config=CONFIG,
        runtime=[Variable("A", "plain"), Variable("TOKEN", "tok-123", secret=True)],
        build=[Variable("NPM", "npm-456", secret=True)],
        hosts={"web": ["web-app-production.localhost"]},
    )
    assert spec.source.ref == "HEAD" and spec.source.dockerfile is None  # type: ignore[union-attr]
    assert "tok-123" not in repr(spec) and "tok-123" not in repr(Variable("TOKEN", "tok-123", secret=True))
    box = SecretBox([os.urandom(32)])
    sealed = seal_spec(spec, box.seal_text, "deployment:d1")
    text = str(sealed)
    assert "tok-123" not in text and "npm-456" not in text and "plain" in text
    assert open_spec(sealed, box.open_text, "deployment:d1") == spec
    with pytest.raises(SecretUnavailableError):
        open_spec(sealed, box.open_text, "deployment:d2")  # moved to another row: does not open
    masked = mask_spec(sealed)
    assert masked["env"][1] == {"name": "TOKEN", "value": None, "secret": True}
    assert masked["source"]["build_args"][0]["value"] is None
    image = with_image(spec, "berth/app:0123abcd")
    assert image.source.model_dump() == {"kind": "image", "image": "berth/app:0123abcd"} and image.env == spec.env


def test_secret_box_keys():
    old, new = os.urandom(32), os.urandom(32)
    blob = SecretBox([old]).seal("value", "aad")
    assert SecretBox([new, old]).open(blob, "aad") == "value"  # an older key still opens (rotation)
    with pytest.raises(SecretUnavailableError):
        SecretBox([new]).open(blob, "aad")
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(SecretUnavailableError):
        SecretBox([old]).open(tampered, "aad")
    with pytest.raises(SecretUnavailableError):
        SecretBox([old]).open_text("sealed:v1:!!!", "aad")


def test_a_failed_or_cancelled_deployment_keeps_where_it_stopped():
    building = on_progressed(_p(), "building", "build requested", "", T0)
    assert building is not None and building.ended_in is None
    failed = on_terminal(building, "failed", "build failed", T0 + timedelta(seconds=1))
    assert failed and (failed.state, failed.ended_in, failed.reason) == ("failed", "building", "build failed")
    # the scheduler's failed_in wins, also when a progressed event announced the end first
    ended = on_progressed(building, "failed", "failed", "image pull failed", T0 + timedelta(seconds=1))
    assert ended and ended.ended_in == "building"
    told = on_terminal(ended, "failed", None, T0 + timedelta(seconds=2), failed_in="starting")
    assert told and told.ended_in == "starting" and told.reason == "image pull failed"
    again = on_terminal(told, "failed", None, T0 + timedelta(seconds=3))  # delivered twice: kept
    assert again and again.ended_in == "starting"
    cancelled = on_terminal(building, "cancelled", "cancelled", T0 + timedelta(seconds=1))
    assert cancelled and cancelled.ended_in == "building"
    done = on_terminal(building, "succeeded", None, T0 + timedelta(seconds=1))
    assert done and done.ended_in is None
