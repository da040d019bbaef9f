"""One source for Traefik's static configuration: ``berth_cli.components.traefik_static_config``. The local
platform writes it as it is; docker-compose's ``deploy/compose/traefik.yml`` is the same with compose's
addresses and directory. Traefik's dynamic directory starts empty: proxy-sync is its one writer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from berth_cli import components
from berth_common import traefik, traefik_body

ROOT = Path(__file__).resolve().parents[2]


def test_the_compose_configuration_is_the_local_one_with_compose_addresses():
    compose = yaml.safe_load((ROOT / "deploy" / "compose" / "traefik.yml").read_text())
    # docker-compose.yml: web on :80 and websecure on :443 (published), the API on :8081
    # (BERTH_TRAEFIK_API_URL), the shared volume, ACME with Let's Encrypt and its storage in a volume
    acme = traefik.Acme(storage="/traefik/acme/acme.json")
    expected = components.traefik_static_config(
        Path("/traefik/dynamic"), "", 80, "", 8081, websecure_port=443, acme=acme
    )
    assert compose == expected


def test_the_local_platform_writes_the_static_configuration_and_nothing_dynamic(tmp_path):
    launch = components.traefik_launch(tmp_path, "127.0.0.1", 18080, 18081)
    static = tmp_path / "traefik" / "static.yml"
    assert launch.argv[1:] == [f"--configFile={static}"]
    dynamic = tmp_path / "traefik" / "dynamic"
    expected = components.traefik_static_config(dynamic, "127.0.0.1", 18080, "127.0.0.1", 18081)
    assert static.read_text() == json.dumps(expected, indent=2)
    assert dynamic.is_dir() and list(dynamic.iterdir()) == []
    assert sorted(p.name for p in (tmp_path / "traefik").iterdir()) == ["dynamic", "plugins-local", "static.yml"]
    # Traefik runs where its plugin is: plugins-local/src/<module>/ of its working directory
    assert launch.cwd == str(tmp_path / "traefik")
    plugin = tmp_path / "traefik" / "plugins-local" / "src" / traefik_body.MODULE
    assert sorted(p.name for p in plugin.iterdir()) == [".traefik.yml", "bodyread.go", "go.mod"]
    assert {str(p.relative_to(tmp_path / "traefik")): p.read_bytes() for p in plugin.iterdir()} == traefik_body.files()
    assert expected["experimental"] == {"localPlugins": {"berthbodyread": {"moduleName": "github.com/berth/bodyread"}}}
    assert expected["entryPoints"]["web"]["http"]["middlewares"] == ["berth-body-read@file"]  # type: ignore[index]


def test_the_data_plane_runs_the_traefik_binary_it_is_given(tmp_path):
    """``BERTH_TRAEFIK_BINARY``: a Traefik pinned or upgraded apart from Berth's own; a path that is not an
    absolute executable file is refused naming the variable."""
    binary = tmp_path / "traefik-3"
    binary.write_bytes(Path(components.bin_path("traefik")).read_bytes()[:64])
    binary.chmod(0o755)
    launch = components.traefik_launch(tmp_path, "127.0.0.1", 18080, 18081, env={"BERTH_TRAEFIK_BINARY": str(binary)})
    assert launch.argv == [str(binary), f"--configFile={tmp_path / 'traefik' / 'static.yml'}"]
    assert components.traefik_launch(tmp_path, "127.0.0.1", 18080, 18081).argv[0] == components.bin_path("traefik")
    plain = tmp_path / "plain"
    plain.write_text("")
    for bad in ("traefik", str(tmp_path / "missing"), str(plain), str(tmp_path)):
        with pytest.raises(ValueError, match="BERTH_TRAEFIK_BINARY"):
            components.traefik_binary({"BERTH_TRAEFIK_BINARY": bad})
