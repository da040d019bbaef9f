"""The service processes load none of what they have no use for: rich and pygments (installed for the
``berth`` CLI; httpx would load them for its own command line), pydantic's v1 package (FastAPI would load
it to learn that no model is a v1 one) and HTTP/2 (h2: only the builder's BuildKit session uses it, and
imports it itself; httpcore would load it with the first HTTP client). Resident memory of every service
process, and of the all-in-one process that holds all six.

Nor what only a rare path needs: zstandard (httpx would load it to accept zstd responses; a backup that
compresses with zstd imports it itself) and the S3 client (the scheduler's backup destinations load it with
their first S3 sink or client), nor croniter (the scheduler's schedules load it with the first due time they
compute), nor cryptography (proxy-sync checks and makes Traefik's default certificate in a child process; a
backup's encryption and an uploaded certificate load it with their first use)."""

from __future__ import annotations

import subprocess
import sys

LOAD_ALL = (
    "import sys\n"
    "from importlib.metadata import entry_points\n"
    "for ep in entry_points(group='berth.services'):\n"
    "    ep.load()\n"
    "import httpx\n"
    "httpx.AsyncClient()\n"
    "print(sorted(m for m in ('rich', 'pygments', 'h2', 'hpack', 'pydantic.v1', 'httpx', 'structlog') if sys.modules.get(m)))\n"
    "import rich.console, h2.connection\n"
    "print(callable(httpx.main), hasattr(rich.console, 'Console'), hasattr(h2.connection, 'H2Connection'))\n"
)


def test_service_modules_and_an_http_client_load_none_of_the_unused_parts_which_still_import_when_asked() -> None:
    proc = subprocess.run([sys.executable, "-c", LOAD_ALL], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    loaded, after = proc.stdout.strip().splitlines()[-2:]
    assert loaded == "['httpx', 'structlog']"
    assert after == "True True True"


LOAD_RARE = (
    "import sys\n"
    "from importlib.metadata import entry_points\n"
    "for ep in entry_points(group='berth.services'):\n"
    "    ep.load()\n"
    "import httpx\n"
    "client = httpx.AsyncClient()\n"
    "print(sorted(m for m in ('zstandard', 'berth_common.s3', 'berth_common.s3.client', 'xml.etree.ElementTree',\n"
    "                         'croniter')\n"
    "             if sys.modules.get(m)))\n"
    "print(client.headers['accept-encoding'])\n"
    "import importlib.util\n"
    "from berth_common import codecs\n"
    "from berth_common.catalogue import S3Destination\n"
    "from berth_scheduler.adapters.backup_sinks import S3Sink, s3_client\n"
    "dest = S3Destination(endpoint='http://127.0.0.1:9', bucket='bkt', access_key='k', secret_key='s')\n"
    "sink = S3Sink(dest, 'x')\n"
    "z = codecs.compressor('zstd')\n"
    "packed = z.feed(b'berth' * 100) + z.end()\n"
    "unz = codecs.decompressor('zstd')\n"
    "from berth_scheduler.domain.schedules import Timing\n"
    "from datetime import UTC, datetime\n"
    "due = Timing('0 3 * * *', 'Europe/Paris').next_after(datetime(2026, 12, 5, tzinfo=UTC)).isoformat()\n"
    "print(importlib.util.find_spec('zstandard') is not None, unz.feed(packed) == b'berth' * 100,\n"
    "      type(sink.client).__name__, type(s3_client(dest)).__name__, 'zstandard' in sys.modules, due)\n"
)


def test_zstandard_the_s3_client_and_croniter_load_only_when_first_used() -> None:
    proc = subprocess.run([sys.executable, "-c", LOAD_RARE], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    loaded, accept, after = proc.stdout.strip().splitlines()[-3:]
    assert loaded == "[]"
    assert accept == "gzip, deflate"
    assert after == "True True S3Client S3Client True 2026-12-05T02:00:00+00:00"


LOAD_EVERY_MODULE = (
    "import importlib, pkgutil, sys\n"
    "from importlib.metadata import entry_points\n"
    "names = sorted({ep.value.split(':')[0].split('.')[0] for ep in entry_points(group='berth.services')})\n"
    "names += ['berth_common']\n"
    "for name in names:\n"
    "    package = importlib.import_module(name)\n"
    "    for info in pkgutil.walk_packages(package.__path__, name + '.'):\n"
    "        if not info.name.endswith('__main__'):\n"
    "            importlib.import_module(info.name)\n"
    "print(len(names), sorted(m for m in ('aiohttp', 'aiodocker', 'multidict', 'yarl') if m in sys.modules))\n"
)


def test_no_service_module_loads_aiohttp_or_aiodocker() -> None:
    """Every module of every service and of berth_common imported: the engines are spoken to by Berth's own
    client (``berth_common.docker.api``), so aiohttp (and aiodocker, yarl, multidict) stay out of the
    process."""
    proc = subprocess.run([sys.executable, "-c", LOAD_EVERY_MODULE], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "7 []"


LOAD_CRYPTOGRAPHY = (
    "import sys, tempfile\n"
    "from pathlib import Path\n"
    "from importlib.metadata import entry_points\n"
    "for ep in entry_points(group='berth.services'):\n"
    "    ep.load()\n"
    "from berth_proxy_sync.adapters.files import DynamicDir\n"
    "from berth_proxy_sync.domain.certificate import CERT_MARKER, DEFAULT_CERT_FILE\n"
    "from berth_proxy_sync.usecases.routes import ensure_default_certificate\n"
    "d = DynamicDir(Path(tempfile.mkdtemp()) / 'dynamic')\n"
    "d.ensure()\n"
    "made, kept = ensure_default_certificate(d), ensure_default_certificate(d)\n"
    "ours = (d.directory / DEFAULT_CERT_FILE).read_text().startswith(CERT_MARKER)\n"
    "print(made, kept, ours, 'cryptography' in sys.modules)\n"
    "from berth_common import streamcrypt\n"
    "key = streamcrypt.new_key()\n"
    "print(streamcrypt.decrypt(key, streamcrypt.encrypt(key, b'berth')) == b'berth', 'cryptography' in sys.modules)\n"
)


def test_cryptography_loads_only_with_a_stream_or_a_certificate_parsed_in_the_process() -> None:
    proc = subprocess.run([sys.executable, "-c", LOAD_CRYPTOGRAPHY], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    certificate, stream = proc.stdout.strip().splitlines()[-2:]
    assert certificate == "True False True False"
    assert stream == "True True"
