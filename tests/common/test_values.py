"""The shared value rules (``berth_common.values``): exact tables of accepted and refused values per rule,
and the catalogue refusing to build a message that carries a bad one."""

from __future__ import annotations

import re

import pytest
from pydantic import TypeAdapter, ValidationError

from berth_common import values
from berth_common.bus.consumer import parse_received
from berth_common.catalogue import (
    REGISTRY,
    ApplyRoutes,
    ChannelCreate,
    GitSource,
    ImageSource,
    StartBuild,
    StartDeployment,
)

# --- DNS labels, host names, slugs, variable names ---------------------------------------------------------

GOOD_LABELS = ["a", "0", "web", "a-b", "a--b", "x1", "a" * 63]
BAD_LABELS = ["", "-a", "a-", "A", "a_b", "a.b", "a b", "a" * 64, "\u0430", "a\n"]


@pytest.mark.parametrize("value", GOOD_LABELS)
def test_dns_label_accepted(value):
    assert values.dns_label(value) == value
    assert TypeAdapter(values.DnsLabel).validate_python(value) == value


@pytest.mark.parametrize("value", BAD_LABELS)
def test_dns_label_refused(value):
    with pytest.raises(ValueError, match="1-63 lowercase"):
        values.dns_label(value)
    with pytest.raises(ValidationError):
        TypeAdapter(values.DnsLabel).validate_python(value)


@pytest.mark.parametrize(
    ("value", "normal"),
    [
        ("localhost", "localhost"),
        ("web-shop-production.localhost", "web-shop-production.localhost"),
        ("Shop.Example.COM", "shop.example.com"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("10.0.0.1", "10.0.0.1"),  # labels of digits are labels; the api refuses addresses itself
        (".".join(["a" * 63] * 3) + "." + "b" * 61, ".".join(["a" * 63] * 3) + "." + "b" * 61),  # 253
    ],
)
def test_host_name_accepted(value, normal):
    assert values.host_name(value) == normal
    assert TypeAdapter(values.HostName).validate_python(value) == normal
    assert values.HOST_NAME_RE.fullmatch(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "a..b",
        ".a",
        "a.",  # no trailing dot: proxy-sync would write it into a Traefik rule
        "-a.b",
        "a-.b",
        "a_b.localhost",
        "*.localhost",
        "a.localhost:80",
        "a.localhost`) || Host(`b",
        "a b.c",
        "ex\u0430mple.com",  # a Cyrillic 'a'
        "\u212a.example",  # the Kelvin sign folds to 'k' under IGNORECASE without ASCII
        "a" * 64 + ".com",
        ".".join(["a" * 63] * 3) + "." + "b" * 62,  # 254
        "a.b\n",
    ],
)
def test_host_name_refused(value):
    with pytest.raises(ValueError):
        values.host_name(value)
    with pytest.raises(ValidationError):
        TypeAdapter(values.HostName).validate_python(value)
    assert not values.HOST_NAME_RE.fullmatch(value)


def test_slug_and_variable_names():
    for good in ("a", "web", "a-1", "a" * 32):
        assert values.slug(good) == TypeAdapter(values.Slug).validate_python(good) == good
    for bad in ("", "-a", "a-", "Web", "a_b", "a" * 33):
        with pytest.raises(ValueError):
            values.slug(bad)
        with pytest.raises(ValidationError):
            TypeAdapter(values.Slug).validate_python(bad)
    for good in ("A", "_", "DATABASE_URL", "x1", "a" * 128):
        assert values.env_var_name(good) == TypeAdapter(values.EnvVarName).validate_python(good) == good
    for bad in ("", "1A", "A-B", "A B", "A=B", "A;B", "\u00c4", "a" * 129):
        with pytest.raises(ValueError):
            values.env_var_name(bad)
        with pytest.raises(ValidationError):
            TypeAdapter(values.EnvVarName).validate_python(bad)


def test_one_dns_label_for_the_codebase():
    assert values.DNS_LABEL_PATTERN == r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
    assert re.compile(values.SLUG_PATTERN).pattern == values.SLUG_RE.pattern


# --- image references --------------------------------------------------------------------------------------

DIGEST = "sha256:" + "a" * 64
GOOD_IMAGES = [
    "nginx",
    "nginx:1.27",
    "library/nginx:latest",
    "berth/app:0123abcd",
    "a__b/c-d:Tag_1",
    "a-b.c/d",
    "localhost:5000/team/app:v1.0",
    "registry.example.com:5000/a/b:c",
    "ghcr.io/acme/app@" + DIGEST,
    "ghcr.io/acme/app:1.0@" + DIGEST,
    "a" * 255,
]
BAD_IMAGES = [
    "",
    "Nginx",
    "App:1",
    "-nginx",
    "nginx:",
    "nginx:-x",
    "app:a b",
    "a;b",
    "a/../b",
    "a//b",
    "a:99999/b",
    "a:0/b",
    "nginx@sha256:xyz",
    "nginx@" + DIGEST + "x",
    "ng\u00efnx",
    "app:" + "t" * 129,
    "a" * 256,
    "nginx\n",
]


