"""The operations whose schema-valid data the api may still refuse, each with its reason (``st_hooks`` skips
them in its acceptance check). Apart from the hooks, which register schemathesis checks: a module of the
test process may import this one while another registers checks of the same names (``test_fuzz``)."""

from __future__ import annotations

_STATE = "a referenced object of the team and its state"
_GRAMMAR = "text of a grammar of its own"
_TWO_FIELDS = "a rule spanning two fields"
_OUTBOUND = "the outbound rule (an admin's allowance)"
# Operations the server refuses some schema-valid requests of, each for what the schema cannot say.
UNCHECKED = {
    "POST /v1/servers": f"{_GRAMMAR}: an SSH private key (OpenSSH or PEM)",
    "POST /v1/servers/{server_id}/drain": f"{_STATE}: the servers it drains to",
    "GET /v1/applications/{application_id}/logs": f"{_TWO_FIELDS}: until after since",
    "PATCH /v1/applications/{application_id}": "an image reference and a final newline (st reads '$' as Python does)",
    "POST /v1/environments/{environment_id}/applications": f"{_GRAMMAR}: the compose file",
    "POST /v1/templates/deploy": f"{_GRAMMAR}: the template (YAML)",
    "POST /v1/templates/import": f"{_GRAMMAR}: the compose files",
    "POST /v1/environments/{environment_id}/variables/import": f"{_GRAMMAR}: the .env content",
    "PUT /v1/environments/{environment_id}/variables": f"{_STATE}: a value only a stored variable may omit",
    "POST /v1/env-groups": f"{_STATE}: a value only a stored variable may omit",
    "PUT /v1/env-groups/{group_id}/variables": f"{_STATE}: a value only a stored variable may omit",
    "POST /v1/env-groups/{group_id}/variables/import": f"{_GRAMMAR}: the .env content",
    "POST /v1/applications/{application_id}/variables/import": f"{_GRAMMAR}: the .env content",
    "POST /v1/applications/{application_id}/jobs": f"{_GRAMMAR}: the cron expression",
    "PATCH /v1/applications/{application_id}/jobs/{job_id}": f"{_GRAMMAR}: the cron expression",
    "PUT /v1/applications/{application_id}/volumes/{volume}/backup-schedule": f"{_GRAMMAR}: cron, time zone",
    "PUT /v1/databases/{database_id}/backup-schedule": f"{_STATE}: the destinations; cron, time zone",
    "PUT /v1/databases/{database_id}/drill-schedule": f"{_STATE}: the destination; cron, time zone",
    "POST /v1/databases/{database_id}/backups": f"{_STATE}: the destinations",
    "POST /v1/databases/{database_id}/restore": f"{_STATE}: the backup",
    "POST /v1/databases/{database_id}/drills": f"{_STATE}: the backup",
    "POST /v1/databases/{database_id}/upgrade": f"{_STATE}: the version it runs",
    "POST /v1/databases": f"{_GRAMMAR}: addresses and CIDR blocks of the allow-list",
    "PATCH /v1/backup-destinations/{destination_id}": f"{_STATE}: the destination's kind decides its fields",
    "POST /v1/backup-destinations": _OUTBOUND,
    "PUT /v1/applications/{application_id}/webhook/status": _OUTBOUND,
    "POST /v1/registries": _OUTBOUND,
    "POST /v1/swarms": f"{_STATE}: the manager server",
    "POST /v1/invitations/accept": f"{_STATE}: the invitation (revoked, used, expired)",
    "POST /v1/certificates": f"{_TWO_FIELDS}: a team's certificate (no application) names its hosts",
    "POST /v1/alert-rules": f"{_TWO_FIELDS}: metric and scope (down is built in for databases)",
    "PUT /v1/alert-rules/{rule_id}": f"{_TWO_FIELDS}: metric and scope (down is built in for databases)",
    "PUT /v1/applications/{application_id}/services/{service}/autoscale": f"{_TWO_FIELDS}: min <= max",
    "PUT /v1/applications/{application_id}/previews/settings": f"{_GRAMMAR}: the host pattern with {{number}}",
    "POST /v1/notification-channels": f"{_TWO_FIELDS}: the secrets each kind requires, their formats",
    "POST /v1/notification-channels/{channel_id}/subscriptions": "the event families the notifier delivers",
    "POST /v1/webhooks/{webhook_id}": "a forge's event header and signature",
    "POST /v1/applications/{application_id}/deployments": f"{_STATE}: a commit only for an application built from git",
}
