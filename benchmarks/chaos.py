"""The chaos suite: deploys while Berth's processes are killed, then the invariants (``make chaos``).

``python -m benchmarks.chaos [--deploys 50] [--kills 12] [--seed N]`` starts the platform as a user runs it
(``berth up``, split mode, a temporary data directory and free ports), makes a few web applications (half
from a prebuilt image, half from a local git repository built by the builder) and requests ``--deploys``
deployments of them at random intervals, each with new content (an image application's variable, a git
application's commit), while the storm (``support/chaos_storm.py``) kills -9 random Berth services and each
of NATS, Postgres and Traefik once, and kills the local Docker engine -9 and starts it again once. That
engine is one of the run's own (``tests/support/private_engine.py``: its own dockerd, socket, data root and
bridge in the machine's network namespace), which the whole platform is pointed at by ``DOCKER_HOST``:
the machine's engine is shared with other work and is never restarted. A request the API could not answer (it was killed) is retried while it
cannot have been received; one cut after it was sent is counted ``ambiguous`` and found again in the listing.
After the last blow every deployment must end within ``SETTLE_S``; then the invariants of
``support/chaos_checks.py`` are checked (again for up to ``CONVERGE_S`` while the API's projection catches
up). Then the local engine is killed -9 and started again once more, with no deployment running, and the
invariants are checked again until its applications serve their live version again (``local_back_after_s``):
a crashed engine does not apply restart policies to the containers it finds, so only the scheduler's
revival pass (``services/scheduler/.../rollout/revive.py``) brings them back; a problem found before that
crash still counts. The counts are written to ``benchmarks/results/chaos.json``.

The seed is printed first and kept in the result: the same seed replays the same plan (applications,
order of the blows, the pauses; the moments a blow meets depend on the machine's speed).

With ``--test-server`` (the default) a namespace test server (its own dockerd and sshd) is added to the
platform, ``REMOTE_APPS`` image applications are placed on it and deployed once, and during the storm its
Docker engine is killed -9 and started again and its disk is filled while a deployment there is requested
(``support/chaos_server.py``); the checks cover its engine and its Traefik's routes too, and after the
storm its engine is restarted once more, with no deployment, until its applications serve again
(``server_back_after_s``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.support import chaos_checks as checks
from benchmarks.support.chaos_client import Ambiguous, Client
from benchmarks.support.chaos_server import WEB_PORT, Remote, start_server_storm
from benchmarks.support.chaos_storm import ENGINE, INFRA, Storm, plan
from benchmarks.support.http import HttpError, get_once
from benchmarks.support.platform import SERVE_CONTENT, BerthUp, busybox_image
from tests.support.private_engine import PrivateEngine, start_engine

NAME = "chaos"
GOALS = {"stuck": ("<=", 0.0), "orphans": ("<=", 0.0), "duplicates": ("<=", 0.0)}
SETTLE_S = 300.0
CONVERGE_S = 60.0
GAP_S = (0.5, 4.0)
# between two looks at a state awaited (a deployment's end, every deployment ended, the invariants): a look
# is a few API calls (and ``docker ps``), so a short pause costs little and the wait ends when the state does
POLL_S = 0.5
REMOTE_APPS = 2  # image applications placed on the test server (with --test-server)


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo``; what it printed."""
    return subprocess.run(
        ["git", "-c", "user.name=chaos", "-c", "user.email=chaos@localhost", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout


def commit_site(repo: Path, content: str, base: str) -> str:
    """A commit with new content; its build takes a few seconds (a step that sleeps, after the content: never cached), so that a blow can
    meet a build in progress."""
    (repo / "Dockerfile").write_text(
        f"FROM {base}\nCOPY index.html /www/index.html\nRUN sleep 3\nEXPOSE 8080\n"
        'CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]\n'
    )
    (repo / "index.html").write_text(content + "\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", content)
    return git(repo, "rev-parse", "HEAD").strip()


class Workload:
    """The run's applications and every deployment it requested, with the content each one should serve."""

    def __init__(
        self, platform: BerthUp, client: Client, rng: random.Random, engine: PrivateEngine | None = None
    ) -> None:
        self.platform, self.client, self.rng = platform, client, rng
        self.docker_host = engine.docker_host if engine is not None else None  # the local engine (None: the machine's)
        self.base = busybox_image()
        self.apps: list[dict[str, Any]] = []
        self.repos: dict[str, Path] = {}
        self.content: dict[str, str] = {}  # deployment id -> content
        self.commits: dict[str, str] = {}  # commit id -> content (git applications)
        self.accepted: list[str] = []
        self.ambiguous = 0
        self.refused: list[str] = []
        self.server_deploys = 0  # the ones the test server's storm requested (while its disk was full)

    async def make_apps(self, count: int, remote: int = 0, server: str = "") -> None:
        """``count`` applications on the local server (image and git in turn), ``remote`` image applications
        placed on ``server``."""
        project = await self.client.call("POST", "/v1/projects", 201, {"name": f"chaos-{os.getpid()}"})
        env_id = project["environments"][0]["id"]
        for i in range(count + remote):
            name = f"chaos{i}" if i < count else f"chaosr{i - count}"
            service: dict[str, Any] = {"kind": "web", "name": "web", "port": 8080, "health_path": "/"}
            if i >= count:
                service["servers"] = [server]
            if i % 2 == 0 or i >= count:
                source = {"kind": "image", "image": self.base}
                body = {
                    "name": name,
                    "source": source,
                    "services": [{**service, "command": ["sh", "-c", SERVE_CONTENT]}],
                    "env": [{"name": "CONTENT", "value": f"{name} v0"}],
                    "stop_timeout_s": 5,
                }
            else:
                repo = self.platform.root / f"repo-{name}"
                repo.mkdir()
                git(repo, "init", "-q", "-b", "main")
                self.commits[commit_site(repo, f"{name} v0", self.base)] = f"{name} v0"
                self.repos[name] = repo
                body = {
                    "name": name,
                    "source": {"kind": "git", "repository": str(repo), "branch": "main"},
                    "services": [service],
                    "stop_timeout_s": 5,
                }
            url = f"/v1/environments/{env_id}/applications"
            app = await self.client.call("POST", url, 201, body)
            self.apps.append(app)
            self.platform.apps.append(app["id"])

    async def deploy(self, n: int, app: dict[str, Any] | None = None) -> str | None:
        """Deploy ``n``: new content for ``app`` (default: the ``n``-th application for the first of them, so
        each has one, git ones too, whose built images the checks look at; then a random one), then the
        request. The deployment's id (None: refused, or its answer lost)."""
        app = app or (self.apps[n] if 0 <= n < len(self.apps) else self.rng.choice(self.apps))
        content = f"{app['name']} d{n}"
        try:
            if app["name"] in self.repos:
                made = await asyncio.to_thread(commit_site, self.repos[app["name"]], content, self.base)
                self.commits[made] = content
            else:
                env = [{"name": "CONTENT", "value": content}]
                await self.client.call("PATCH", f"/v1/applications/{app['id']}", 200, {"env": env})
            out = await self.client.call(
                "POST", f"/v1/applications/{app['id']}/deployments", 202, {"options": {"drain_grace_s": 1.0}}
            )
        except Ambiguous as exc:
            self.ambiguous += 1
            print(f"[chaos] deploy {n}: {exc}", flush=True)
            return None
        except RuntimeError as exc:
            self.refused.append(str(exc)[:300])
            print(f"[chaos] deploy {n} refused: {exc}", flush=True)
            return None
        self.accepted.append(out["id"])
        self.content[out["id"]] = content
        return str(out["id"])

    async def ended(self, deployment_id: str, bound_s: float = SETTLE_S) -> dict[str, Any]:
        """The deployment once it ended (or as it is after ``bound_s``)."""
        deadline = time.monotonic() + bound_s
        while True:
            got: dict[str, Any] = await self.client.call("GET", f"/v1/deployments/{deployment_id}", 200)
            if got["status"] in checks.TERMINAL or time.monotonic() > deadline:
                return got
            await asyncio.sleep(POLL_S)

    def expected(self, deployment: dict[str, Any]) -> str:
        """What ``deployment`` serves: the content of the commit it records having built (a git deployment
        requested while the builder was away resolves its branch when it builds, maybe onto a later commit),
        else the content it was requested with. A recorded commit the run never made serves nothing known."""
        commit = deployment.get("commit")
        if commit is None:
            return self.content[deployment["id"]]
        return self.commits.get(commit, f"<unknown commit {commit}>")

    async def deployments(self, app_id: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = await self.client.call(
            "GET", f"/v1/applications/{app_id}/deployments?limit=200", 200
        )
        return out


async def settle(work: Workload, bound_s: float) -> tuple[float, dict[str, list[dict[str, Any]]]]:
    """Wait until every deployment of every application ended (up to ``bound_s``): the seconds it took and
    the deployments as the API lists them then."""
    start = time.monotonic()
    while True:
        listed = {a["id"]: await work.deployments(a["id"]) for a in work.apps}
        open_ = [d for ds in listed.values() for d in ds if d["status"] not in checks.TERMINAL]
        if not open_ or time.monotonic() - start > bound_s:
            return time.monotonic() - start, listed
        await asyncio.sleep(POLL_S)


async def inspect(
    work: Workload, team: str, remote: Remote | None = None
) -> tuple[checks.Findings, dict[str, list[dict[str, Any]]]]:
    """Every invariant once, on the state as it is now (on the local engine and the test server's)."""
    f = checks.Findings()
    listed = {a["id"]: await work.deployments(a["id"]) for a in work.apps}
    details = [await work.client.call("GET", f"/v1/applications/{a['id']}", 200) for a in work.apps]
    local_containers = checks.containers(f"berth.team={team}", host=work.docker_host)
    there = remote.containers(team) if remote is not None else []
    team_containers = local_containers + there
    ours = {a["id"] for a in work.apps}
    for c in team_containers:
        if c.app not in ours:
            f.orphans.append(f"container {c.name} of no application of the run ({c.app!r})")
    for app in details:
        checks.check_app(app, listed[app["id"]], team_containers, f)
        checks.check_images(app, listed[app["id"]], f, host=work.docker_host)
    checks.check_volumes(team, details, f, host=work.docker_host)
    up = [c for c in local_containers if c.state == "running"]
    local_apps = [a for a in details if not any(s.get("servers") for s in a["services"])]
    checks.check_routes(checks.route_files(work.platform.paths.traefik_dynamic), local_apps, up, f)
    if remote is not None:
        remote.check_routes([a for a in details if a not in local_apps], [c for c in there if c.state == "running"], f)
    every = {d["id"]: d for ds in listed.values() for d in ds}
    checks.check_ends(
        every, await checks.bus_ends(work.platform.nats_url, work.platform.bus_identity("admin")["password"]), f
    )
    missing = [d for d in work.accepted if d not in every]
    f.stuck += [f"deployment {d} accepted but not listed" for d in missing]
    for app in details:
        live = (app.get("live") or {}).get("deployment_id")
        if live not in work.content:
            continue
        expected = work.expected(every[live]) if live in every else work.content[live]
        host = app["services"][0]["hosts"][0]
        where = (WEB_PORT, remote.server.address) if remote and app not in local_apps else (work.platform.proxy_port,)
        try:
            got = await get_once(where[0], host, address=where[1] if len(where) > 1 else "127.0.0.1")
            body = got.body.decode(errors="replace").strip()
        except (HttpError, OSError) as exc:
            body, got = f"error {exc}", None
        f.checked["served"] += 1
        f.checked["served_on_server"] += len(where) > 1
        if got is None or got.status != 200 or body != expected:
            f.serving_wrong.append(f"{app['name']}: live serves {body[:80]!r}, expected {expected!r}")
            if len(where) > 1 and remote is not None:  # on the test server: what it shows of the application
                seen = remote.look_at(app["id"])
                if remote.looked.get(app["id"]) != seen:  # printed when it changes
                    print(f"[chaos] {app['name']} on the test server: {seen}", flush=True)
                    remote.looked[app["id"]] = seen
    return f, listed


async def converge(
    work: Workload, team: str, remote: Remote | None
) -> tuple[checks.Findings, dict[str, list[dict[str, Any]]], float]:
    """The invariants, checked again for up to ``CONVERGE_S`` while they do not hold yet (the API's projection
    catching up, replicas started again): the last findings, the deployments, the seconds it took. What
    does not hold yet is printed each time it changes (a slow convergence shows what it waited for)."""
    start = time.monotonic()
    shown: dict[str, list[str]] = {}
    while True:
        findings, listed = await inspect(work, team, remote)
        problems = findings.problems()
        if not problems or time.monotonic() - start > CONVERGE_S:
            return findings, listed, round(time.monotonic() - start, 1)
        if problems != shown:
            brief = {k: [p[:160] for p in v[:3]] for k, v in problems.items()}
            print(f"[chaos] not yet at {time.monotonic() - start:.1f}s: {brief}", flush=True)
            shown = problems
        await asyncio.sleep(POLL_S)


async def measure(
    platform: BerthUp,
    deploys: int,
    kills: int,
    seed: int,
    apps: int = 4,
    remote: Remote | None = None,
    infra: tuple[str, ...] = INFRA,
    engine: PrivateEngine | None = None,
) -> dict[str, Any]:
    rng = random.Random(seed)
    local_back_after_s: float | None = None
    client = Client(platform)
    work = Workload(platform, client, rng, engine)
    server_storm = None
    try:
        if remote is not None:
            await remote.add(client.call)
        await work.make_apps(apps, REMOTE_APPS if remote else 0, remote.name if remote else "")
        team = (await client.call("GET", "/v1/me", 200))["team"]["id"]
        blows = plan(rng, kills, infra)
        # the blows spread over the time the requests take (on average), not all in its first part
        mean = max(1.5, deploys * sum(GAP_S) / 2 / max(1, len(blows)))
        storm = Storm(platform.paths.state, blows, random.Random(rng.random()), (0.3 * mean, 1.7 * mean))
        met: list[int] = []  # the containers the local engine ran when it crashed
        if engine is not None:
            storm.engine_restart = lambda: crash_engine(engine, met)
        stop = asyncio.Event()
        if remote is not None:
            server_storm = await start_server_storm(
                work, [a for a in work.apps if a["name"].startswith("chaosr")], remote, rng
            )
        t0 = time.monotonic()
        storming = [asyncio.create_task(storm.run(stop))]
        if server_storm is not None:
            storming.append(asyncio.create_task(server_storm.run()))
        for n in range(deploys):
            await work.deploy(n)
            await asyncio.sleep(rng.uniform(*GAP_S))
        await asyncio.gather(*storming)
        storm_s = time.monotonic() - t0
        settle_s, listed = await settle(work, SETTLE_S)
        findings, listed, _ = await converge(work, team, remote)
        if engine is not None:  # the local apps come back after an engine crash with no deployment (the revival)
            await asyncio.to_thread(crash_engine, engine, met)
            later, listed, local_back_after_s = await converge(work, team, remote)
            findings = merged(findings, later)
        if server_storm is not None:  # the apps there come back after an engine restart with no deployment
            server_storm.engine_restarts += 1
            await asyncio.to_thread(remote.server.restart_dockerd)  # type: ignore[union-attr]
            findings, listed, server_storm.back_after_s = await converge(work, team, remote)
        wall_s = time.monotonic() - t0
    finally:
        await client.close()
    every = [d for ds in listed.values() for d in ds]
    statuses = Counter(d["status"] for d in every)
    reasons = Counter(
        f"{d['status']} in {d.get('ended_in')}: {(d.get('reason') or '')[:120]}"
        for d in every
        if d["status"] in ("failed", "cancelled")
    )
    problems = findings.problems()
    return {
        "seed": seed,
        "deploys": deploys,
        "recorded": len(every),
        "accepted": len(work.accepted),
        "ambiguous": work.ambiguous,
        "refused": len(work.refused),
        "warm_deploys": REMOTE_APPS if remote is not None else 0,
        "server_deploys": work.server_deploys,
        "succeeded": statuses.get("succeeded", 0),
        "failed": statuses.get("failed", 0) + statuses.get("cancelled", 0),
        "kills": storm.kills,
        "restarts": storm.restarts,
        "stuck": len(findings.stuck),
        "orphans": len(findings.orphans),
        "duplicates": len(findings.duplicates) + len(findings.done_twice),
        "no_reason": len(findings.no_reason),
        "api_mismatches": len(findings.api_mismatches) + len(findings.end_mismatch) + len(findings.serving_wrong),
        "failed_build_images": findings.failed_images,
        "wall_s": round(wall_s, 1),
        "storm_s": round(storm_s, 1),
        "settle_s": round(settle_s, 1),
        "api_retries": client.retries,
        "blows": [b.public() for b in storm.done],
        "engine_crashes_met": met,  # containers running at each crash of the local engine (an engine of the run's)
        "local_back_after_s": local_back_after_s,  # from the local engine's restart after the storm to the invariants
        "checked": dict(findings.checked),
        "failure_reasons": dict(reasons.most_common(10)),
        "problems": {k: v[:10] for k, v in problems.items()},
        "refusals": work.refused[:5],
        **await checks.stream_counts(platform.nats_url, platform.bus_identity("admin")["password"]),
        **(server_storm.counts() if server_storm is not None else {}),
    }


def merged(first: checks.Findings, then: checks.Findings) -> checks.Findings:
    """``then`` with every problem ``first`` found that it does not repeat: a problem found before a later
    blow still counts when that blow hides it."""
    for key, found in first.problems().items():
        later: list[str] = getattr(then, key)
        later += [p for p in found if p not in later]
    return then


def crash_engine(engine: PrivateEngine, met: list[int], wait_s: float = 60.0) -> tuple[float, int | None]:
    """The local engine killed -9 and started again once it runs an application's container (waited for up
    to ``wait_s``: a crash that meets replicas is the one Berth must recover from): the seconds the restart
    took and the pid of the dockerd killed. ``met`` gets the number of containers it ran when killed."""
    deadline = time.monotonic() + wait_s
    running: list[str] = []
    while time.monotonic() < deadline:
        running = engine.docker("ps", "-q", "--filter", "label=berth.app").split()
        if running:
            break
        time.sleep(0.2)
    met.append(len(running))
    return engine.restart(), engine.last_killed


def remove_images(app_ids: list[str]) -> None:
    """The images the run's builds made (the engine may be shared: only those labelled for its applications)."""
    for app_id in app_ids:
        ids = checks.docker("images", "-q", "--filter", f"label=berth.application={app_id}").split()
        if ids:
            subprocess.run([checks.DOCKER, "rmi", "-f", *sorted(set(ids))], capture_output=True, timeout=120)


async def run_chaos(
    deploys: int, kills: int, seed: int, apps: int = 4, *, server: bool = False, infra: tuple[str, ...] = INFRA
) -> dict[str, Any]:
    """The run; ``server``: with a test server (``support/chaos_server.py``), ``REMOTE_APPS`` applications on
    it, its engine restarted and its disk filled during the storm. With ``docker`` among ``infra`` the
    platform's local engine is one of the run's own (started first, the base image loaded into it, removed
    last with everything it ran), restarted in the storm."""
    print(f"[chaos] seed {seed} ({deploys} deploys, {kills} kills, {apps} applications, server {server})", flush=True)
    image = busybox_image()
    load_before = os.getloadavg()[0]
    env = {"BERTH_ALLOW_LOCAL_GIT": "1"}
    remote = engine = None
    keep = os.environ.get("BERTH_CHAOS_KEEP_LOGS")
    try:
        if ENGINE in infra:
            engine = await asyncio.to_thread(start_engine)
            await asyncio.to_thread(engine.load_image, image)
            env["DOCKER_HOST"] = engine.docker_host
        if server:
            traefik_root = Path(tempfile.mkdtemp(prefix="berth-chaos-traefik-"))
            remote = await asyncio.to_thread(Remote.start, traefik_root, image)
            env["BERTH_SERVER_TRAEFIK_ROOT"] = str(traefik_root)
        platform = await asyncio.to_thread(BerthUp(extra_env=env).start)
        try:
            result = await measure(platform, deploys, kills, seed, apps, remote, infra, engine)
        except BaseException:
            print("[chaos] failed (BERTH_CHAOS_KEEP_LOGS=DIR keeps the platform's logs)", file=sys.stderr)
            raise
        finally:
            if keep:
                shutil.copytree(platform.paths.logs, Path(keep) / f"chaos-{seed}", dirs_exist_ok=True)
            await asyncio.to_thread(platform.stop)
            if engine is None:  # a private engine goes with everything it holds
                await asyncio.to_thread(remove_images, platform.apps)
    finally:
        if remote is not None:
            await asyncio.to_thread(remote.stop, Path(keep) / f"chaos-{seed}" if keep else None)
            shutil.rmtree(remote.traefik_root, ignore_errors=True)
        if engine is not None:
            if keep:
                (Path(keep) / f"chaos-{seed}").mkdir(parents=True, exist_ok=True)
                shutil.copy(engine.root / "dockerd.log", Path(keep) / f"chaos-{seed}" / "local-dockerd.log")
            await asyncio.to_thread(engine.stop)
    load_avg = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    return {**result, "up_s": round(platform.up_s, 1), "load_avg_1m": load_avg}


def main(argv: list[str] | None = None) -> int:
    from benchmarks.run import RESULTS, machine, write

    parser = argparse.ArgumentParser(prog="python -m benchmarks.chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--deploys", type=int, default=50)
    parser.add_argument(
        "--kills", type=int, default=12, help="Berth services killed (NATS, Postgres, Traefik: once each)"
    )
    parser.add_argument("--apps", type=int, default=4)
    parser.add_argument(
        "--test-server",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="a namespace test server too: applications on it, its Docker engine restarted, its disk filled",
    )
    parser.add_argument("--seed", type=int, default=None, help="replay a run (default: a new seed, printed)")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    result = asyncio.run(run_chaos(args.deploys, args.kills, seed, args.apps, server=args.test_server))
    from datetime import UTC, datetime

    result["goals"] = {k: list(v) for k, v in GOALS.items()}
    result["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    result["machine"] = machine()
    path = write(NAME, result)
    keys = ("seed", "deploys", "succeeded", "failed", "kills", "restarts", "stuck", "orphans", "duplicates", "wall_s")
    print({k: result[k] for k in keys})
    if result["problems"]:
        print("problems:", result["problems"])
    print(f"-> {path.relative_to(RESULTS.parent.parent)}")
    return 0 if not any(result[k] for k in ("stuck", "orphans", "duplicates", "no_reason")) else 1


if __name__ == "__main__":
    sys.exit(main())