@pytest.mark.parametrize("value", GOOD_IMAGES)
def test_image_ref_accepted(value):
    assert values.image_ref(value) == value
    assert TypeAdapter(values.ImageRef).validate_python(value) == value
    assert re.fullmatch(values.IMAGE_REF_PATTERN, value)


@pytest.mark.parametrize("value", BAD_IMAGES)
def test_image_ref_refused(value):
    with pytest.raises(ValueError):
        values.image_ref(value)
    with pytest.raises(ValidationError):
        TypeAdapter(values.ImageRef).validate_python(value)


def test_image_tag_names_no_digest():
    assert values.image_tag("berth/app:d1") == "berth/app:d1"
    for value in ("app@" + DIGEST, "app:1@" + DIGEST):
        with pytest.raises(ValueError, match="no digest"):
            values.image_tag(value)
        with pytest.raises(ValidationError):
            TypeAdapter(values.ImageTag).validate_python(value)


# --- git repository URLs -----------------------------------------------------------------------------------

GOOD_URLS = [
    ("https://github.com/acme/app.git", "https", "https://github.com/acme/app.git"),
    ("https://github.com/acme/app", "https", "https://github.com/acme/app"),
    ("HTTPS://github.com/acme/app", "https", "HTTPS://github.com/acme/app"),
    ("http://127.0.0.1:8080/app.git", "http", "http://127.0.0.1:8080/app.git"),
    ("git://127.0.0.1:9418/app.git", "git", "git://127.0.0.1:9418/app.git"),
    ("ssh://git@example.com/acme/app.git", "ssh", "ssh://git@example.com/acme/app.git"),
    ("ssh://git@example.com:2222/acme/app.git", "ssh", "ssh://git@example.com:2222/acme/app.git"),
    ("https://[::1]:8443/app.git", "https", "https://[::1]:8443/app.git"),
    ("ssh://git@[2001:db8::1]/app.git", "ssh", "ssh://git@[2001:db8::1]/app.git"),
    ("git@github.com:acme/app.git", "ssh", "git@github.com:acme/app.git"),
    ("example.com:acme/app.git", "ssh", "example.com:acme/app.git"),
    ("git@[::1]:acme/app.git", "ssh", "git@[::1]:acme/app.git"),  # IPv6 in scp form
    ("[2001:db8::1]:app.git", "ssh", "[2001:db8::1]:app.git"),
]


@pytest.mark.parametrize(("url", "transport", "git_gets"), GOOD_URLS)
def test_git_url_accepted(url, transport, git_gets):
    where = values.git_location(url)
    assert (where.transport, where.url, where.display, where.local) == (transport, git_gets, url, False)
    assert values.git_url(url) == url
    assert TypeAdapter(values.GitUrl).validate_python(url) == url


BAD_URLS = [
    ("", "required"),
    ("https://example.com/" + "a" * 2048, "longer than 2048"),
    ("--upload-pack=touch", "may not start with '-'"),
    ("-uhttps://x.example/r.git", "may not start with '-'"),
    ("--upload-pack=touch /tmp/x", "whitespace"),
    ("https://exa mple.com/app.git", "whitespace"),
    ("https://example.com/app.git\n", "control characters"),
    ("https://example.com/a\x00b", "control characters"),
    ("https://x.ex\u00e1mple/r", "only ASCII"),
    ("https://example.com/app%0a.git", "percent-encoded"),
    ("https://example.com/app%7F", "percent-encoded"),
    ("ext::sh", "remote helpers"),
    ("fd::17", "remote helpers"),
    ("transport::https://example.com/x", "remote helpers"),
    ("file:///etc", "BERTH_ALLOW_LOCAL_GIT"),
    ("FILE:///etc", "BERTH_ALLOW_LOCAL_GIT"),
    ("/srv/git/app.git", "BERTH_ALLOW_LOCAL_GIT"),
    ("../../etc", "BERTH_ALLOW_LOCAL_GIT"),
    ("./repo", "BERTH_ALLOW_LOCAL_GIT"),
    ("repo", "BERTH_ALLOW_LOCAL_GIT"),
    ("ftp://example.com/app.git", "scheme 'ftp'"),
    ("javascript://x/y", "scheme 'javascript'"),
    # credentials: a password anywhere, a user name over http(s) (it is a token)
    ("https://user:pw@x.example/r", "credentials"),
    ("https://token@x.example/r", "credentials"),
    ("http://token@x.example/r", "credentials"),
    ("ssh://git:pw@example.com/r.git", "credentials"),
    ("git://u:p@example.com/r.git", "credentials"),
    # option injection through the host, the user or the path
    ("ssh://-oProxyCommand=touch/x", "host may not start with '-'"),
    ("https://-x.example/r", "host may not start with '-'"),
    ("ssh://-oProxyCommand@host/x", "invalid user name"),
    ("git@-oProxyCommand=x:r", "host may not start with '-'"),
    ("-@host:path", "may not start with '-'"),
    ("git@host:-path", "path may not start with '-'"),
    ("https://example.com/-x", "path may not start with '-'"),
    ("https://exa_mple.com/x", "invalid host name"),
    ("git@[zz]:x", "not a repository URL"),
    ("https:///x", "no host"),
    ("https://example.com", "no repository path"),
    ("https://example.com/", "no repository path"),
    ("https://example.com:99999/x", "Port out of range"),
    ("https://example.com:0/x", "invalid port"),
    ("https://x.example/r#frag", "fragment"),
]


