"""A `berth` call builds only the command it runs and imports only what that command needs: `berth down` (run
on every stop, by people and by the tests' platforms) loads no HTTP client, no console renderer, no SQL
toolkit and no message models, which cost it seconds of start-up on a busy machine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HEAVY = ("httpx", "rich", "sqlalchemy", "pydantic", "berth_common.catalogue", "asyncssh")

PROBE = """
import sys
from berth_cli.main import app
try:
    app(sys.argv[1:])
except SystemExit:
    pass
print("loaded:", *sorted(m for m in {heavy!r} if m in sys.modules))
"""


def _loaded(*argv: str) -> tuple[list[str], str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *argv], capture_output=True, text=True, timeout=60
    )
    marked = [line for line in done.stdout.splitlines() if line.startswith("loaded:")]
    return (marked[-1].split()[1:] if marked else ["<no output>"]), done.stdout + done.stderr


def test_berth_down_with_nothing_running_loads_none_of_the_heavy_modules(tmp_path: Path) -> None:
    loaded, out = _loaded("down", "--data-dir", str(tmp_path / "data"))
    assert "berth was not running" in out
    assert loaded == [], out


def test_a_command_that_talks_to_the_api_still_gets_its_client() -> None:
    """The lazy group builds the command named: one that needs httpx imports it (the probe is not blind)."""
    loaded, out = _loaded("apps", "list", "--help")
    assert "httpx" in loaded, out
