"""Shell completion (typer's): the script for bash, command names, and application names asked of the api;
``berth login --data-dir`` takes a local platform's URL and admin token."""

from __future__ import annotations

import json

from berth_cli.layout import Paths


async def test_completion_script_commands_and_application_names(logged_in):
    berth = logged_in
    # The shell named, not detected from the process tree (a test's ancestors need not include a shell).
    r = await berth("--show-completion", "bash", env={"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert r.code == 0 and "_BERTH_COMPLETE=complete_bash" in r.out

    async def complete(words: str) -> list[str]:
        cword = str(len(words.split()) - (0 if words.endswith(" ") else 1))
        env = {"_BERTH_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": cword}
        r = await berth(env=env)
        assert r.code == 0, r
        return r.out.split()

    assert await complete("berth dep") == ["deploy"]
    assert await complete("berth db backup ") == ["list", "run"]
    assert (await berth("projects", "create", "acme")).code == 0
    for name in ("shop", "shipping", "blog"):
        r = await berth("apps", "create", name, "--project", "acme", "--image", "nginx:1.27", "--worker")
        assert r.code == 0, r
    assert await complete("berth deploy sh") == ["shipping", "shop"]
    assert await complete("berth logs b") == ["blog"]
    # No login: nothing offered, nothing printed into the shell.
    berth.config_file.unlink()
    assert await complete("berth deploy sh") == []


async def test_login_from_a_local_platform_data_dir(berth, api, tmp_path):
    paths = Paths(tmp_path / "platform")
    paths.root.mkdir()
    r = await berth("login", "--data-dir", str(paths.root))
    assert (r.code, r.err) == (1, f"berth: no platform runs from {paths.root} (berth up --data-dir {paths.root})\n")
    paths.state.write_text(json.dumps({"urls": {"api": api.url}}))
    paths.admin_token.write_text(api.admin_token() + "\n")
    r = await berth("login", "--data-dir", str(paths.root), "--context", "local")
    assert (r.code, r.out) == (
        0,
        f"Logged in to {api.url} as admin@localhost (team default, role admin); context local\n",
    )
    assert json.loads(berth.config_file.read_text())["contexts"]["local"]["token"] == api.admin_token()