@pytest.mark.parametrize(("url", "why"), BAD_URLS)
def test_git_url_refused(url, why):
    with pytest.raises(ValueError) as err:
        values.git_location(url)
    assert why in str(err.value)
    if "BERTH_ALLOW_LOCAL_GIT" not in why:  # the type takes local ones: the consumer's setting decides
        with pytest.raises(ValidationError):
            TypeAdapter(values.GitUrl).validate_python(url)


def test_local_repositories_only_when_allowed():
    where = values.git_location("/srv/git/app.git", allow_local=True)
    assert (where.transport, where.url, where.display, where.local) == (
        "file",
        "file:///srv/git/app.git",
        "/srv/git/app.git",
        True,
    )
    assert values.git_location("file:///srv/git/my%20app", allow_local=True).url == "file:///srv/git/my%20app"
    assert values.git_url("/srv/git/app", allow_local=True) == "/srv/git/app"  # given back as given
    # The type accepts local ones: the consumer's setting (BERTH_ALLOW_LOCAL_GIT) decides.
    assert TypeAdapter(values.GitUrl).validate_python("file:///srv/git/app") == "file:///srv/git/app"
    for bad in ("file://relative/x", "relative/path", "../../etc", "./repo", "/srv/../etc", "/srv//x", "/srv/./x"):
        with pytest.raises(ValueError, match=r"absolute|normalised"):
            values.git_location(bad, allow_local=True)
    for bad in ("ext::sh -c x", "--upload-pack=x", "file:///x\n", "file:///srv/%2e%2e/etc"):
        with pytest.raises(ValueError):
            values.git_location(bad, allow_local=True)


# --- git refs ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "name"),
    [
        ("main", "main"),
        ("HEAD", "HEAD"),
        ("feature/new-ui", "feature/new-ui"),
        ("v1.2.3", "v1.2.3"),
        ("release_2026", "release_2026"),
        ("refs/heads/main", "main"),
        ("refs/tags/v1", "v1"),
        ("a" * 40, "a" * 40),
        ("deadbee", "deadbee"),
        ("x" * 255, "x" * 255),
    ],
)
def test_git_ref_accepted(ref, name):
    assert values.git_ref_name(ref) == name
    assert values.git_ref(ref) == ref
    assert TypeAdapter(values.GitRef).validate_python(ref) == ref


@pytest.mark.parametrize(
    "ref",
    [
        "",
        "-b",
        "--upload-pack=x",
        "main\n",
        "tab\there",
        "del\x7f",
        "ma in",
        "\u00e9",
        "a..b",
        "a@{1}",
        "@{-1}",
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
        "refs/heads/",
        "x" * 256,
    ],
)
def test_git_ref_refused(ref):
    with pytest.raises(ValueError):
        values.git_ref(ref)
    with pytest.raises(ValidationError):
        TypeAdapter(values.GitRef).validate_python(ref)


# --- the catalogue ----------------------------------------------------------------------------------------


def _start_build(**source: str) -> StartBuild:
    return StartBuild(
        build_id="b1",
        deployment_id="d1",
        application_id="a1",
        source=GitSource(**{"repository": "https://example.com/r.git", "ref": "main", **source}),
        image_tag="berth/app:d1",
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("repository", "--upload-pack=touch /tmp/x"),
        ("repository", "ext::sh"),
        ("repository", "https://user:tok@example.com/r.git"),
        ("ref", "--upload-pack=x"),
        ("ref", "a..b"),
    ],
)
def test_a_command_with_a_bad_git_source_cannot_be_built(field, value):
    with pytest.raises(ValidationError) as err:
        _start_build(**{field: value})
    assert err.value.errors()[0]["loc"] == (field,)


