"""Settings refuse unsafe production defaults; logs carry service, deployment and trace; one trace crosses the bus."""

from __future__ import annotations

import asyncio
import json

import pytest
from pydantic import ValidationError

from berth_common.bus import Delivery
from berth_common.catalogue import PingService, ServicePinged
from berth_common.logging import bound, configure_logging, get_logger
from berth_common.settings import DEV_SECRET, BaseServiceSettings
from berth_common.tracing import configure_tracing, current_trace_id, tracer
from berth_scheduler.settings import SchedulerSettings
from tests.support.bus_helpers import connected_bus

STRONG = "x" * 48
PROD_DB = "postgresql+asyncpg://berth_api:s3cret-real@db:5432/berth"


def test_production_refuses_default_secret_key(monkeypatch):
    monkeypatch.setenv("BERTH_ENV", "production")
    monkeypatch.setenv("BERTH_DATABASE_URL", PROD_DB)
    with pytest.raises(ValidationError, match="BERTH_SECRET_KEY"):
        SchedulerSettings()


def test_production_refuses_default_database_password(monkeypatch):
    monkeypatch.setenv("BERTH_ENV", "production")
    monkeypatch.setenv("BERTH_SECRET_KEY", STRONG)
    with pytest.raises(ValidationError, match="BERTH_DATABASE_URL"):
        SchedulerSettings()


def test_production_with_real_secrets_starts(monkeypatch):
    monkeypatch.setenv("BERTH_ENV", "production")
    monkeypatch.setenv("BERTH_SECRET_KEY", STRONG)
    monkeypatch.setenv("BERTH_DATABASE_URL", PROD_DB)
    s = SchedulerSettings()
    assert s.json_logs and s.service_name == "scheduler" and s.schema_name == "scheduler"
    assert STRONG not in repr(s) and "s3cret-real" not in repr(s)


def test_development_allows_defaults_and_per_service_overrides(monkeypatch):
    monkeypatch.setenv("BERTH_ENV", "development")
    monkeypatch.setenv("BERTH_SCHEDULER_DATABASE_URL", "postgresql://scheduler@h/db")
    monkeypatch.setenv("BERTH_SCHEDULER_HTTP_PORT", "9911")
    s = SchedulerSettings()
    assert s.secret_key.get_secret_value() == DEV_SECRET and not s.json_logs
    assert s.database_url.get_secret_value() == "postgresql://scheduler@h/db" and s.http_port == 9911
    assert BaseServiceSettings(service_name="proxy-sync").schema_name == "proxy_sync"


def test_json_log_lines_carry_service_deployment_and_trace(capsys):
    configure_tracing("test", None)
    configure_logging("scheduler", json=True, level="INFO")
    log = get_logger("t")
    with tracer().start_as_current_span("deploy"), bound(deployment_id="dep-42"):
        trace_id = current_trace_id()
        log.info("rolling out", password="hunter2", api_token="tok", detail="ok")
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["event"] == "rolling out" and line["level"] == "info"
    assert line["service"] == "scheduler"
    assert line["deployment_id"] == "dep-42"
    assert line["trace_id"] == trace_id and len(trace_id) == 32
    assert line["password"] == "***" and line["api_token"] == "***" and line["detail"] == "ok"
    assert "hunter2" not in json.dumps(line)


def test_console_logs_in_development(capsys):
    configure_logging("api", json=False)
    get_logger().info("hello", n=1)
    err = capsys.readouterr().err
    assert "hello" in err and "service=api" in err and not err.lstrip().startswith("{")


async def test_one_trace_across_services_through_the_bus(nats_server):
    """api publishes inside a span; the scheduler handler runs in the same trace, and so does what it publishes."""
    configure_tracing("test", None)
    api = await connected_bus("api", nats_server.url)
    scheduler = await connected_bus("scheduler", nats_server.url)
    seen: dict[str, str | None] = {}
    emitted: asyncio.Queue[dict[str, str]] = asyncio.Queue()

    async def on_ping(msg: PingService, d: Delivery) -> None:
        seen["handler"] = current_trace_id()
        await scheduler.publish(ServicePinged(nonce=msg.nonce, service="scheduler"))

    async def on_pinged(msg: ServicePinged, d: Delivery) -> None:
        emitted.put_nowait(d.headers)
        seen["downstream"] = current_trace_id()

    await scheduler.consume(PingService, on_ping)
    await api.consume(ServicePinged, on_pinged)
    try:
        with tracer().start_as_current_span("POST /v1/applications/x/deployments"):
            origin = current_trace_id()
            await api.publish(PingService(nonce="trace"))
        headers = await asyncio.wait_for(emitted.get(), 10)
        assert origin and seen["handler"] == origin and seen["downstream"] == origin
        assert headers["traceparent"].split("-")[1] == origin
    finally:
        await api.close(timeout=2)
        await scheduler.close(timeout=2)
