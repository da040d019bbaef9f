"""Traefik's default certificate decided without a child process when the file says it is still good: the
facts line (``certificate.known_good``) is read by the service without ``cryptography``; a file expired, near
its end, foreign, unparseable, edited since it was written or of an older proxy-sync (no facts line) goes to
the child, which replaces it. The child's starts are counted at the adapter's seam (``subprocess.run``). The
real Traefik presents the certificate of a file with the facts line."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import subprocess
import time

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from berth_proxy_sync.adapters import default_cert, tls_probe
from berth_proxy_sync.adapters.files import DynamicDir
from berth_proxy_sync.domain import certificate
from berth_proxy_sync.domain.certificate import CERT_MARKER, DEFAULT_CERT_FILE
from berth_proxy_sync.usecases.routes import ensure_default_certificate
from tests.proxy.acme_support import TlsTraefik

NOW = dt.datetime.now(dt.UTC)


@pytest.fixture
def children(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The input of each child process the adapter starts (each then runs for real)."""
    started: list[str] = []
    real = subprocess.run

    def counted(*args, **kwargs):
        started.append(kwargs["input"])
        return real(*args, **kwargs)

    monkeypatch.setattr(default_cert.subprocess, "run", counted)
    return started


def _ending_in(days: float) -> str:
    """A file of ours whose certificate ends ``days`` from now."""
    start = NOW - dt.timedelta(days=certificate.VALID_DAYS) + dt.timedelta(days=days + 1)
    return certificate.render_certificate(*certificate.self_signed(now=start))


def test_the_file_carries_its_facts_and_they_are_those_of_its_certificate() -> None:
    cert, key = certificate.self_signed()
    text = certificate.render_certificate(cert, key)
    from cryptography import x509

    end = x509.load_pem_x509_certificate(cert.encode()).not_valid_after_utc
    marker, facts, rest = text.split("\n", 2)
    assert marker + "\n" == CERT_MARKER
    assert facts == f"# not after {end:%Y-%m-%dT%H:%M:%SZ}, sha256 of the PEM texts {certificate.pem_digest(cert, key)}"
    assert rest == certificate.render_certificate(cert, key).split("\n", 2)[2]
    assert certificate.pem_pair(text) == (cert, key)
    assert certificate.known_good(text) is True and certificate.still_good(text) is True


