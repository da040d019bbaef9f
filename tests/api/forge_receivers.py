"""A local stand-in for each forge's commit status API, on 127.0.0.1: it checks the path, the auth header and
the JSON body as the forge would (its state names, its required fields) and answers as the forge does
(201 created; 401 without the right token; 422/400 for a body it would refuse)."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

from aiohttp import web

from tests.support.receivers import HttpReceiver

SHA = r"[0-9a-f]{40}"
RULES: dict[str, dict[str, Any]] = {
    "github": {
        "path": rf"^/api/repos/acme/blog/statuses/{SHA}$",
        "auth": ("Authorization", "Bearer {token}"),
        "states": {"pending", "success", "failure", "error"},
        "state_key": "state",
        "required": {"state", "context", "target_url"},
    },
    "gitea": {
        "path": rf"^/api/repos/acme/blog/statuses/{SHA}$",
        "auth": ("Authorization", "token {token}"),
        "states": {"pending", "success", "failure", "error", "warning"},
        "state_key": "state",
        "required": {"state", "context", "target_url"},
    },
    "gitlab": {
        "path": rf"^/api/projects/acme%2Fblog/statuses/{SHA}$",
        "auth": ("PRIVATE-TOKEN", "{token}"),
        "states": {"pending", "running", "success", "failed", "canceled"},
        "state_key": "state",
        "required": {"state", "name", "target_url"},
    },
    "bitbucket": {
        "path": rf"^/api/repositories/acme/blog/commit/{SHA}/statuses/build$",
        "auth": ("Authorization", "Bearer {token}"),
        "states": {"INPROGRESS", "SUCCESSFUL", "FAILED", "STOPPED"},
        "state_key": "state",
        "required": {"state", "key", "url"},
    },
    "bitbucket-server": {
        "path": rf"^/api/rest/build-status/1.0/commits/{SHA}$",
        "auth": ("Authorization", "Bearer {token}"),
        "states": {"INPROGRESS", "SUCCESSFUL", "FAILED"},
        "state_key": "state",
        "required": {"state", "key", "url"},
    },
}


class StatusReceiver(HttpReceiver):
    def __init__(self, forge: str, token: str, script: list[Any] | None = None, repository: str = "acme/blog") -> None:
        super().__init__(script)
        self.forge, self.token = forge, token
        rule = RULES["gitea" if forge in ("forgejo", "gogs") else forge]
        path = rule["path"].replace("acme/blog", repository).replace("acme%2Fblog", quote(repository, safe=""))
        self.rule = {**rule, "path": path}  # the statuses of ``repository``'s commits
        self.unauthorized = 0

    def check(self, request: web.Request, body: bytes) -> list[str]:
        name, template = self.rule["auth"]
        if request.headers.get(name) != template.format(token=self.token):
            self.unauthorized += 1
            return ["unauthorized"]
        if not re.match(self.rule["path"], request.path_qs):
            return [f"no such path {request.path_qs}"]
        try:
            data = json.loads(body)
        except ValueError:
            return ["not JSON"]
        missing = self.rule["required"] - set(data)
        if missing:
            return [f"missing {sorted(missing)}"]
        if data[self.rule["state_key"]] not in self.rule["states"]:
            return [f"state {data['state']!r}"]
        return []

    def refuse(self, problems: list[str]) -> web.Response:
        status = 401 if problems == ["unauthorized"] else 422
        return web.json_response({"message": problems[0]}, status=status)

    def accept(self, rec: Any) -> web.Response:
        return web.json_response({"id": len(self.accepted)}, status=201)

    def states(self) -> list[str]:
        return [r.json[self.rule["state_key"]] for r in self.accepted]
