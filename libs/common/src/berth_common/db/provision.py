"""Create one login role and one schema per service, so a service cannot read another's tables.

Run with an administrative connection (the embedded Postgres superuser locally, or the operator's
admin URL in production). Each role owns its schema and has no privilege on the others.
"""

from __future__ import annotations

import hashlib
import hmac

from berth_common.db.names import check_schema

SERVICES = ("api", "builder", "scheduler", "proxy-sync", "metrics", "notifier")


def schema_for(service: str) -> str:
    name: str = {"proxy-sync": "proxy"}.get(service, service.replace("-", "_"))
    return check_schema(name)


def role_for(service: str) -> str:
    return f"berth_{schema_for(service)}"


def role_password(secret_key: str, service: str) -> str:
    return hmac.new(secret_key.encode(), f"db-role:{service}".encode(), hashlib.sha256).hexdigest()[:40]


def service_url(admin_url: str, secret_key: str, service: str) -> str:
    from sqlalchemy.engine import make_url

    from berth_common.db.engine import async_url

    u = make_url(async_url(admin_url)).set(username=role_for(service), password=role_password(secret_key, service))
    return u.render_as_string(hide_password=False)


async def provision(admin_url: str, secret_key: str, services: tuple[str, ...] = SERVICES) -> dict[str, str]:
    """Idempotently create roles and schemas; return each service's connection URL."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from berth_common.db.engine import async_url

    engine = create_async_engine(async_url(admin_url), isolation_level="AUTOCOMMIT")
    urls: dict[str, str] = {}
    try:
        async with engine.connect() as conn:
            await conn.execute(text("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
            for service in services:
                role, schema = role_for(service), schema_for(service)
                password = role_password(secret_key, service)
                exists = (await conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role})).first()
                verb = "ALTER" if exists else "CREATE"
                # role and password are derived from fixed names and hex digests (validated above).
                await conn.execute(text(f"{verb} ROLE \"{role}\" LOGIN PASSWORD '{password}'"))
                await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}" AUTHORIZATION "{role}"'))
                await conn.execute(text(f'ALTER SCHEMA "{schema}" OWNER TO "{role}"'))
                await conn.execute(text(f'REVOKE ALL ON SCHEMA "{schema}" FROM PUBLIC'))
                await conn.execute(text(f'ALTER ROLE "{role}" SET search_path = "{schema}"'))
                urls[service] = service_url(admin_url, secret_key, service)
    finally:
        await engine.dispose()
    return urls