def test_known_good_agrees_with_still_good_where_it_decides() -> None:
    good = certificate.render_certificate(*certificate.self_signed())
    marker, facts, body = good.split("\n", 2)
    pair = certificate.pem_pair(good)
    assert pair is not None
    other_key = certificate.self_signed()[1]
    swapped = f"{marker}\n{facts}\n" + yaml.safe_dump(certificate.certificate_config(pair[0], other_key))
    assert certificate.pem_pair(swapped) == (pair[0], other_key)  # another key pasted in since
    bad_date = re.sub(r"\d{4}-\d\d-\d\dT", "2036-13-01T", facts)  # matches the line's form, no date
    cases = {
        "good": good,
        "a year on": good,
        "near its end": _ending_in(20),
        "expired": _ending_in(-5),
        "foreign": good.replace(CERT_MARKER, "# someone else's\n"),
        "unparseable": f"{marker}\n{facts}\ntls: {{stores: [\n",
        "cut": good[: len(good) // 2],
        "damaged PEM": good.replace("MI", "xx", 3),
        "edited since": swapped,
        "no facts (older)": f"{marker}\n{body}",
        "bad date": f"{marker}\n{bad_date}\n{body}",
    }
    later = {"a year on": NOW + dt.timedelta(days=365)}
    known = {name: certificate.known_good(text, now=later.get(name)) for name, text in cases.items()}
    still = {name: certificate.still_good(text, now=later.get(name)) for name, text in cases.items()}
    assert known == {name: name in ("good", "a year on") for name in cases}
    # where the facts are trusted the child says the same; an edited, older or misdated file is still good
    # for the child, which then writes it again with its facts
    child_good = ("good", "a year on", "edited since", "no facts (older)", "bad date")
    assert still == {name: name in child_good for name in cases}
    nine_years = NOW + dt.timedelta(days=9 * 365 + 340)
    assert certificate.known_good(good, now=nine_years) is certificate.still_good(good, now=nine_years) is False


def test_a_still_good_file_starts_no_child(children: list[str]) -> None:
    good = _ending_in(400)
    assert default_cert.replacement(good) is None
    assert asyncio.run(default_cert.areplacement(good)) is None
    assert children == []


@pytest.mark.parametrize("case", ["missing", "expired", "near its end", "foreign", "unparseable", "cut"])
def test_a_file_not_known_good_goes_to_the_child_which_replaces_it(children: list[str], case: str) -> None:
    good = certificate.render_certificate(*certificate.self_signed())
    current = {
        "missing": None,
        "expired": _ending_in(-5),
        "near its end": _ending_in(29),
        "foreign": good.replace(CERT_MARKER, "# someone else's\n"),
        "unparseable": CERT_MARKER + good.split("\n", 2)[1] + "\ntls: {stores: [\n",
        "cut": good[: len(good) // 2],
    }[case]
    made = default_cert.replacement(current)
    assert children == [current or ""]
    assert made is not None and certificate.known_good(made) and certificate.still_good(made)
    assert certificate.pem_pair(made) not in (certificate.pem_pair(good), None)  # a new certificate
    assert default_cert.replacement(made) is None and len(children) == 1  # and the next start needs none


def test_a_file_of_an_older_proxy_sync_gets_its_facts_once(children: list[str], tmp_path) -> None:
    good = certificate.render_certificate(*certificate.self_signed())
    older = CERT_MARKER + good.split("\n", 2)[2]  # as written before the facts line
    d = DynamicDir(tmp_path / "dynamic")
    d.ensure()
    path = d.directory / DEFAULT_CERT_FILE
    path.write_text(older)
    assert ensure_default_certificate(d) is True  # written again: the same certificate, with its facts
    assert len(children) == 1 and path.read_text() == good
    assert ensure_default_certificate(d) is False and len(children) == 1 and path.read_text() == good


def test_a_file_edited_since_it_was_written_goes_to_the_child(children: list[str]) -> None:
    first = certificate.render_certificate(*certificate.self_signed())
    second = certificate.render_certificate(*certificate.self_signed())
    mixed = first.split("\n", 2)[0] + "\n" + first.split("\n", 2)[1] + "\n" + second.split("\n", 2)[2]
    made = default_cert.replacement(mixed)  # the facts of one certificate over another's PEM texts
    assert len(children) == 1 and made == second  # the child checked the PEM texts: kept, facts made right


def test_ensure_starts_the_child_once_then_never_while_the_file_is_good(children: list[str], tmp_path) -> None:
    d = DynamicDir(tmp_path / "dynamic")
    d.ensure()
    assert ensure_default_certificate(d) is True
    written = (d.directory / DEFAULT_CERT_FILE).read_text()
    assert [ensure_default_certificate(d) for _ in range(3)] == [False, False, False]
    assert children == [""] and (d.directory / DEFAULT_CERT_FILE).read_text() == written


async def test_traefik_presents_the_certificate_of_the_file_with_its_facts_line(tmp_path) -> None:
    """The real Traefik reads the file with its two comment lines: for a name no route has, it presents
    exactly the file's certificate (not one it generated)."""
    traefik = TlsTraefik(tmp_path / "traefik").start()
    try:
        before = await tls_probe.leaf("127.0.0.1", traefik.websecure_port, "no-route.example.com")
        assert before is not None  # the control: the certificate Traefik generates itself
        d = DynamicDir(traefik.dynamic_dir)
        d.ensure()
        assert ensure_default_certificate(d) is True
        text = (d.directory / DEFAULT_CERT_FILE).read_text()
        assert certificate.known_good(text) and text.split("\n", 2)[1].startswith("# not after ")
        pair = certificate.pem_pair(text)
        assert pair is not None
        ours = x509.load_pem_x509_certificate(pair[0].encode()).public_bytes(serialization.Encoding.DER)
        deadline = time.monotonic() + 20
        served = None
        while served != ours and time.monotonic() < deadline:
            served = await tls_probe.leaf("127.0.0.1", traefik.websecure_port, "no-route.example.com")
            await asyncio.sleep(0.05)
        assert served == ours and before != ours
    finally:
        traefik.kill()
