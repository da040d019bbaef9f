"""The Traefik API client against a real Traefik: what counts as live, what as gone, and the reasons."""

from __future__ import annotations

import pytest

from berth_proxy_sync.adapters.files import DynamicDir
from berth_proxy_sync.adapters.traefik_api import NotLiveError, TraefikApi
from berth_proxy_sync.domain.routes import Route, render
from berth_proxy_sync.settings import ProxySyncSettings
from tests.proxy.support import API_PASSWORD


async def test_live_gone_and_mismatch_reasons(traefik, unique):
    api = TraefikApi(traefik.api_url, password=API_PASSWORD)
    with pytest.raises(NotLiveError, match=r"within 0\.2s: router route-x@file still answers HTTP 503"):
        await api.wait_gone("x", 0.2)  # before the sentinel, no API answers: a removal is not confirmed
    traefik.open_api()
    files = DynamicDir(traefik.dynamic_dir)
    rid = f"web-{unique}"
    route = Route.create(rid, [f"{rid}.localhost"], ["http://127.0.0.1:1001", "http://127.0.0.1:1002"])
    try:
        with pytest.raises(NotLiveError, match=r"within 0\.2s: service route-web-\w+@file: HTTP 404"):
            await api.wait_live(route, 0.2)
        assert await api.wait_gone(rid, 0.2) >= 0
        files.write(route.file_name, render(route))
        assert 0 <= await api.wait_live(route, 10) < 10
        other_servers = Route.create(rid, [f"{rid}.localhost"], ["http://127.0.0.1:1001"])
        with pytest.raises(NotLiveError, match="service servers"):
            await api.wait_live(other_servers, 0.2)
        other_host = Route.create(rid, [f"x{rid}.localhost"], list(route.upstreams))
        with pytest.raises(NotLiveError, match="router rule"):
            await api.wait_live(other_host, 0.2)
        with pytest.raises(NotLiveError, match="still answers HTTP 200"):
            await api.wait_gone(rid, 0.2)
        files.delete(route.file_name)
        assert await api.wait_gone(rid, 10) < 10
    finally:
        await api.close()


def test_settings_defaults_and_url_check(tmp_path, monkeypatch):
    s = ProxySyncSettings(data_dir=tmp_path)
    assert s.dynamic_dir == tmp_path / "traefik" / "dynamic"
    assert s.traefik_api_url == "http://127.0.0.1:8081"
    assert ProxySyncSettings(traefik_dynamic_dir=tmp_path / "d").dynamic_dir == tmp_path / "d"
    with pytest.raises(ValueError):
        ProxySyncSettings(traefik_api_url="file:///etc/passwd")
    monkeypatch.setenv("BERTH_TRAEFIK_DYNAMIC_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("BERTH_TRAEFIK_API_URL", "http://127.0.0.1:9/")
    s = ProxySyncSettings()
    assert (s.dynamic_dir, s.traefik_api_url) == (tmp_path / "env", "http://127.0.0.1:9")
