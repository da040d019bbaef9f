"""The dashboard's ASGI app (built by ``berth_api.dashboard.mount`` on the first ``/ui`` request)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from berth_api.dashboard import (
    pages,
    pages_compose,
    pages_data,
    pages_notify,
    pages_observe,
    pages_servers,
    pages_team,
    pages_teams,
    pages_templates,
    signin,
)
from berth_api.dashboard.web import HERE


def build() -> Starlette:
    a = "/applications/{application_id:str}"
    return Starlette(
        routes=[
            Route("/", pages.overview, methods=["GET"]),
            Route("/signin", signin.show, methods=["GET"]),
            Route("/signin", signin.with_token, methods=["POST"]),
            Route("/invitation", signin.with_invitation, methods=["POST"]),
            Route("/signout", signin.signout, methods=["POST"]),
            Route("/projects", pages.create_project, methods=["POST"]),
            Route("/environments/{environment_id:str}/applications", pages.create_application, methods=["POST"]),
            Route("/environments/{environment_id:str}/compose", pages_compose.new_compose, methods=["GET"]),
            Route("/environments/{environment_id:str}/compose", pages_compose.create_compose, methods=["POST"]),
            Route(a, pages.application, methods=["GET"]),
            Route(a + "/deploy", pages.deploy, methods=["POST"]),
            Route(a + "/rollback", pages.rollback, methods=["POST"]),
            Route(a + "/scale", pages.scale, methods=["POST"]),
            Route(a + "/variables", pages.set_variable, methods=["POST"]),
            Route(a + "/routes", pages.set_route, methods=["POST"]),
            Route(a + "/routes/remove", pages.remove_route, methods=["POST"]),
            Route(a + "/profiles", pages_compose.set_profiles, methods=["POST"]),
            Route(a + "/placement", pages_compose.set_placement, methods=["POST"]),
            Route(a + "/delete", pages.delete_application, methods=["POST"]),
            Route("/deployments/{deployment_id:str}", pages.deployment, methods=["GET"]),
            Route("/deployments/{deployment_id:str}/timeline", pages.timeline, methods=["GET"]),
            Route("/deployments/{deployment_id:str}/log", pages.deployment_log, methods=["GET"]),
            # Servers, databases and backups (pages_servers, pages_data)
            Route("/servers", pages_servers.servers, methods=["GET"]),
            Route("/servers", pages_servers.add_server, methods=["POST"]),
            Route("/servers/{server_id:str}", pages_servers.server, methods=["GET"]),
            Route("/servers/{server_id:str}/validate", pages_servers.validate_server, methods=["POST"]),
            Route("/servers/{server_id:str}/host-key", pages_servers.accept_host_key, methods=["POST"]),
            Route("/servers/{server_id:str}/drain", pages_servers.drain_server, methods=["POST"]),
            Route("/servers/{server_id:str}/delete", pages_servers.remove_server, methods=["POST"]),
            Route("/databases", pages_data.databases, methods=["GET"]),
            Route("/databases", pages_data.create_database, methods=["POST"]),
            Route("/databases/{database_id:str}", pages_data.database, methods=["GET"]),
            Route("/databases/{database_id:str}/rotate", pages_data.rotate_database, methods=["POST"]),
            Route("/databases/{database_id:str}/link", pages_data.link_database, methods=["POST"]),
            Route("/databases/{database_id:str}/backups", pages_data.database_backups, methods=["GET"]),
            Route("/databases/{database_id:str}/backups", pages_data.run_backup, methods=["POST"]),
            Route("/databases/{database_id:str}/schedule", pages_data.set_schedule, methods=["POST"]),
            Route("/databases/{database_id:str}/restore", pages_data.restore, methods=["POST"]),
            Route("/backups", pages_data.backups, methods=["GET"]),
            Route("/backups/destinations", pages_data.create_destination, methods=["POST"]),
            Route("/restores/{restore_id:str}", pages_data.restore_page, methods=["GET"]),
            # observe: runtime logs, metrics charts, alerts (pages_observe.py)
            Route(a + "/logs", pages_observe.logs, methods=["GET"]),
            Route(a + "/logs/follow", pages_observe.follow_logs, methods=["GET"]),
            Route(a + "/metrics", pages_observe.app_metrics, methods=["GET"]),
            Route("/metrics", pages_observe.metrics_index, methods=["GET"]),
            Route("/servers/{server_id:str}/metrics", pages_observe.server_metrics, methods=["GET"]),
            Route("/alerts", pages_observe.alerts, methods=["GET"]),
            Route("/alerts/rules", pages_observe.create_rule, methods=["POST"]),
            Route("/alerts/rules/{rule_id:str}/delete", pages_observe.delete_rule, methods=["POST"]),
            # Templates, notifications and team (issue 16's catalogue and team pages).
            Route("/templates", pages_templates.catalogue, methods=["GET"]),
            Route("/templates/logos/{logo_file:str}", pages_templates.logo, methods=["GET"]),
            Route("/templates/{slug:str}", pages_templates.template, methods=["GET"]),
            Route("/templates/{slug:str}/deploy", pages_templates.deploy_template, methods=["POST"]),
            Route("/notifications", pages_notify.notifications, methods=["GET"]),
            Route("/notification-channels", pages_notify.create_channel, methods=["POST"]),
            Route("/notification-channels/{channel_id:str}/enabled", pages_notify.switch_channel, methods=["POST"]),
            Route("/notification-channels/{channel_id:str}/target", pages_notify.configure_channel, methods=["POST"]),
            Route("/notification-channels/{channel_id:str}/delete", pages_notify.delete_channel, methods=["POST"]),
            Route("/notification-channels/{channel_id:str}/test", pages_notify.test_channel, methods=["POST"]),
            Route(
                "/notification-channels/{channel_id:str}/subscriptions",
                pages_notify.create_subscription,
                methods=["POST"],
            ),
            Route(
                "/notification-subscriptions/{subscription_id:str}/delete",
                pages_notify.delete_subscription,
                methods=["POST"],
            ),
            Route("/team", pages_team.team, methods=["GET"]),
            Route("/members/{user_id:str}/role", pages_team.change_role, methods=["POST"]),
            Route("/members/{user_id:str}/remove", pages_team.remove_member, methods=["POST"]),
            Route("/invitations", pages_team.invite, methods=["POST"]),
            Route("/invitations/{invitation_id:str}/revoke", pages_team.revoke_invitation, methods=["POST"]),
            Route("/tokens", pages_team.create_token, methods=["POST"]),
            Route("/tokens/{token_id:str}/revoke", pages_team.revoke_token, methods=["POST"]),
            Route("/teams", pages_teams.create_team, methods=["POST"]),
            Route("/teams/switch", pages_teams.switch_team, methods=["POST"]),
            Route("/teams/{team_id:str}/leave", pages_teams.leave_team, methods=["POST"]),
            Route("/teams/{team_id:str}/delete", pages_teams.delete_team, methods=["POST"]),
            Route("/templates/import", pages_templates.import_template, methods=["POST"]),
            Route("/templates/deploy", pages_templates.deploy_document, methods=["POST"]),
            Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
        ]
    )
