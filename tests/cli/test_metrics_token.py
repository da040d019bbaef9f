"""``berth metrics-token`` prints the platform's scrape token from the data directory, or a team's
(derived: the metrics service accepts it for that team only); the supervisor makes the token at first
start (0600) and gives it to the services. In process, no platform."""

from __future__ import annotations

from typer.testing import CliRunner

from berth_cli.datadir import ensure_secret
from berth_cli.layout import Paths
from berth_cli.main import app
from berth_common.scrape import ScrapeScope, scope_of


def test_the_token_is_made_once_private_and_printed_for_the_platform_and_for_a_team(tmp_path, monkeypatch):
    monkeypatch.delenv("BERTH_METRICS_TOKEN", raising=False)
    runner = CliRunner()
    missing = runner.invoke(app, ["metrics-token", "--data-dir", str(tmp_path)])
    assert missing.exit_code != 0 and "metrics.token" in missing.output
    paths = Paths(tmp_path)
    token = ensure_secret(paths.metrics_token, 32)
    assert ensure_secret(paths.metrics_token, 32) == token and len(token) >= 40
    assert paths.metrics_token.stat().st_mode & 0o777 == 0o600
    platform = runner.invoke(app, ["metrics-token", "--data-dir", str(tmp_path)])
    assert platform.exit_code == 0 and platform.output == token + "\n"
    team = runner.invoke(app, ["metrics-token", "--data-dir", str(tmp_path), "--team", "team-7"])
    assert team.exit_code == 0
    assert scope_of(f"Bearer {team.output.strip()}", token) == ScrapeScope(team="team-7")
    bad = runner.invoke(app, ["metrics-token", "--data-dir", str(tmp_path), "--team", "a.b"])
    assert bad.exit_code != 0
