"""Session fixtures: a real nats-server and a real Postgres (from the project's wheels), never mocks."""

from __future__ import annotations

import os
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.procs import NatsServer, Postgres, create_database, migrated_template
from tests.support.spares import Spares
from tests.support.spares import nats_spares as spares_of_nats

os.environ.setdefault("BERTH_ENV", "test")
# Services the tests start (in-process or as child processes) run their migrations in their own process:
# the child Python process that production uses to keep alembic out of a service's memory costs a second or
# more per service start, and the tests start services over a thousand times. `berth up` in the end-to-end
# tests keeps the production default (tests/e2e/conftest.py), and tests/common/test_db_migrate_process.py
# runs the child process itself.
os.environ.setdefault("BERTH_MIGRATE_IN_SUBPROCESS", "false")
# A stopping service ends its consumers' idle fetches at once (tests/common/test_bus_stop.py), but sits out a
# fetch that already got something (production: up to a second); the tests stop services over a thousand
# times. tests/common/test_bus_delivery.py covers both the wait and the stop.
os.environ.setdefault("BERTH_FETCH_WAIT_S", "0.25")
# The test suite's git servers, registries, S3 store, chat and forge receivers all listen on loopback, which
# the outbound rule (berth_common.outbound) refuses: the tests allow loopback explicitly, for every service
# they start in-process or as a child process. Tests of the rule itself build their policy without it.
os.environ.setdefault("BERTH_OUTBOUND_ALLOW", "127.0.0.0/8,::1/128")

