"""A deployment's spec as the api shows it: the secrets a compose service carries itself are masked too."""

from __future__ import annotations

from berth_api.domain.applications import mask_spec


def _spec() -> dict:
    return {
        "name": "shop",
        "source": {"kind": "image", "image": "berth/shop:1"},
        "env": [{"name": "TOKEN", "value": "sealed-app", "secret": True}],
        "services": [
            {
                "kind": "web",
                "name": "web",
                "port": 80,
                "env": [
                    {"name": "DB_PASSWORD", "value": "sealed-1", "secret": True},
                    {"name": "MODE", "value": "prod", "secret": False},
                ],
                "image": {
                    "kind": "image",
                    "image": "registry.example/shop/web:1",
                    "auth": {"registry": "registry.example", "username": "bot", "password": "sealed-2"},
                },
            },
            {
                "kind": "worker",
                "name": "jobs",
                "build": {
                    "subdirectory": "jobs",
                    "dockerfile": "Dockerfile",
                    "build_args": [
                        {"name": "NPM_TOKEN", "value": "sealed-3", "secret": True},
                        {"name": "NODE", "value": "20", "secret": False},
                    ],
                },
            },
        ],
    }


def test_a_compose_services_own_secrets_are_masked_and_the_rest_is_kept() -> None:
    shown = mask_spec(_spec())
    web, jobs = shown["services"]
    assert shown["env"] == [{"name": "TOKEN", "value": None, "secret": True}]
    assert web["env"] == [
        {"name": "DB_PASSWORD", "value": None, "secret": True},
        {"name": "MODE", "value": "prod", "secret": False},
    ]
    assert web["image"] == {
        "kind": "image",
        "image": "registry.example/shop/web:1",
        "auth": {"registry": "registry.example", "username": "bot", "password": None},
    }
    assert jobs["build"]["build_args"] == [
        {"name": "NPM_TOKEN", "value": None, "secret": True},
        {"name": "NODE", "value": "20", "secret": False},
    ]
    assert "sealed-" not in str(shown)


def test_masking_leaves_the_stored_snapshot_alone() -> None:
    spec = _spec()
    mask_spec(spec)
    assert spec == _spec()
