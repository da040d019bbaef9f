"""proxy-sync domain: routes to Traefik dynamic configuration, by exact comparison; validation."""

from __future__ import annotations

import pytest
import yaml

from berth_proxy_sync.domain.routes import (
    MANAGED_MARKER,
    SENTINEL_FILE,
    Route,
    RouteError,
    check_hostname,
    check_upstream,
    render,
    render_files,
    route_config,
    route_id_of_file,
)


def web_route(**kw):
    args = {
        "route_id": "web-shop-production",
        "hosts": ["web-shop-production.localhost", "Shop.Example.COM"],
        "upstreams": ["http://172.17.0.5:8080", "http://172.17.0.6:8080"],
    }
    args.update(kw)
    return Route.create(**args)


def test_route_config_exact():
    assert route_config(web_route()) == {
        "http": {
            "routers": {
                "route-web-shop-production": {
                    "rule": "Host(`shop.example.com`) || Host(`web-shop-production.localhost`)",
                    "service": "route-web-shop-production",
                    "entryPoints": ["web"],
                }
            },
            "services": {
                "route-web-shop-production": {
                    "loadBalancer": {
                        "passHostHeader": True,
                        "servers": [{"url": "http://172.17.0.5:8080"}, {"url": "http://172.17.0.6:8080"}],
                    }
                }
            },
        }
    }


def test_render_is_exact_and_deterministic():
    text = render(web_route())
    assert text == (
        MANAGED_MARKER + "http:\n"
        "  routers:\n"
        "    route-web-shop-production:\n"
        "      entryPoints:\n"
        "      - web\n"
        "      rule: Host(`shop.example.com`) || Host(`web-shop-production.localhost`)\n"
        "      service: route-web-shop-production\n"
        "  services:\n"
        "    route-web-shop-production:\n"
        "      loadBalancer:\n"
        "        passHostHeader: true\n"
        "        servers:\n"
        "        - url: http://172.17.0.5:8080\n"
        "        - url: http://172.17.0.6:8080\n"
    )
    # host order and case in the command do not change the bytes
    assert render(web_route(hosts=["web-shop-production.localhost", "shop.example.com", "SHOP.example.com"])) == text
    assert yaml.safe_load(text) == route_config(web_route())


def test_render_files_one_file_per_owner_with_unique_names():
    a = web_route()
    b = Route.create(
        "worker-api-staging", ["api-staging.localhost"], ["http://127.0.0.1:9001"], entry_point="websecure"
    )
    files = render_files([b, a])
    assert list(files) == ["web-shop-production.yml", "worker-api-staging.yml"]
    names = [n for cfg in files.values() for n in cfg["http"]["routers"]]
    assert names == ["route-web-shop-production", "route-worker-api-staging"]
    assert files["worker-api-staging.yml"]["http"]["routers"]["route-worker-api-staging"]["entryPoints"] == [
        "websecure"
    ]
    assert SENTINEL_FILE not in files


def test_render_files_rejects_a_host_claimed_twice_and_duplicate_ids():
    a = web_route()
    clash = Route.create("other", ["SHOP.example.com"], ["http://127.0.0.1:1"])
    with pytest.raises(RouteError, match=r"shop\.example\.com"):
        render_files([a, clash])
    with pytest.raises(RouteError, match="twice"):
        render_files([a, a])


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "a.b",
        "web-app-production.localhost",
        "x" * 63 + ".example.com",
        "1.example",
        "xn--bcher-kva.example",
        ".".join(["a" * 61] * 4),  # 247 characters
        "*.example.com",  # a wildcard: one label (tests/proxy/test_wildcard_hosts.py)
    ],
)
def test_valid_hostnames(host):
    assert check_hostname(host) == host


@pytest.mark.parametrize(
    "host",
    [
        "",
        "*.com",  # a wildcard names two labels or more after it
        "*",
        "a.*.example.com",
        "**.example.com",
        "*a.example.com",
        "*.*.example.com",
        "example.com.",
        ".example.com",
        "-a.example",
        "a-.example",
        "a..b",
        "a_b.example",
        "x" * 64 + ".example",
        "example.com:8080",
        "a.b`) || PathPrefix(`/",
        "ex ample.com",
        "exämple.com",
        "a/b",
        ".".join(["a" * 63] * 4),  # 255 characters
    ],
)
def test_invalid_hostnames_are_refused(host):
    with pytest.raises(RouteError):
        check_hostname(host)
    with pytest.raises(RouteError):
        web_route(hosts=["ok.localhost", host])


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("HTTP://App-1.Internal:80", "http://app-1.internal:80"),
        ("https://[::1]:8443", "https://[::1]:8443"),
    ],
)
def test_upstreams_are_normalised(url, normal):
    assert check_upstream(url) == normal


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1",
        "ftp://127.0.0.1:21",
        "http://user:pw@127.0.0.1:80",
        "http://127.0.0.1:80/path",
        "http://127.0.0.1:80?x=1",
        "http://127.0.0.1:99999",
        "http://bad_host:80",
        "http://a`b:80",
        "127.0.0.1:8080",
        "http://127.0.0.1:80 ",
    ],
)
def test_bad_upstreams_are_refused(url):
    with pytest.raises(RouteError):
        check_upstream(url)


@pytest.mark.parametrize("rid", ["", "-a", "a-", "A", "a.b", "../x", "a/b", "000-berth-sentinel", "x" * 65])
def test_bad_route_ids(rid):
    with pytest.raises(RouteError):
        web_route(route_id=rid)


def test_route_needs_hosts_and_upstreams_and_a_valid_entry_point():
    with pytest.raises(RouteError):
        web_route(hosts=[])
    with pytest.raises(RouteError):
        web_route(upstreams=[])
    with pytest.raises(RouteError):
        web_route(entry_point="Web Secure")
    with pytest.raises(RouteError):
        web_route(generation=-1)


def test_upstreams_deduplicated_in_order():
    r = web_route(upstreams=["http://127.0.0.1:2", "http://127.0.0.1:1", "http://127.0.0.1:2/"])
    assert r.upstreams == ("http://127.0.0.1:2", "http://127.0.0.1:1")


def test_route_id_of_file():
    assert route_id_of_file("web-a.yml") == "web-a"
    assert route_id_of_file(SENTINEL_FILE) is None
    assert route_id_of_file(".berth-web-a.yml.tmp-abc") is None
    assert route_id_of_file("web-a.yaml") is None
