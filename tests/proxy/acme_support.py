"""A real ACME server for the HTTPS tests and the tls benchmark: Debian's ``pebble`` and
``pebble-challtestsrv`` on loopback, and a Traefik with its HTTPS entry point and ACME resolvers.

- ``Pebble``: a CA of our own signs the certificate pebble's ACME API is served with (the package ships
  none); Traefik trusts it through ``BERTH_ACME_CA_BUNDLE`` (``LEGO_CA_CERTIFICATES``). pebble validates
  challenges against Traefik's web and websecure ports and resolves names through challtestsrv's DNS,
  which answers 127.0.0.1 for every name (no AAAA), unless ``add_a`` says otherwise.
- ``TlsTraefik``: ``components.traefik_launch`` with ``websecure_port`` and the ACME settings.
- ``cert_pair``: a CA and a leaf for some hosts (uploaded certificates).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import http.client
import json
import shutil
import socket
import ssl
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from berth_cli import components
from tests.proxy.support import Traefik
from tests.support.procs import Proc, wait_port


def available() -> bool:
    return bool(shutil.which("pebble") and shutil.which("pebble-challtestsrv"))


def _pem_key(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def cert_pair(hosts: list[str], *, ips: list[str] = (), days: int = 90) -> tuple[str, str, str]:  # type: ignore[assignment]
    """(CA PEM, leaf chain PEM (leaf then CA), leaf key PEM) for ``hosts`` (and ``ips``)."""
    import ipaddress

    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "berth test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(h) for h in hosts]
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem = ca.public_bytes(serialization.Encoding.PEM).decode()
    chain = leaf.public_bytes(serialization.Encoding.PEM).decode() + ca_pem
    return ca_pem, chain, _pem_key(key)


@dataclass
class Pebble:
    root: Path
    web_port: int  # Traefik's web entry point (HTTP-01)
    tls_port: int  # Traefik's websecure entry point (TLS-ALPN-01)
    acme_port: int = field(default_factory=components.free_port)
    mgmt_port: int = field(default_factory=components.free_port)
    dns_port: int = field(default_factory=components.free_port)
    chall_mgmt_port: int = field(default_factory=components.free_port)
    validity_s: int | None = None  # how long the certificates it issues are valid (pebble's default: 5 years)
    procs: list[Proc] = field(default_factory=list)

    @property
    def ca_bundle(self) -> Path:
        return self.root / "pebble-api-ca.pem"

    @property
    def directory_url(self) -> str:
        return f"https://127.0.0.1:{self.acme_port}/dir"

    @property
    def dns_server(self) -> str:
        return f"127.0.0.1:{self.dns_port}"

    @property
    def log(self) -> Path:
        return self.root / "pebble.log"

    def start(self) -> Pebble:
        self.root.mkdir(parents=True, exist_ok=True)
        ca_pem, chain, key = cert_pair(["localhost"], ips=["127.0.0.1"])
        self.ca_bundle.write_text(ca_pem)
        (self.root / "api-cert.pem").write_text(chain)
        (self.root / "api-key.pem").write_text(key)
        config = {
            "pebble": {
                "listenAddress": f"127.0.0.1:{self.acme_port}",
                "managementListenAddress": f"127.0.0.1:{self.mgmt_port}",
                "certificate": str(self.root / "api-cert.pem"),
                "privateKey": str(self.root / "api-key.pem"),
                "httpPort": self.web_port,
                "tlsPort": self.tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": False,
            }
        }
        if self.validity_s is not None:
            config["pebble"]["certificateValidityPeriod"] = self.validity_s
        (self.root / "pebble.json").write_text(json.dumps(config))
        chall = components.Launch(
            "pebble-challtestsrv",
            [
                "pebble-challtestsrv",
                "-defaultIPv4",
                "127.0.0.1",
                "-defaultIPv6",
                "",
                "-dns01",
                f"127.0.0.1:{self.dns_port}",
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
                "-management",
                f"127.0.0.1:{self.chall_mgmt_port}",
            ],
        )
        proc = Proc(chall, self.root / "challtestsrv.log").start()
        self.procs.append(proc)
        wait_port(self.chall_mgmt_port, proc=proc)
        pebble = components.Launch(
            "pebble",
            ["pebble", "-config", str(self.root / "pebble.json"), "-dnsserver", self.dns_server],
            {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"},
        )
        proc = Proc(pebble, self.log).start()
        self.procs.append(proc)
        wait_port(self.acme_port, proc=proc)
        wait_port(self.mgmt_port, proc=proc)
        return self

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()

    def _mgmt(self, path: str) -> str:
        ctx = ssl.create_default_context(cafile=str(self.ca_bundle))
        with urllib.request.urlopen(f"https://127.0.0.1:{self.mgmt_port}{path}", context=ctx, timeout=5) as r:
            return r.read().decode()

    def root_pem(self) -> str:
        """The root that signs the certificates pebble issues (new at every pebble start)."""
        return self._mgmt("/roots/0")

    def add_a(self, host: str, addresses: list[str]) -> None:
        body = json.dumps({"host": host.rstrip(".") + ".", "addresses": addresses}).encode()
        conn = http.client.HTTPConnection("127.0.0.1", self.chall_mgmt_port, timeout=5)
        try:
            conn.request("POST", "/add-a", body=body)
            assert conn.getresponse().status == 200
        finally:
            conn.close()

    def orders_for(self, host: str) -> bool:
        """Whether pebble's log names ``host`` (it logs every identifier of an order and authorization)."""
        return host in self.log.read_text(errors="replace")