# About the seconds the longest files take on a 2-core machine (each file's setup, call and teardown times, from the
# JUnit report of a whole-suite ``-n 3 --dist loadfile`` run: the run of 27 minutes in which every test passed, less
# what a later change saved, measured file by file with ``-n 0`` and scaled to that run). Under xdist
# (``--dist loadfile``) the files are handed out longest first, so the short ones fill the end and no worker idles
# while the other runs one long end-to-end file. A file not named here counts by its marks (``slow``: SLOW_FILE_S).
LONG_FILES_S = {
    "tests/e2e/test_chaos_server.py": 150,
    "tests/e2e/test_traefik_upgrade.py": 130,
    "tests/e2e/test_control_plane_backup.py": 105,
    "tests/security/test_injection.py": 95,
    "tests/e2e/test_platform.py": 90,
    "tests/security/test_fuzz.py": 90,
    "tests/scheduler/test_rollout.py": 85,
    "tests/servers/test_swarm_rollout.py": 62,
    "tests/servers/test_git_two_servers.py": 75,
    "tests/servers/test_placement_e2e.py": 75,
    "tests/servers/test_remote_proxy_handover.py": 80,
    "tests/servers/test_swarm_apps.py": 75,
    "tests/e2e/test_data_plane.py": 70,
    "tests/scheduler/test_runs.py": 65,
    "tests/proxy/test_acme_renewal.py": 65,
    "tests/scheduler/test_databases.py": 60,
    "tests/security/test_schemathesis_cli.py": 60,
    "tests/dashboard/test_dashboard_e2e.py": 60,
    "tests/e2e/test_compose_published_ports.py": 60,
    "tests/e2e/test_private_checkout.py": 55,
    "tests/scheduler/test_scale.py": 55,
    "tests/scheduler/test_backups.py": 55,
    "tests/proxy/test_tls_acme.py": 55,
    "tests/metrics/test_service.py": 50,
    "tests/api/test_previews.py": 50,
    "tests/e2e/test_previews_e2e.py": 60,
    "tests/api/test_webhooks.py": 50,
    "tests/e2e/test_chaos.py": 45,
    "tests/metrics/test_database_health_down.py": 45,
    "tests/scheduler/test_drills.py": 45,
    "tests/scheduler/test_schedules.py": 45,
    "tests/scheduler/test_cron_jobs.py": 40,
    "tests/servers/test_volume_move.py": 90,
    "tests/servers/test_drain_moves.py": 110,
    "tests/scheduler/test_database_revival.py": 75,
    "tests/servers/test_dead_server_skip.py": 60,
    "tests/servers/test_swarm_unreached_nodes.py": 45,
    "tests/servers/test_swarm_overlay_probe.py": 70,
    "tests/scheduler/test_image_retention.py": 40,
    "tests/scheduler/test_port_routes_docker.py": 20,
    "tests/e2e/test_compose_deploy.py": 40,
    "tests/scheduler/test_backup_worker.py": 40,
    "tests/cli/test_client_platform.py": 35,
    "tests/scheduler/test_volume_backups.py": 35,
    "tests/scheduler/test_drill_engines.py": 35,
    "tests/dashboard/test_accessibility.py": 95,
    "tests/servers/test_backup_server.py": 35,
    "tests/scheduler/test_pre_deploy.py": 35,
    "tests/notifier/test_backup_delivery.py": 35,
    "tests/scheduler/test_database_masking.py": 35,
    "tests/scheduler/test_database_upgrade.py": 30,
    "tests/security/test_rbac_matrix.py": 30,
    "tests/scheduler/test_swarm_images.py": 30,
    "tests/scheduler/test_removal.py": 30,
    "tests/api/test_volumes_api.py": 30,
    "tests/common/test_bus_cluster.py": 30,
    "tests/scheduler/test_volumes.py": 30,
    "tests/api/test_databases_api.py": 30,
    "tests/servers/test_scale_servers.py": 30,
    "tests/servers/test_compose_scale_servers.py": 30,
    "tests/servers/test_disk_full_deploy.py": 40,
    "tests/e2e/test_template_files.py": 25,
    "tests/dashboard/test_catalogue_team.py": 25,
    "tests/e2e/test_deploy_flow.py": 25,
    "tests/api/test_cron_e2e.py": 25,
    "tests/scheduler/test_backup_encryption.py": 25,
    "tests/scheduler/test_readiness_diagnosis.py": 25,
    "tests/builder/test_builds.py": 25,
    "tests/notifier/test_delivery.py": 25,
    "tests/cli/test_client_live_logs.py": 25,
    "tests/cli/test_client_apps.py": 25,
    "tests/proxy/test_remote_ca_reason.py": 25,
    "tests/api/test_volume_backups_api.py": 20,
    "tests/scheduler/test_database_allowlist_remote.py": 20,
    "tests/api/test_jobs_api.py": 20,
    "tests/scheduler/test_pull.py": 20,
    "tests/common/test_bus_delivery.py": 20,
    "tests/api/test_drills_api.py": 20,
    "tests/servers/test_remote_routes.py": 20,
    "tests/servers/test_compose_build_servers.py": 20,
    "tests/dashboard/test_dashboard.py": 20,
    "tests/servers/test_remote_proxy.py": 20,
    "tests/api/test_auth.py": 20,
    "tests/proxy/test_dns01.py": 20,
    "tests/proxy/test_cert_refresh_servers.py": 20,
    "tests/proxy/test_ended_upload.py": 20,
    "tests/scheduler/test_backup_engines.py": 20,
    "tests/e2e/test_compose_paths.py": 20,
    "tests/metrics/test_database_down_remote.py": 20,
    "tests/dashboard/test_servers_data.py": 20,
    "tests/scheduler/test_database_allowlist.py": 20,
    "tests/proxy/test_routing.py": 15,
    "tests/cli/test_client_deploy.py": 15,
    "tests/scheduler/test_run_cancel.py": 15,
    "tests/servers/test_swarm.py": 15,
    "tests/servers/test_swarms_api.py": 15,
    "tests/scheduler/test_docker_replicas.py": 15,
    "tests/scheduler/test_restore_verify.py": 15,
    "tests/proxy/test_coalescing.py": 15,
    "tests/dashboard/test_observe.py": 15,
    "tests/api/test_deployments.py": 15,
    "tests/cli/test_client_git_access.py": 15,
    "tests/api/test_runtime_logs.py": 15,
    "tests/cli/test_backup_nats.py": 15,
    "tests/api/test_backups_e2e.py": 15,
    "tests/metrics/test_reachability.py": 15,
    "tests/api/test_compose_api.py": 15,
    "tests/common/test_bus_crash.py": 15,
    "tests/scheduler/test_rollout_workers.py": 15,
    "tests/api/test_templates_api.py": 15,
    "tests/metrics/test_every_server.py": 15,
    "tests/scheduler/test_git_flow.py": 15,
    "tests/api/test_compose_paths.py": 15,
    "tests/e2e/test_compose_build_deploy.py": 15,
    "tests/e2e/test_compose_build_rollback.py": 15,
    "tests/e2e/test_template_deploy.py": 15,
    "tests/api/test_runs_api.py": 15,
    "tests/api/test_application_removal.py": 15,
    "tests/scheduler/test_app_files_rollout.py": 15,
    "tests/api/test_outbound_api.py": 15,
    "tests/common/test_bus_deadletter.py": 15,
    "tests/api/test_scale_api.py": 15,
    "tests/api/test_backups_api.py": 15,
    "tests/proxy/test_recovery.py": 15,
    "tests/servers/test_servers_api.py": 15,
}
SLOW_FILE_S = 30
# End-to-end files whose tests each make their own project and applications (names and hosts of their own) on a
# running `berth up`, and never stop it: they share one platform (tests/e2e/conftest.py, ``shared_platform``)
# instead of one each (an `up` and a `down` take about 30 s), and xdist hands them to one worker as one unit.
SHARED_PLATFORM_FILES = (
    "tests/e2e/test_compose_build_deploy.py",
    "tests/e2e/test_compose_deploy.py",
    "tests/e2e/test_compose_build_rollback.py",
    "tests/e2e/test_compose_paths.py",
    "tests/e2e/test_compose_volume_options.py",
    "tests/e2e/test_deploy_flow.py",
    "tests/e2e/test_template_deploy.py",
    "tests/e2e/test_template_files.py",
)
SHARED_PLATFORM_SCOPE = "shared-platform"


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput") or getattr(config.option, "dist", "no") == "no":
        return
    # The controller keeps the files in the order the workers collected them (longest first, below)
    # instead of xdist's default order by number of tests, which put the few-test end-to-end files last.
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