@pytest.mark.parametrize("image", ["-rm", "Nginx", "a/../b", "nginx@sha256:xyz", "a:99999/b"])
def test_a_message_with_a_bad_image_cannot_be_built(image):
    with pytest.raises(ValidationError):
        ImageSource(image=image)
    with pytest.raises(ValidationError):
        StartBuild(
            build_id="b1",
            deployment_id="d1",
            application_id="a1",
            source=GitSource(repository="https://example.com/r.git", ref="main"),
            image_tag=image,
        )
    with pytest.raises(ValidationError):
        StartDeployment(
            deployment_id="d1",
            application_id="a1",
            team_id="t1",
            spec={
                "name": "shop",
                "source": {"kind": "image", "image": image},
                "services": [{"kind": "worker", "name": "w"}],
            },
        )


def test_bad_hosts_and_names_cannot_be_built():
    with pytest.raises(ValidationError):
        ApplyRoutes(route_id="r", hosts=["a.localhost`) || Host(`b"], upstreams=["http://127.0.0.1:1"])
    with pytest.raises(ValidationError):
        ChannelCreate(team_id="t", name="Ops", target={"kind": "slack"})
    assert ApplyRoutes(route_id="r", hosts=["Web.Localhost"], upstreams=["http://127.0.0.1:1"]).hosts == [
        "web.localhost"
    ]


def test_a_received_message_leaves_the_shared_rules_to_a_consumer_that_checks_them():
    """As the bus consumer parses: a bad URL, ref or host reaches the builder or proxy-sync, which check it
    and answer with their failure event; any other consumer refuses it (the message is dead-lettered).
    The field constraints hold either way."""
    bad_source = {"kind": "git", "repository": "--upload-pack=x", "ref": "a..b"}
    build = {"build_id": "b1", "deployment_id": "d1", "application_id": "a1", "image_tag": "berth/a:d1"}
    received = parse_received(StartBuild, {**build, "source": bad_source})
    assert isinstance(received, StartBuild)
    assert (received.source.repository, received.source.ref) == ("--upload-pack=x", "a..b")
    with pytest.raises(ValidationError):
        parse_received(StartBuild, {**build, "source": {**bad_source, "repository": "x" * 2049}})
    with pytest.raises(ValidationError):  # a pattern holds on receipt too
        parse_received(StartBuild, {**build, "source": {**bad_source, "repository": "x"}, "image_tag": "-rm"})
    routes = {"route_id": "r", "hosts": ["bad_host.localhost"], "upstreams": ["http://127.0.0.1:1"]}
    assert parse_received(ApplyRoutes, routes).hosts == ["bad_host.localhost"]
    deploy = {"deployment_id": "d1", "application_id": "a1", "team_id": "t1"}
    spec = {"name": "shop", "source": bad_source, "services": [{"kind": "worker", "name": "w"}]}
    with pytest.raises(ValidationError):
        parse_received(StartDeployment, {**deploy, "spec": spec})
    assert [m.TYPE for m in REGISTRY.values() if m.CONSUMER_CHECKS_VALUES] == ["cmd.build.start", "cmd.route.apply"]


def test_the_rules_show_in_the_json_schema():
    schema = StartBuild.model_json_schema()
    git = schema["$defs"]["GitSource"]["properties"]
    assert git["repository"]["maxLength"] == values.MAX_URL and git["ref"]["maxLength"] == values.MAX_REF
    assert schema["properties"]["image_tag"]["pattern"] == values.IMAGE_TAG_PATTERN
    hosts = ApplyRoutes.model_json_schema()["properties"]["hosts"]["items"]
    assert hosts["format"] == "hostname"


@pytest.mark.parametrize(
    ("given", "expected"),
    [("10.77.3.2", "10.77.3.2"), ("Web-1.Example.com", "web-1.example.com"), ("::1", "::1"), ("fe80::1", "fe80::1")],
)
def test_server_addresses_accepted(given: str, expected: str) -> None:
    assert values.server_address(given) == expected


@pytest.mark.parametrize("given", ["-oProxyCommand=x", "a b", "host;id", "host:22", "[::1]", "", "h\nx", "ssh://h"])
def test_server_addresses_refused(given: str) -> None:
    with pytest.raises(ValueError):
        values.server_address(given)
