"""Validation of repository URLs, refs, paths, build args, build ids and image tags (pure)."""

from __future__ import annotations

import pytest

from berth_builder.domain.source import (
    GitRef,
    InvalidInput,
    redact_url,
    url_secrets,
    validate_build_arg,
    validate_build_id,
    validate_git_url,
    validate_image_tag,
    validate_ref,
    validate_relpath,
)


@pytest.mark.parametrize(
    ("url", "transport"),
    [
        ("https://github.com/acme/app.git", "https"),
        ("https://github.com/acme/app", "https"),
        ("http://127.0.0.1:8080/app.git", "http"),
        ("git://127.0.0.1:9418/app.git", "git"),
        ("ssh://git@example.com/acme/app.git", "ssh"),
        ("ssh://git@example.com:2222/acme/app.git", "ssh"),
        ("git@github.com:acme/app.git", "ssh"),
        ("example.com:acme/app.git", "ssh"),
        ("https://[::1]:8443/app.git", "https"),
        ("git@[::1]:acme/app.git", "ssh"),
    ],
)
def test_accepted_urls(url, transport):
    got = validate_git_url(url)
    assert got.transport == transport
    assert got.url == url


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("", "required"),
        ("--upload-pack=touch /tmp/x", "whitespace"),
        ("--upload-pack=touch", "'-'"),
        ("-oProxyCommand=x", "'-'"),
        ("ext::sh -c touch% /tmp/pwned", "whitespace"),
        ("ext::sh", "remote helpers"),
        ("fd::17", "remote helpers"),
        ("transport::https://example.com/x", "remote helpers"),
        ("file:///etc", "BERTH_ALLOW_LOCAL_GIT"),
        ("FILE:///etc", "BERTH_ALLOW_LOCAL_GIT"),
        ("/srv/git/app.git", "BERTH_ALLOW_LOCAL_GIT"),
        ("../../etc", "BERTH_ALLOW_LOCAL_GIT"),
        ("./repo", "BERTH_ALLOW_LOCAL_GIT"),
        ("repo", "BERTH_ALLOW_LOCAL_GIT"),
        ("ftp://example.com/app.git", "scheme"),
        ("javascript://x/y", "scheme"),
        ("https://example.com/app.git\n", "control"),
        ("https://example.com/a\x00b", "control"),
        ("https://exa mple.com/app.git", "whitespace"),
        ("https://example.com/app%0a.git", "percent-encoded"),
        ("https://example.com/app%00", "percent-encoded"),
        ("ssh://-oProxyCommand=touch/x", "'-'"),
        ("ssh://-oProxyCommand@host/x", "user name"),
        ("-@host:path", "'-'"),
        ("git@-host:path", "'-'"),
        ("git@host:-path", "'-'"),
        ("https://exa_mple.com/x", "invalid host"),
        ("https:///x", "no host"),
        ("https://example.com", "no repository path"),
        ("https://example.com/", "no repository path"),
        ("https://example.com/-x", "'-'"),
        ("https://example.com:99999/x", "port"),
        ("https://example.com/" + "a" * 2048, "longer than"),
        ("https://user:tok3n@example.com/acme/app.git", "credentials"),
        ("https://ghp_tok@example.com/acme/app.git", "credentials"),
        ("ssh://git:pw@example.com/acme/app.git", "credentials"),
        ("https://example.com/app.git#main", "fragment"),
        ("https://ex\u00e4mple.com/app.git", "ascii"),
    ],
)
def test_rejected_urls(url, why):
    with pytest.raises(InvalidInput) as err:
        validate_git_url(url)
    assert why.lower() in str(err.value).lower()
    assert err.value.field == "source.repository"


def test_local_repositories_only_when_allowed():
    got = validate_git_url("/srv/git/app.git", allow_local=True)
    assert (got.transport, got.url, got.display, got.local) == (
        "file",
        "file:///srv/git/app.git",
        "/srv/git/app.git",
        True,
    )
    got = validate_git_url("file:///srv/git/my%20app", allow_local=True)
    assert got.url == "file:///srv/git/my%20app"
    for bad in ("file://relative/x", "../../etc", "./repo", "/srv/../etc", "/srv//x", "/srv/./x"):
        with pytest.raises(InvalidInput):
            validate_git_url(bad, allow_local=True)
    # still refused when allowed: helpers and options
    for bad in ("ext::sh -c x", "--upload-pack=x", "file:///x\n"):
        with pytest.raises(InvalidInput):
            validate_git_url(bad, allow_local=True)


