""".env import and export: the parser's grammar (pure), and the routes (merge or replace, a bad line is a 422
naming it, exports mask secrets unless an admin asks, which is audited)."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from berth_api.domain import dotenv
from tests.api.conftest import make_app
from tests.api.test_applications import GIT_APP

SAMPLE = """\
# a comment
   # an indented comment

export REGION=eu-west-1
PLAIN = spaced value   # trailing comment
HASH=a#b
EMPTY=
EMPTY_COMMENT= # nothing
SINGLE='literal $HOME \\n kept'
DOUBLE="line1\\nline2\\t\\"quoted\\" \\\\ \\$HOME \\q"
MULTI="first
second"
SQ_MULTI='a
b' # after
REPEATED=1
REPEATED=2
CRLF=yes\r
"""


def test_the_grammar():
    got = {e.name: e.value for e in dotenv.parse(SAMPLE)}
    assert got == {
        "REGION": "eu-west-1",
        "PLAIN": "spaced value",
        "HASH": "a#b",
        "EMPTY": "",
        "EMPTY_COMMENT": "",
        "SINGLE": "literal $HOME \\n kept",
        "DOUBLE": 'line1\nline2\t"quoted" \\ $HOME \\q',
        "MULTI": "first\nsecond",
        "SQ_MULTI": "a\nb",
        "REPEATED": "2",
        "CRLF": "yes",
    }
    lines = {e.name: e.line for e in dotenv.parse(SAMPLE)}
    assert lines["REGION"] == 4 and lines["REPEATED"] == 15  # a repeated name keeps its first place


@pytest.mark.parametrize(
    ("text", "line", "why"),
    [
        ("A=1\nnot an assignment\n", 2, "expected KEY=VALUE"),
        ("A=1\n\n1ABC=x\n", 3, "invalid variable name"),
        ("FOO-BAR=x", 1, "invalid variable name"),
        ("export =x", 1, "invalid variable name"),
        ('A="never closed\nB=2\n', 1, "never closed"),
        ("A='x' trailing", 1, "after the closing quote"),
        ("A=nul\x00", 1, "NUL"),
        ("Ä=1", 1, "invalid variable name"),
    ],
)
def test_errors_name_the_line(text, line, why):
    with pytest.raises(dotenv.DotenvError) as err:
        dotenv.parse(text)
    assert err.value.line == line and why in str(err.value)


def test_an_error_never_echoes_a_value():
    with pytest.raises(dotenv.DotenvError) as err:
        dotenv.parse("TOKEN='s3cr3t-value' junk")
    assert "s3cr3t" not in str(err.value)


values = st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=40)


@given(st.dictionaries(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True), values, max_size=8))
def test_render_then_parse_round_trips(variables):
    text = dotenv.render(variables.items())
    assert {e.name: e.value for e in dotenv.parse(text)} == variables


def test_secrets_are_rendered_as_comments():
    text = dotenv.render([("A", "1"), ("B", None)])
    assert text.startswith("A=1\n# B=**********") and [e.name for e in dotenv.parse(text)] == ["A"]


# --- through the API -----------------------------------------------------------------------------------


async def test_import_merges_or_replaces_and_export_masks(client, members):
    app = await make_app(client, members.developer)  # env: LOG_LEVEL=debug
    url = f"/v1/applications/{app['id']}/variables"
    content = "# from the old host\nexport DATABASE_URL='postgres://u:pw-9c1@db/x'\nLOG_LEVEL=info\nEMPTY=\n"
    r = await client.post(f"{url}/import", headers=members.developer, json={"content": content, "secret": False})
    assert r.status_code == 200, r.text
    got = {v["name"]: v["value"] for v in r.json()["variables"]}
    assert got == {"LOG_LEVEL": "info", "DATABASE_URL": "postgres://u:pw-9c1@db/x", "EMPTY": ""}
    # Secret on import; an existing secret stays secret when a file sets it again without the flag.
    r = await client.post(
        f"{url}/import", headers=members.developer, json={"content": "API_KEY=k-77\n", "secret": True}
    )
    assert {v["name"]: v["value"] for v in r.json()["variables"]}["API_KEY"] is None
    r = await client.post(f"{url}/import", headers=members.developer, json={"content": "API_KEY=k-78\n"})
    api_key = next(v for v in r.json()["variables"] if v["name"] == "API_KEY")
    assert api_key == {"name": "API_KEY", "value": None, "secret": True, "kind": "runtime"}
    detail = (await client.get(f"/v1/applications/{app['id']}", headers=members.viewer)).json()
    assert [v["name"] for v in detail["env"]] == ["LOG_LEVEL", "DATABASE_URL", "EMPTY", "API_KEY"]

    export = await client.get(f"{url}/export", headers=members.viewer)
    assert export.status_code == 200 and export.headers["cache-control"] == "no-store"
    assert "k-78" not in export.text and "# API_KEY=**********" in export.text
    assert "DATABASE_URL=postgres://u:pw-9c1@db/x\n" in export.text
    # Revealing is for admins; a developer is refused, an admin gets the value (and an audit row).
    r = await client.get(f"{url}/export", headers=members.developer, params={"reveal_secrets": "true"})
    assert r.status_code == 403 and "admin" in r.json()["detail"]
    r = await client.get(f"{url}/export", headers=members.admin, params={"reveal_secrets": "1"})
    assert "API_KEY=k-78\n" in r.text
    reimported = {e.name: e.value for e in dotenv.parse(r.text)}
    assert reimported["API_KEY"] == "k-78" and reimported["LOG_LEVEL"] == "info"

    # Replace: only the file's variables remain.
    r = await client.post(f"{url}/import", headers=members.developer, json={"content": "ONLY=1", "replace": True})
    assert [v["name"] for v in r.json()["variables"]] == ["ONLY"]


async def test_a_bad_line_is_a_422_naming_it_and_changes_nothing(client, members):
    app = await make_app(client, members.developer)
    url = f"/v1/applications/{app['id']}/variables/import"
    r = await client.post(url, headers=members.developer, json={"content": "A=1\n# ok\nB-C=2\n"})
    assert r.status_code == 422
    problem = r.json()
    assert problem["errors"] == [
        {
            "loc": "/body/content",
            "detail": "line 3: invalid variable name 'B-C': use [A-Za-z_][A-Za-z0-9_]* (<= 128)",
            "type": "dotenv",
            "line": "3",
        }
    ]
    assert "line 3" in problem["detail"]
    detail = (await client.get(f"/v1/applications/{app['id']}", headers=members.viewer)).json()
    assert [v["name"] for v in detail["env"]] == ["LOG_LEVEL"]  # unchanged
    # Build args are for git applications.
    r = await client.post(url, headers=members.developer, json={"content": "A=1", "kind": "build"})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == "/body/kind"
    r = await client.post(url, headers=members.developer, json={"content": "x" * (512 * 1024 + 1)})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == "/body/content"
    r = await client.post(url, headers=members.viewer, json={"content": "A=1"})
    assert r.status_code == 403


async def test_build_args_environment_and_group_exports(client, members):
    app = await make_app(client, members.developer, copy.deepcopy(GIT_APP))
    r = await client.post(
        f"/v1/applications/{app['id']}/variables/import",
        headers=members.developer,
        json={"content": "NODE_ENV=test\nEXTRA=1\n", "kind": "build"},
    )
    build = {v["name"]: v["value"] for v in r.json()["variables"] if v["kind"] == "build"}
    assert build == {"NODE_ENV": "test", "NPM_TOKEN": None, "EXTRA": "1"}  # the secret build arg kept
    env_url = f"/v1/environments/{app['environment_id']}/variables"
    r = await client.post(f"{env_url}/import", headers=members.developer, json={"content": 'MOTD="hi there\\n"\n'})
    assert r.json()["variables"] == [{"name": "MOTD", "value": "hi there\n", "secret": False, "kind": "runtime"}]
    assert (await client.get(f"{env_url}/export", headers=members.viewer)).text.endswith('MOTD="hi there\\n"\n')
    g = (await client.post("/v1/env-groups", headers=members.developer, json={"name": "g"})).json()
    r = await client.post(
        f"/v1/env-groups/{g['id']}/variables/import",
        headers=members.developer,
        json={"content": "S=v-1\n", "secret": True},
    )
    assert r.status_code == 200 and r.json()["variables"][0]["value"] is None
    r = await client.get(f"/v1/env-groups/{g['id']}/variables/export", headers=members.viewer)
    assert "v-1" not in r.text and "# S=**********" in r.text
    r = await client.get(
        f"/v1/env-groups/{g['id']}/variables/export", headers=members.admin, params={"reveal_secrets": "true"}
    )
    assert "S=v-1\n" in r.text
