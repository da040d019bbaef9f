"""Traefik's default certificate: written once by proxy-sync, never taken for a route, and what it saves
(Traefik's CPU per reload, measured against the same Traefik without it)."""

from __future__ import annotations

import datetime as dt
import os
import time

import psutil
import yaml

from berth_proxy_sync.adapters.files import DynamicDir
from berth_proxy_sync.domain import certificate
from berth_proxy_sync.domain.certificate import CERT_MARKER, DEFAULT_CERT_FILE
from berth_proxy_sync.domain.routes import MANAGED_MARKER, SENTINEL_FILE, Route, render, route_id_of_file
from berth_proxy_sync.usecases.routes import ensure_default_certificate


def test_the_file_is_one_default_store_with_inline_pem():
    cert, key = certificate.self_signed()
    text = certificate.render_certificate(cert, key)
    assert text.startswith(CERT_MARKER) and not text.startswith(MANAGED_MARKER)
    assert yaml.safe_load(text) == {
        "tls": {"stores": {"default": {"defaultCertificate": {"certFile": cert, "keyFile": key}}}}
    }
    assert cert.startswith("-----BEGIN CERTIFICATE-----") and key.startswith("-----BEGIN PRIVATE KEY-----")
    assert certificate.still_good(text)
    assert route_id_of_file(DEFAULT_CERT_FILE) is None  # a reserved name: never a route's file


def test_a_broken_foreign_or_expiring_file_is_not_good():
    cert, key = certificate.self_signed()
    good = certificate.render_certificate(cert, key)
    assert not certificate.still_good(None)
    assert not certificate.still_good(good.replace(CERT_MARKER, "# someone else's\n"))
    assert not certificate.still_good(CERT_MARKER + "tls: {stores: {}}\n")
    assert not certificate.still_good(good.replace("MI", "xx", 3))  # damaged PEM
    assert not certificate.still_good(good[: len(good) // 2])
    nine_years = dt.datetime.now(dt.UTC) + dt.timedelta(days=9 * 365 + 340)
    assert certificate.still_good(good, now=dt.datetime.now(dt.UTC) + dt.timedelta(days=365))
    assert not certificate.still_good(good, now=nine_years)  # within 30 days of its end: made again


def test_written_once_kept_repaired_and_removed_when_turned_off(tmp_path):
    d = DynamicDir(tmp_path / "dynamic")
    d.ensure()
    (d.directory / SENTINEL_FILE).write_text("sentinel")
    assert ensure_default_certificate(d) is True
    path = d.directory / DEFAULT_CERT_FILE
    first, ino = path.read_text(), os.stat(path).st_ino
    assert ensure_default_certificate(d) is False  # kept as it is: no reload for Traefik
    assert path.read_text() == first and os.stat(path).st_ino == ino
    assert d.managed_files() == []  # never mistaken for a route file by the reconcile
    path.write_text(CERT_MARKER + "half a fi")
    assert ensure_default_certificate(d) is True and certificate.still_good(path.read_text())
    assert path.read_text() != first  # a new certificate
    assert ensure_default_certificate(d, wanted=False) is True and not path.exists()
    assert ensure_default_certificate(d, wanted=False) is False
    path.write_text("tls: {stores: {default: {}}}\n")  # an operator's own file of that name: left alone
    assert ensure_default_certificate(d, wanted=False) is False and path.exists()


def _reload_cpu_ms(traefik, upstream_url: str, prefix: str, changes: int = 6) -> float:
    """Traefik's CPU per reload: ``changes`` new routes, each waited for through the API, minus idle CPU."""
    assert traefik.proc is not None and traefik.proc.proc is not None
    proc = psutil.Process(traefik.proc.proc.pid)
    files = DynamicDir(traefik.dynamic_dir)
    traefik.open_api()
    time.sleep(0.5)
    c0, t0 = sum(proc.cpu_times()[:2]), time.monotonic()
    for i in range(changes):
        rid = f"{prefix}{i}"
        files.write(f"{rid}.yml", render(Route.create(rid, [f"{rid}.localhost"], [upstream_url])))
        deadline = time.monotonic() + 20
        while True:
            try:
                with traefik.api_get(f"/api/http/services/route-{rid}@file", 2):
                    break
            except OSError:
                assert time.monotonic() < deadline, f"route {rid} never appeared in Traefik's API"
                time.sleep(0.01)
        assert traefik.get(f"{rid}.localhost")[0] == 200
        time.sleep(0.1)
    busy = sum(proc.cpu_times()[:2]) - c0
    elapsed = time.monotonic() - t0
    c1 = sum(proc.cpu_times()[:2])
    time.sleep(1.0)
    idle_per_s = sum(proc.cpu_times()[:2]) - c1
    return max(0.0, busy - idle_per_s * elapsed) * 1000 / changes


def test_traefik_reloads_cheaply_with_the_certificate(traefik, upstream, unique):
    """Without a default certificate Traefik makes an RSA key at every reload (the control, same Traefik);
    with ours, the routes still go live (the file is accepted) and a reload costs a fraction."""
    a = upstream("A")
    without = _reload_cpu_ms(traefik, a.url, f"n{unique}-")
    assert ensure_default_certificate(DynamicDir(traefik.dynamic_dir)) is True
    with_cert = _reload_cpu_ms(traefik, a.url, f"c{unique}-")
    print(f"\nMEASURED Traefik CPU per reload: {without:.1f} ms without, {with_cert:.1f} ms with the certificate")
    assert without > 25.0, without  # the control: key generation shows
    assert with_cert < without / 2, (with_cert, without)