def test_credentials_are_redacted_for_display():
    """Credentials are refused in a repository URL (above); a refused one is still shown redacted."""
    assert redact_url("https://bob:s3cr3t@example.com/x.git") == "https://bob:***@example.com/x.git"
    assert redact_url("https://ghp_abcdef@example.com/x.git") == "https://***@example.com/x.git"
    assert redact_url("ssh://git@example.com/x.git") == "ssh://git@example.com/x.git"
    assert redact_url("ssh://git:pw@example.com/x.git") == "ssh://git:***@example.com/x.git"
    assert redact_url("https://example.com/x.git") == "https://example.com/x.git"
    assert url_secrets("https://bob:s%40cret@example.com/x") == ["s%40cret", "s@cret"]
    assert url_secrets("https://ghp_tok@example.com/x") == ["ghp_tok"]
    assert url_secrets("ssh://git@example.com/x") == []
    assert url_secrets("https://example.com/x") == []


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("", GitRef("default")),
        ("HEAD", GitRef("default")),
        ("main", GitRef("name", "main")),
        ("feature/new-ui", GitRef("name", "feature/new-ui")),
        ("v1.2.3", GitRef("name", "v1.2.3")),
        ("refs/heads/main", GitRef("name", "main")),
        ("refs/tags/v1", GitRef("name", "v1")),
        ("a" * 40, GitRef("commit", "a" * 40)),
        ("ABCDEF0123456789ABCDEF0123456789ABCDEF01", GitRef("commit", "abcdef0123456789abcdef0123456789abcdef01")),
        ("0" * 64, GitRef("commit", "0" * 64)),
        ("deadbee", GitRef("short", "deadbee")),
        ("cafe", GitRef("name", "cafe")),
    ],
)
def test_accepted_refs(ref, expected):
    assert validate_ref(ref) == expected


@pytest.mark.parametrize(
    "ref",
    [
        "--upload-pack=x",
        "-b",
        "main\n",
        "main\nevil",
        "ma in",
        "a..b",
        "a@{1}",
        "@",
        "a~1",
        "a^",
        "a:b",
        "a?",
        "a*",
        "a[",
        "a\\b",
        "/main",
        "main/",
        "a//b",
        "main.",
        ".hidden",
        "a/.b",
        "main.lock",
        "a.lock/b",
        "x" * 256,
        "refs/heads/",
        "tab\there",
        "del\x7f",
    ],
)
def test_rejected_refs(ref):
    with pytest.raises(InvalidInput) as err:
        validate_ref(ref)
    assert err.value.field == "source.ref"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("", ""),
        (".", ""),
        ("./", ""),
        ("app", "app"),
        ("apps/web/", "apps/web"),
        ("./apps//web", "apps/web"),
        ("a/./b", "a/b"),
    ],
)
def test_accepted_paths(path, expected):
    assert validate_relpath(path, "source.subdirectory") == expected


@pytest.mark.parametrize(
    "path",
    ["../../etc", "..", "a/../../b", "a/..", "/etc", "/", "a\\b", "a\nb", "a\x00", "-rf", "x" * 1025],
)
def test_rejected_paths(path):
    with pytest.raises(InvalidInput) as err:
        validate_relpath(path, "source.dockerfile")
    assert err.value.field == "source.dockerfile"


def test_dockerfile_path_is_required_when_given():
    with pytest.raises(InvalidInput):
        validate_relpath("", "source.dockerfile", allow_empty=False)


def test_build_args():
    validate_build_arg("NODE_ENV", "production")
    validate_build_arg("_x1", "")
    for bad in ("1X", "A-B", "A B", "", "A=B", "Ä", "x" * 129):
        with pytest.raises(InvalidInput):
            validate_build_arg(bad, "v")
    with pytest.raises(InvalidInput):
        validate_build_arg("X", "a\x00b")
    with pytest.raises(InvalidInput):
        validate_build_arg("X", "a" * 65537)


def test_build_ids_and_tags():
    assert validate_build_id("b-1.2_3") == "b-1.2_3"
    for bad in ("", "../x", "a/b", "..", "a..b", ".x", "-x", "x" * 65, "a b"):
        with pytest.raises(InvalidInput):
            validate_build_id(bad)
    for ok in ("berth/app:dep-1", "app", "localhost:5000/team/app:v1.0", "a__b/c-d:Tag_1"):
        assert validate_image_tag(ok) == ok
    for bad in ("App:1", "app:", "-app", "app:-x", "app:a b", "app@sha256:x", "a" * 256, "app:" + "t" * 129):
        with pytest.raises(InvalidInput):
            validate_image_tag(bad)
