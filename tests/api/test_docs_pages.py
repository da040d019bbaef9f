"""The pages that describe the api, served by Berth itself: the API reference at /docs (Swagger UI, every
file from the api's own origin) and the event catalogue at /events, rendered from the AsyncAPI document.
In-process (httpx over ASGI, an app built without a running service): nothing here needs NATS or Postgres."""

from __future__ import annotations

import subprocess
import sys
from html.parser import HTMLParser
from urllib.parse import urlsplit

import httpx
import pytest

from berth_api.domain.problems import MEDIA_TYPE
from berth_api.entrypoints.http import create_app
from berth_api.settings import ApiSettings
from berth_common.catalogue import REGISTRY

NATS_URL = "nats://berthuser:hunter2pw@127.0.0.1:4999"


class Links(HTMLParser):
    """Every URL a page makes the browser load or offers to follow."""

    def __init__(self) -> None:
        super().__init__()
        self.loaded: list[str] = []  # script src, link href, img src: fetched with the page
        self.followed: list[str] = []  # a href

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v for k, v in attrs if v is not None}
        if tag in ("script", "img", "iframe", "source") and "src" in values:
            self.loaded.append(values["src"])
        elif tag == "link" and "href" in values:
            self.loaded.append(values["href"])
        elif tag == "a" and "href" in values:
            self.followed.append(values["href"])


def links(html: str) -> Links:
    parser = Links()
    parser.feed(html)
    return parser


def same_origin(url: str) -> bool:
    parts = urlsplit(url)
    return not parts.scheme and not parts.netloc and (url.startswith("/") or url.startswith("#"))


@pytest.fixture(scope="module")
def app():
    return create_app(ApiSettings(http_port=0, nats_url=NATS_URL))


@pytest.fixture
async def client(app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://berth.test") as c:
        yield c


async def test_reference_page_loads_only_same_origin_files(client):
    r = await client.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
    page = links(r.text)
    assert set(page.loaded) == {
        "/docs/assets/favicon.png",
        "/docs/assets/swagger-ui.css",
        "/docs/assets/pages.css",
        "/docs/assets/swagger-ui-bundle.js",
        "/docs/assets/reference.js",
    }
    assert all(same_origin(u) for u in page.loaded + page.followed), page.loaded + page.followed
    assert {"/events", "/openapi.json"} <= set(page.followed)
    assert 'data-openapi-url="/openapi.json"' in r.text
    for url in page.loaded:
        asset = await client.get(url)
        assert asset.status_code == 200 and asset.content, url
        assert asset.headers["cache-control"].startswith("public")
    bundle = await client.get("/docs/assets/swagger-ui-bundle.js")
    assert bundle.headers["content-type"].startswith("text/javascript") and b"SwaggerUIBundle" in bundle.content
    ours = (await client.get("/docs/assets/reference.js")).text
    assert "validatorUrl: null" in ours and "data-openapi-url" in ours  # no badge fetched from elsewhere
    assert (await client.get("/docs/assets/swagger-ui.css")).headers["content-type"].startswith("text/css")


async def test_only_the_pages_files_are_served(client):
    for name in ("nothing.js", "..%2Freference.py", "core.py", "redoc.standalone.js", "%2Fetc%2Fpasswd"):
        r = await client.get(f"/docs/assets/{name}")
        assert r.status_code == 404 and r.headers["content-type"] == MEDIA_TYPE, name


async def test_the_reference_describes_the_api(client):
    spec = (await client.get("/openapi.json")).json()
    assert "/v1/projects" in spec["paths"]
    assert not {"/docs", "/events", "/docs/assets/{name}"} & set(spec["paths"])  # pages, not operations


async def test_event_catalogue_lists_every_message(client):
    r = await client.get("/events")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in r.headers["content-security-policy"]
    html = r.text
    page = links(html)
    assert set(page.loaded) == {"/docs/assets/favicon.png", "/docs/assets/pages.css"}
    assert all(same_origin(u) for u in page.loaded + page.followed)
    for type_, cls in REGISTRY.items():
        anchor = "m-" + type_.replace(".", "-")
        assert f'id="{anchor}"' in html, type_
        assert f'href="#{anchor}"' in html, type_
        assert cls.__name__ in html
    for heading in ("Events", "Commands", "Queries"):
        assert f">{heading}</h2>" in html
    # A command: its subject, who sends and handles it, and its data's fields with their types.
    ping = html[html.index('id="m-cmd-system-ping"') :].split("</section>")[0]
    assert "<code>nonce</code>" in ping and "<code>str</code>" in ping
    assert "sent by " in ping and "handled by " in ping
    log_line = html[html.index('id="m-evt-log-line"') :].split("</section>")[0]
    assert "<code>log.{deployment_id}</code>" in log_line
    health = html[html.index('id="m-rpc-health"') :].split("</section>")[0]  # a query shows its answer too
    assert "<code>rpc.{service}.health</code>" in health and "answer" in health and "<code>ready</code>" in health
    assert "hunter2pw" not in html and "berthuser" not in html
    assert (await client.get("/events")).text == html  # made once, then kept


async def test_catalogue_and_asyncapi_json_are_one_document(client, app):
    doc = (await client.get("/asyncapi.json")).json()
    assert set(REGISTRY) <= set(doc["components"]["messages"])
    assert doc["servers"]["nats"]["host"] == "127.0.0.1:4999"


def test_type_names_read_as_a_person_writes_them():
    from berth_api.docs_pages.events import type_name

    assert type_name({"type": "string"}) == "str"
    assert type_name({"type": "integer"}) == "int"
    assert type_name({"anyOf": [{"type": "integer"}, {"type": "null"}]}) == "int | None"
    assert type_name({"type": ["number", "boolean"]}) == "float | bool"
    assert type_name({"type": "array", "items": {"$ref": "#/components/schemas/Step"}}) == "list[Step]"
    assert type_name({"enum": ["web", "worker"]}) == '"web" | "worker"'
    assert type_name({"type": "object", "additionalProperties": {"type": "string"}}) == "dict[str, str]"


def test_building_the_app_loads_no_docs_code():
    """The pages' code, Swagger UI's package and the AsyncAPI generator load on the first request for them."""
    code = (
        "import sys\n"
        "from berth_api.entrypoints.http import create_app\n"
        "from berth_api.settings import ApiSettings\n"
        "create_app(ApiSettings(http_port=0))\n"
        "loaded = [m for m in ('berth_api.docs_pages', 'fastapi_offline', 'berth_common.asyncapi') if m in sys.modules]\n"
        "print(loaded)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
