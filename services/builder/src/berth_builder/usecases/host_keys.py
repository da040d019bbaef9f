"""The host keys an SSH git server presents, for the api to pin at first contact (``rpc.builder.host_keys``):
the builder is the service that reaches the forge, so it asks the server (``ssh-keyscan``, argv only, with
a deadline) and answers with the keys in known_hosts form, or a problem saying why there are none."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from berth_builder.adapters.keyscan import keyscan
from berth_builder.domain import git_credentials
from berth_builder.domain.source import InvalidInput, validate_git_url
from berth_builder.settings import BuilderSettings
from berth_common.catalogue import HostKeysQuery, HostKeysReply, Problem
from berth_common.catalogue.git_auth import known_hosts_name, ssh_endpoint
from berth_common.outbound import HostError
from berth_common.outbound_net import OutboundRefused, checked_addresses


def _problem(status: int, detail: str, field: str = "repository") -> HostKeysReply:
    title = "Invalid request" if status == 422 else "The git server failed"
    kind = "invalid" if status == 422 else "upstream-error"
    return HostKeysReply(problem=Problem(status=status, type=kind, title=title, field=field, detail=detail))


@dataclass(eq=False)
class HostKeys:
    settings: BuilderSettings

    async def answer(self, data: dict[str, Any]) -> HostKeysReply:
        try:
            query = HostKeysQuery.model_validate(data)
            url = validate_git_url(query.repository, allow_local=False, field="repository")
        except ValidationError as exc:
            return _problem(422, exc.errors(include_input=False, include_url=False)[0]["msg"])
        except InvalidInput as exc:
            return _problem(422, exc.why, exc.field)
        endpoint = ssh_endpoint(url.url) if url.transport == "ssh" else None
        if endpoint is None:
            return _problem(422, "host keys are for ssh:// and user@host:path repository URLs")
        host, port = endpoint
        try:  # the keys are read from a checked address of the server (its name is not resolved again)
            addresses = await checked_addresses(host, port, self.settings.outbound_policy_for(query.team_id))
        except OutboundRefused as exc:
            return _problem(422, exc.reason)
        except (OSError, HostError):
            return _problem(502, f"the SSH server of {url.display} cannot be resolved")
        try:
            argv = git_credentials.keyscan_argv(addresses[0], port, query.timeout_s)
        except InvalidInput as exc:
            return _problem(422, exc.why, exc.field)
        output = await keyscan(argv, query.timeout_s + 5)
        keys = git_credentials.parse_keyscan(output, known_hosts_name(host, port))
        if not keys:
            return _problem(502, f"the SSH server of {url.display} did not present a host key (is it reachable?)")
        return HostKeysReply(host_keys=keys)
