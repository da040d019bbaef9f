"""``berth open`` through a local platform: a context made by ``berth login --data-dir`` keeps the platform's
proxy URL (from its state file), so the URLs ``open`` and ``apps show`` give carry the proxy's port; a context
made from a URL, or an api given by BERTH_API_URL, gives the plain host."""

from __future__ import annotations

import json

from berth_cli.layout import Paths


async def test_open_knows_the_local_proxy_port(berth, api, tmp_path):
    paths = Paths(tmp_path / "platform")
    paths.root.mkdir()
    paths.state.write_text(json.dumps({"urls": {"api": api.url, "proxy": "http://127.0.0.1:18080"}}))
    paths.admin_token.write_text(api.admin_token() + "\n")
    r = await berth("login", "--data-dir", str(paths.root), "--context", "local")
    assert r.code == 0, r
    stored = json.loads(berth.config_file.read_text())["contexts"]["local"]
    assert stored == {"api_url": api.url, "token": api.admin_token(), "proxy_url": "http://127.0.0.1:18080"}
    assert (await berth("projects", "create", "acme")).code == 0
    r = await berth("apps", "create", "shop", "--project", "acme", "--image", "nginx:1.27", "--port", "80", "--json")
    host = json.loads(r.out)["services"][0]["hosts"][0]

    r = await berth("open", "shop", "--print")
    assert (r.code, r.out, r.err) == (0, f"http://{host}:18080/\n", "")
    r = await berth("apps", "show", "shop")
    assert f"urls:     http://{host}:18080/\n" in r.out
    # Another api than the context's: its proxy is not known.
    r = await berth("open", "shop", "--print", env={"BERTH_API_URL": api.url.replace("127.0.0.1", "localhost")})
    assert (r.code, r.out) == (0, f"http://{host}/\n")
    # A context logged in by URL: the plain host.
    r = await berth("login", api.url, "--token-stdin", "--context", "remote", input=api.admin_token() + "\n")
    assert r.code == 0, r
    assert (await berth("open", "shop", "--print")).out == f"http://{host}/\n"
    # A local proxy on port 80: no port to add.
    paths.state.write_text(json.dumps({"urls": {"api": api.url, "proxy": "http://127.0.0.1:80"}}))
    assert (await berth("login", "--data-dir", str(paths.root), "--context", "local")).code == 0
    assert (await berth("open", "shop", "--print")).out == f"http://{host}/\n"
