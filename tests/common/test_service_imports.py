"""The service processes load none of what they have no use for: rich and pygments (installed for the
``berth`` CLI; httpx would load them for its own command line), pydantic's v1 package (FastAPI would load
it to learn that no model is a v1 one) and HTTP/2 (h2: only the builder's BuildKit session uses it, and
imports it itself; httpcore would load it with the first HTTP client). Resident memory of every service
process, and of the all-in-one process that holds all six."""

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