@pytest.hookimpl(tryfirst=True, optionalhook=True)  # without xdist (``-p no:xdist``) the hook is unknown
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadfile``, but the files of SHARED_PLATFORM_FILES are one unit (their shared platform)."""
    if getattr(config.option, "dist", "no") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class Scheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return SHARED_PLATFORM_SCOPE if path in SHARED_PLATFORM_FILES else path

    return Scheduling(config, log)


def file_cost(path: str, items: list[pytest.Item]) -> float:
    """The expected seconds of one test file: measured for the long ones, else estimated from its marks (the files
    of a shared platform count together, as the one unit they are)."""
    if path in SHARED_PLATFORM_FILES:
        return sum(LONG_FILES_S.get(f, SLOW_FILE_S) for f in SHARED_PLATFORM_FILES)
    if path in LONG_FILES_S:
        return LONG_FILES_S[path]
    if any(item.get_closest_marker("slow") for item in items):
        return SLOW_FILE_S + len(items)
    return 0.05 * len(items)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist, test files longest first (the tests of a file keep their order)."""
    if not hasattr(config, "workerinput"):
        return
    files: dict[str, list[pytest.Item]] = {}
    for item in items:
        files.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    ordered = sorted(files.items(), key=lambda kv: -file_cost(kv[0], kv[1]))  # stable: ties keep their order
    items[:] = [item for _, group in ordered for item in group]


# The first failure of each test run again (``make test``: ``--reruns 1``), with what the test printed, kept by the
# controller and printed at the end: a test that passed only on its rerun is flaky, and its first failure says why.
_RERUN_FAILURES: list[tuple[str, str]] = []
RERUN_SHOWN_CHARS = 6000


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.outcome == "rerun" and not os.environ.get("PYTEST_XDIST_WORKER"):
        printed = "".join(
            f"\n--- {title}\n{text[-RERUN_SHOWN_CHARS:]}" for title, text in report.sections if "stdout" in title
        )
        _RERUN_FAILURES.append((f"{report.nodeid} ({report.when})", report.longreprtext[-RERUN_SHOWN_CHARS:] + printed))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _RERUN_FAILURES:
        return
    terminalreporter.section(
        "first failures of the tests run again (one that passed on its rerun is flaky: a defect to fix)"
    )
    for name, text in _RERUN_FAILURES:
        terminalreporter.write_line(f"--- {name}")
        terminalreporter.write_line(text)


