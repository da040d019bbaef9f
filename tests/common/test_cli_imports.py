"""The cli imports no service package: it reaches a service's code only by running its command (argv)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {
    f"berth_{p.name.replace('-', '_')}" for p in (ROOT / "services").iterdir() if (p / "pyproject.toml").exists()
}


def test_no_cli_module_imports_a_service_package():
    assert {"berth_api", "berth_scheduler", "berth_notifier"} <= SERVICES
    found = []
    for path in sorted((ROOT / "cli" / "src").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            found += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names if n.split(".")[0] in SERVICES]
    assert found == []


def test_the_cli_finds_every_service_through_its_entry_point():
    from berth_cli.allinone import installed
    from berth_cli.layout import SERVICE_NAMES

    services = installed()
    assert list(services) == list(SERVICE_NAMES)
    for name, entry_point in services.items():
        assert entry_point.value == f"berth_{name.replace('-', '_')}.bootstrap"
        bootstrap = entry_point.load()
        assert callable(bootstrap.spec) and callable(bootstrap.main), name
