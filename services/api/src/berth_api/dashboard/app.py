"""The dashboard's ASGI app (built by ``berth_api.dashboard.mount`` on the first ``/ui`` request)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from berth_api.dashboard import pages, pages_notify, pages_team, pages_templates, signin
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
            Route(a, pages.application, methods=["GET"]),
            Route(a + "/deploy", pages.deploy, methods=["POST"]),
            Route(a + "/rollback", pages.rollback, methods=["POST"]),
            Route(a + "/scale", pages.scale, methods=["POST"]),
            Route(a + "/variables", pages.set_variable, methods=["POST"]),
            Route(a + "/delete", pages.delete_application, methods=["POST"]),
            Route("/deployments/{deployment_id:str}", pages.deployment, methods=["GET"]),
            Route("/deployments/{deployment_id:str}/timeline", pages.timeline, methods=["GET"]),
            Route("/deployments/{deployment_id:str}/log", pages.deployment_log, methods=["GET"]),
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
            Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
        ]
    )
