"""The runtime log routes as the OpenAPI document declares them: readable by a viewer, JSON or an event
stream, their query parameters bounded, their problems documented."""

from __future__ import annotations

from berth_api.domain.problems import MEDIA_TYPE
from tests.api.test_routes import _app

ROUTES = ("/v1/applications/{application_id}/logs", "/v1/databases/{database_id}/logs")


def test_the_log_routes_are_for_viewers_and_answer_json_or_an_event_stream():
    spec = _app().openapi()
    for path in ROUTES:
        op = spec["paths"][path]["get"]
        assert op["x-berth-role"] == "viewer", path
        assert set(op["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}, path
        for code in ("404", "422", "503"):
            assert set(op["responses"][code]["content"]) == {MEDIA_TYPE}, (path, code)
        params = {p["name"]: p for p in op["parameters"] if p["in"] == "query"}
        assert {"tail", "since", "until", "follow"} <= set(params), path
        assert (params["tail"]["schema"]["minimum"], params["tail"]["schema"]["maximum"]) == (1, 5000)
    app_params = {p["name"]: p for p in spec["paths"][ROUTES[0]]["get"]["parameters"]}
    assert app_params["service"]["schema"]["pattern"].startswith("^")
    lines = spec["components"]["schemas"]["RuntimeLogsOut"]["properties"]["lines"]["items"]["$ref"]
    line = spec["components"]["schemas"][lines.rsplit("/", 1)[1]]
    assert set(line["properties"]) == {"service", "replica", "server_id", "stream", "time", "line"}