@pytest.fixture(scope="session")
def tmp_root() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="berth-test-"))
    root.chmod(0o755)
    yield root
    # Removed in the background: by the end of a run it holds every test's database (tens of thousands of
    # files), whose removal took the session's last seconds; nothing here reads it again.
    subprocess.Popen(
        ["rm", "-rf", "--", str(root)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


@pytest.fixture(scope="session")
def nats_spares(tmp_root: Path) -> Iterator[Spares[NatsServer]]:
    """Fresh nats-servers for the tests, each started while the test before runs (tests/support/spares.py)."""
    spares = spares_of_nats(tmp_root / "nats")
    yield spares
    spares.close()


@pytest.fixture(scope="session")
def traefik_spares(tmp_root: Path) -> Iterator[Spares[Any]]:
    """Fresh Traefiks for the tests that need one, each started while the test before runs
    (tests/support/spares.py)."""
    from tests.support.spares import traefik_spares as spares_of_traefik

    spares = spares_of_traefik(tmp_root / "traefiks")
    yield spares
    spares.close()


@pytest.fixture
def nats_server(nats_spares: Spares[NatsServer]) -> Iterator[NatsServer]:
    """A fresh nats-server (JetStream on, own store) per test: streams and consumers never leak. It was started
    while the test before ran (``nats_spares``)."""
    server = nats_spares.take()
    yield server
    server.kill()  # its store is not needed again: no graceful JetStream shutdown (NatsServer.kill)


@pytest.fixture(scope="module")
def module_nats_server(tmp_root: Path) -> Iterator[NatsServer]:
    """A nats-server shared by the tests of one module (for expensive module fixtures built on a bus)."""
    data = tmp_root / f"nats-module-{uuid.uuid4().hex[:8]}"
    data.mkdir()
    server = NatsServer(data).start()
    yield server
    server.kill()


@pytest.fixture(scope="session")
def postgres(tmp_root: Path) -> Iterator[Postgres]:
    (tmp_root / "pg").mkdir()
    server = Postgres(tmp_root / "pg").start()
    yield server
    server.stop()


@pytest.fixture
async def database(postgres: Postgres) -> AsyncIterator[str]:
    """A fresh database (admin URL) for one test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield await create_database(postgres.admin_url, name)


@pytest.fixture
async def empty_database(postgres: Postgres) -> AsyncIterator[str]:
    """A fresh, empty database even where a directory's ``database`` is a migrated copy (tests/api)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield await create_database(postgres.admin_url, name)


@pytest.fixture(scope="session")
async def services_template(postgres: Postgres) -> str:
    """A database where every service is provisioned (secret key ``test-secret``) and migrated to head, made once
    per test process (``migrated_template``), for the tests that start several services on one database (the
    api's revisions alone take a second of each start on an empty one, more while the scheduler and proxy-sync
    migrate beside it). A directory whose tests start one or two services copies a template of those only
    (tests/api, scheduler, proxy): a copy of this one takes 40-90 ms longer."""
    from berth_common.db.provision import SERVICES

    return await migrated_template(postgres.admin_url, tuple(SERVICES))


@pytest.fixture
async def migrated_database(postgres: Postgres, services_template: str) -> str:
    """A fresh database (admin URL) for one test: a copy of ``services_template``, so the services a test starts
    find their schemas at head. tests/servers and tests/metrics take it as their ``database``; the migrations
    themselves run on ``empty_database``."""
    return await create_database(postgres.admin_url, f"t_{uuid.uuid4().hex[:12]}", template=services_template)


@pytest.fixture(scope="module")
async def module_database(postgres: Postgres) -> AsyncIterator[str]:
    """A database (admin URL) shared by the tests of one module."""
    name = f"m_{uuid.uuid4().hex[:12]}"
    yield await create_database(postgres.admin_url, name)


@pytest.fixture(scope="session", autouse=True)
def sealing_key() -> None:
    """Secret values travel sealed: the test process seals and opens them with this key (a service served
    in-process configures its own at start, and values sealed with this one still open)."""
    from berth_common import sealing

    sealing.configure("berth-tests-sealing-key")


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:8]
