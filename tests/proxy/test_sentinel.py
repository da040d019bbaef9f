"""The sentinel route file: proxy-sync writes it at start, before any route file, so removing the last route
never leaves Traefik an empty configuration (which Traefik ignores, serving the removed route on)."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from berth_proxy_sync.adapters.files import DynamicDir, UnsafePathError
from berth_proxy_sync.domain.routes import MANAGED_MARKER, SENTINEL_FILE, render_sentinel, route_id_of_file
from tests.proxy.support import API_PASSWORD, ProxySync


def test_the_sentinel_routes_a_host_that_cannot_exist_to_a_closed_port_and_guards_the_api():
    # the password's SHA-1 (htpasswd's {SHA} form): base64 of sha1(b"pw")
    assert json.loads(render_sentinel("pw")) == {
        "http": {
            "routers": {
                "berth-sentinel": {
                    "rule": "Host(`berth-sentinel.invalid`)",
                    "service": "berth-sentinel",
                    "entryPoints": ["web"],
                },
                "berth-api": {
                    "rule": "PathPrefix(`/api`)",
                    "service": "api@internal",
                    "entryPoints": ["traefik"],
                    "middlewares": ["berth-api-auth"],
                },
            },
            "middlewares": {
                "berth-api-auth": {
                    "basicAuth": {"users": ["proxy-sync:{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM="], "removeHeader": True}
                },
                # the web entry points' body reader, named by the static configuration
                "berth-body-read": {"plugin": {"berthbodyread": {"maxBytes": 1048576}}},
            },
            "services": {"berth-sentinel": {"loadBalancer": {"servers": [{"url": "http://127.0.0.1:9"}]}}},
        }
    }
    assert route_id_of_file(SENTINEL_FILE) is None


def test_written_once_repaired_and_never_a_route_file(tmp_path):
    d = DynamicDir(tmp_path / "dynamic")
    d.ensure()
    path = d.directory / SENTINEL_FILE
    assert d.write_sentinel(render_sentinel(API_PASSWORD)) is True
    assert path.read_text() == render_sentinel(API_PASSWORD)
    ino = os.stat(path).st_ino
    assert d.write_sentinel(render_sentinel(API_PASSWORD)) is False  # unchanged: no event for Traefik
    assert os.stat(path).st_ino == ino
    path.write_text("damaged")
    assert d.write_sentinel(render_sentinel(API_PASSWORD)) is True
    assert path.read_text() == render_sentinel(API_PASSWORD)
    assert d.managed_files() == []
    for name_op in (d.read, d.delete, lambda name: d.write(name, MANAGED_MARKER)):
        with pytest.raises(UnsafePathError):
            name_op(SENTINEL_FILE)
    assert sorted(os.listdir(d.directory)) == [SENTINEL_FILE]


def _sentinel_loaded(traefik) -> bool:
    try:
        with traefik.api_get("/api/http/routers/berth-sentinel@file", 1) as r:
            return r.status == 200
    except OSError:
        return False


async def test_removing_the_last_route_unroutes_its_host_without_a_default_certificate(
    traefik, upstream, proxy_settings, routes, unique
):
    # without the default certificate's TLS store, the sentinel is all that keeps the configuration non-empty
    assert list(traefik.dynamic_dir.iterdir()) == [] and not _sentinel_loaded(traefik)
    svc = await ProxySync(proxy_settings.model_copy(update={"traefik_default_cert": False})).start()
    try:
        a = upstream("A")
        host, rid = f"web-{unique}.localhost", f"web-{unique}"
        await routes.apply(rid, [host], [a.url], generation=1)
        assert (await routes.wait(rid, 1))["type"] == "evt.route.applied"
        assert sorted(p.name for p in traefik.dynamic_dir.iterdir()) == [SENTINEL_FILE, f"{rid}.yml"]
        assert _sentinel_loaded(traefik)
        assert traefik.get(host) == (200, b"A")
        await routes.remove(rid, generation=2)
        assert (await routes.wait(rid, 2))["type"] == "evt.route.removed"
        assert sorted(p.name for p in traefik.dynamic_dir.iterdir()) == [SENTINEL_FILE]
        await asyncio.sleep(0.3)
        assert traefik.get(host)[0] == 404
    finally:
        await svc.stop()