@dataclass
class TlsTraefik(Traefik):
    """Traefik with HTTPS and the ACME resolvers pointed at ``directory_url``."""

    directory_url: str = ""
    ca_bundle: str = ""
    websecure_port: int = field(default_factory=components.free_port)
    acme_env: dict[str, str] = field(default_factory=dict)  # more BERTH_ACME_* (the DNS provider's)

    def launch(self) -> components.Launch:
        env = {"BERTH_ACME_DIRECTORY_URL": self.directory_url, "BERTH_ACME_CA_BUNDLE": self.ca_bundle}
        env.update(self.acme_env)
        return components.traefik_launch(
            self.root, "127.0.0.1", self.web_port, self.api_port, websecure_port=self.websecure_port, env=env
        )

    def http(self, host: str, path: str = "/") -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.web_port, timeout=5)
        try:
            conn.request("GET", path, headers={"Host": host})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def https(
        self, host: str, cafile: Path | None, path: str = "/", *, with_port: bool = False
    ) -> tuple[int, dict[str, str], bytes]:
        """One request over HTTPS with SNI ``host``, the certificate verified against ``cafile``
        (``with_port``: the Host header names the port, as a browser's does for a port other than 443)."""
        ctx = ssl.create_default_context(cafile=str(cafile)) if cafile else ssl._create_unverified_context()
        raw = socket.create_connection(("127.0.0.1", self.websecure_port), timeout=5)
        conn = http.client.HTTPConnection("127.0.0.1", self.websecure_port, timeout=5)
        try:
            conn.sock = ctx.wrap_socket(raw, server_hostname=host)
            conn.request("GET", path, headers={"Host": f"{host}:{self.websecure_port}" if with_port else host})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()
            raw.close()


async def until(check: Callable[[], object], timeout: float = 30.0) -> object:
    """``check`` run in a thread until it raises no ``OSError``/``AssertionError`` (a request through
    Traefik while a change becomes live); its result."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await asyncio.to_thread(check)
        except (OSError, AssertionError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def apply_on_new_server(bus: Any, events: Any, msg: Any, timeout: float = 240) -> dict[str, Any]:
    """Publish ``msg`` (a route command for a server just announced) until proxy-sync has the server in its
    directory; the route's first answer that is not "not known" (``events``: the test's event recorder)."""
    for _ in range(50):
        await bus.publish(msg)
        answer = None
        deadline = time.monotonic() + timeout
        while answer is None and time.monotonic() < deadline:
            answer = next((e for e in events.seen if e["data"].get("route_id") == msg.route_id), None)
            await asyncio.sleep(0.1)
        assert answer is not None
        if answer["type"] == "evt.route.applied":
            return dict(answer)
        assert "not known" in answer["data"]["reason"], answer
        events.seen.remove(answer)
        await asyncio.sleep(0.2)
    raise AssertionError(f"route {msg.route_id} was never applied")
