"""``berth metrics-token``: the bearer token a Prometheus scraper sends to the metrics service's
``/metrics``, read on the control-plane host from the data directory (``metrics.token``, made at first
start, mode 0600). With ``--team`` the team's own token (``berth_common.scrape``): it reads that team's
containers only, labelled with their application and deployment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer


def metrics_token(
    data_dir: Annotated[Path, typer.Option("--data-dir", help="the platform's data directory")] = Path(".berth"),
    team: Annotated[str | None, typer.Option("--team", help="a team's id: that team's scrape token")] = None,
) -> None:
    """Print the scrape token of the metrics service's /metrics (the platform's, or --team's)."""
    from berth_cli.layout import Paths

    token = os.environ.get("BERTH_METRICS_TOKEN", "")
    if not token:
        path = Paths(data_dir.expanduser().resolve()).metrics_token
        if not path.is_file() or not (token := path.read_text().strip()):
            raise typer.BadParameter(
                f"no BERTH_METRICS_TOKEN and no {path}: start the platform once", param_hint="--data-dir"
            )
    if team is not None:
        from berth_common.scrape import team_token

        try:
            token = team_token(token, team)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--team") from None
    typer.echo(token)
