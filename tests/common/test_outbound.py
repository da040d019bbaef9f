"""The outbound rule: every spelling of an address is read as the resolver reads it, and the policy decides."""

from __future__ import annotations

import ipaddress

import pytest

from berth_common.outbound import HostError, OutboundPolicy, Refusal, classify, normalize_host, url_host

IP = ipaddress.ip_address
DEFAULT = OutboundPolicy()


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("2130706433", IP("127.0.0.1")),
        ("0x7f.1", IP("127.0.0.1")),
        ("0x7f000001", IP("127.0.0.1")),
        ("0177.0.0.1", IP("127.0.0.1")),
        ("127.1", IP("127.0.0.1")),
        ("0251.0376.0251.0376", IP("169.254.169.254")),
        ("0xa9.0xfe.0xa9.0xfe", IP("169.254.169.254")),
        ("169.254.43518", IP("169.254.169.254")),
        ("0", IP("0.0.0.0")),
        ("[::1]", IP("::1")),
        ("[fe80::1%eth0]", IP("fe80::1")),
        ("::ffff:127.0.0.1", IP("::ffff:127.0.0.1")),
        ("LocalHost.", "localhost"),
        ("Example.COM.", "example.com"),
        ("\uff11\uff12\uff17\uff0e\uff10\uff0e\uff10\uff0e\uff11", IP("127.0.0.1")),  # full-width digits and dots
        ("b\u00fccher.example", "xn--bcher-kva.example"),
        ("metadata.google.internal.", "metadata.google.internal"),
    ],
)
def test_a_host_is_read_as_the_resolver_reads_it(host: str, expected: object) -> None:
    assert normalize_host(host) == expected


@pytest.mark.parametrize("host", ["", ".", "a..b", "-x.example", "256.1.1.1", "1.2.3.4.5.6", "::zz", "a b"])
def test_what_is_not_a_host_is_an_error(host: str) -> None:
    with pytest.raises(HostError):
        normalize_host(host)


@pytest.mark.parametrize(
    ("address", "category"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::127.0.0.1", "loopback"),
        ("64:ff9b::7f00:1", "loopback"),
        ("2002:7f00:1::", "loopback"),
        ("169.254.169.254", "metadata"),
        ("::ffff:169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("100.100.100.200", "metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("255.255.255.255", "reserved"),
        ("240.0.0.1", "reserved"),
        ("192.0.2.10", "reserved"),
        ("10.77.0.2", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "private"),
        ("fd12:3456::1", "private"),
        ("::ffff:10.0.0.1", "private"),
        ("93.184.216.34", "public"),
        ("2606:4700::1111", "public"),
        ("::ffff:8.8.8.8", "public"),
    ],
)
def test_every_address_has_one_category(address: str, category: str) -> None:
    assert classify(IP(address)) == category


@pytest.mark.parametrize(
    ("url", "refusal"),
    [
        ("http://127.0.0.1/", Refusal("loopback", "127.0.0.1")),
        ("http://2130706433/", Refusal("loopback", "127.0.0.1")),
        ("http://0x7f.1/", Refusal("loopback", "127.0.0.1")),
        ("http://[::ffff:127.0.0.1]:8080/x", Refusal("loopback", str(IP("::ffff:127.0.0.1")))),
        ("http://[::1]/", Refusal("loopback", "::1")),
        ("https://localhost./hook", Refusal("loopback", "localhost")),
        ("https://api.localhost/hook", Refusal("loopback", "api.localhost")),
        ("http://169.254.169.254/latest/meta-data/", Refusal("metadata", "169.254.169.254")),
        ("http://[fd00:ec2::254]/", Refusal("metadata", "fd00:ec2::254")),
        ("http://metadata.google.internal./computeMetadata/v1/", Refusal("metadata", "metadata.google.internal")),
        ("http://0.0.0.0:8420/", Refusal("unspecified", "0.0.0.0")),
        ("http://[::]/", Refusal("unspecified", "::")),
        ("http://[fe80::1]/", Refusal("link-local", "fe80::1")),
        ("git@127.0.0.1:team/app.git", Refusal("loopback", "127.0.0.1")),
        ("ssh://git@[::1]:22/team/app.git", Refusal("loopback", "::1")),
        ("https://10.0.0.5/hook", None),
        ("https://hooks.slack.com/services/T0/B0/x", None),
        ("git@github.com:team/app.git", None),
    ],
)
def test_the_default_policy_refuses_loopback_link_local_metadata_and_unspecified(
    url: str, refusal: Refusal | None
) -> None:
    assert DEFAULT.check_url(url) == refusal


def test_private_ranges_follow_the_platform_setting() -> None:
    closed = OutboundPolicy(allow_private=False)
    assert closed.check_url("https://10.0.0.5/") == Refusal("private", "10.0.0.5")
    assert closed.check_url("https://[fd12::1]/") == Refusal("private", "fd12::1")
    assert closed.check_url("https://example.com/") is None
    assert closed.with_allowance(["10.0.0.0/24"]).check_url("https://10.0.0.5/") is None
    assert closed.with_allowance(["10.0.0.0/24"]).check_url("https://10.0.1.5/") == Refusal("private", "10.0.1.5")


def test_an_allowance_lets_exactly_its_ranges_and_names_through() -> None:
    policy = DEFAULT.with_allowance(["127.0.0.1", "fe80::/64", "Git.Internal."])
    assert policy.check_url("http://127.0.0.1:9000/") is None
    assert policy.check_url("http://2130706433/") is None
    assert policy.check_url("http://[::ffff:127.0.0.1]/") is None
    assert policy.check_url("http://127.0.0.2/") == Refusal("loopback", "127.0.0.2")
    assert policy.check_url("http://[fe80::5]/") is None
    assert policy.check_url("http://169.254.169.254/") == Refusal("metadata", "169.254.169.254")
    assert policy.check_address(IP("127.0.0.9"), "git.internal") is None
    assert policy.check_address(IP("127.0.0.9"), "other.internal") == Refusal("loopback", "127.0.0.9")
    assert DEFAULT.names == frozenset() and DEFAULT.networks == ()
    assert policy.check_url("http://localhost:8080/") is None  # localhost is 127.0.0.1
    assert policy.check_url("http://metadata.google.internal/") == Refusal("metadata", "metadata.google.internal")


def test_a_bad_allowance_entry_is_named() -> None:
    with pytest.raises(ValueError, match="'not a host'"):
        OutboundPolicy.from_entries(["10.0.0.0/8", "not a host"])


def test_the_reason_names_the_rule_and_how_to_allow_it() -> None:
    assert Refusal("metadata", "169.254.169.254").reason == (
        "outbound rule: 169.254.169.254 is a cloud metadata address; an admin can allow it "
        "(BERTH_OUTBOUND_ALLOW, or the team's outbound allowance)"
    )


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://user:pw@Example.com:8443/x", "example.com"),
        ("git@github.com:team/app.git", "github.com"),
        ("deploy@[::1]:team/app.git", "[::1]"),
        ("ssh://git@host.example:2222/x.git", "host.example"),
    ],
)
def test_the_host_of_a_url(url: str, host: str) -> None:
    assert url_host(url) == host


@pytest.mark.parametrize("url", ["/local/path", "https:///nohost", "relative/dir"])
def test_a_url_without_a_host_is_an_error(url: str) -> None:
    with pytest.raises(HostError):
        url_host(url)
