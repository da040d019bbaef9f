"""Why a Swarm version is not ready, in the words replicas use (pure): each task's state, how its container
ended or Swarm's error, running tasks that do not pass the check; the same words counted once."""

from __future__ import annotations

from berth_scheduler.domain.swarm_rollout import logged_task, not_ready_text, task_text, tasks_text


def task(state: str, at: str, err: str = "", code: int | None = None, message: str = "") -> dict:
    status: dict = {"State": state, "Timestamp": at, "Message": message}
    if err:
        status["Err"] = err
    if code is not None:
        status["ContainerStatus"] = {"ContainerID": "c1", "ExitCode": code}
    return {"ID": f"t-{at}", "DesiredState": "shutdown", "Status": status}


def test_a_task_in_words():
    assert task_text(task("failed", "1", "task: non-zero exit (3)", 3), "GET /") == (
        "failed: the container exited with code 3: task: non-zero exit (3)"
    )
    assert task_text(task("rejected", "1", "No such image: app:v2", message="preparing"), None) == (
        "rejected: No such image: app:v2"
    )
    assert task_text(task("pending", "1", message="no suitable node (insufficient resources on 1 node)"), None) == (
        "pending: no suitable node (insufficient resources on 1 node)"
    )
    assert task_text(task("running", "1", code=0), "GET /health") == "running, but GET /health does not pass"
    assert task_text(task("complete", "1", code=0), None) == "complete: the container exited with code 0"


def test_the_tasks_newest_first_the_same_words_counted_once():
    tasks = [
        task("failed", "2026-01-01T00:00:01Z", "task: non-zero exit (3)", 3),
        task("running", "2026-01-01T00:00:09Z", code=0),
        task("failed", "2026-01-01T00:00:05Z", "task: non-zero exit (3)", 3),
        task("rejected", "2026-01-01T00:00:00Z", "mount failed"),
    ]
    assert tasks_text(tasks, "GET /") == (
        "running, but GET / does not pass; failed: the container exited with code 3: task: non-zero exit (3) (2 tasks); "
        "rejected: mount failed"
    )
    assert tasks_text(tasks, "GET /", most=1) == "running, but GET / does not pass"
    assert tasks_text([], None) == "Swarm made no task (no node may run it: see the placement and the nodes' resources)"


def test_a_version_not_ready_says_what_its_tasks_did():
    tasks = [task("failed", "1", "task: non-zero exit (1)", 1)]
    assert not_ready_text("web-v2", 0, 2, 120.0, tasks, "GET /") == (
        "0 of 2 tasks of web-v2 ready after 120s (the previous version keeps serving); "
        "its tasks: failed: the container exited with code 1: task: non-zero exit (1)"
    )


def test_a_running_task_says_what_its_check_saw_and_a_failure_shows_a_tasks_last_lines():
    running = [task("running", "2026-01-01T00:00:02Z", code=0), task("running", "2026-01-01T00:00:03Z", code=0)]
    said = {"t-2026-01-01T00:00:02Z": "GET /health: connection refused"}
    assert task_text(running[0], "GET /health", said) == "running, but GET /health: connection refused"
    assert task_text(running[1], "GET /health", said) == "running, but GET /health does not pass"  # not checked
    assert task_text(running[0], None, said) == "running"  # a worker has no check
    said[running[1]["ID"]] = "GET /health: connection refused"
    assert tasks_text(running, "GET /health", said=said) == "running, but GET /health: connection refused (2 tasks)"
    failed = task("failed", "2026-01-01T00:00:01Z", "task: non-zero exit (2)", 2)
    assert logged_task([failed, *running]) is running[1]  # the newest with a container
    assert logged_task([task("pending", "9")]) is None
    said[running[1]["ID"]] = "GET /health answered 500: database is down"
    assert not_ready_text(
        "web-v2", 0, 2, 30.0, [failed, *running], "GET /health", said, "booting\nno database\n", "web-v2.2.t9"
    ) == (
        "0 of 2 tasks of web-v2 ready after 30s (the previous version keeps serving); its tasks: running, but GET "
        "/health answered 500: database is down; running, but GET /health: connection refused; failed: the "
        "container exited with code 2: task: non-zero exit (2); last log lines of web-v2.2.t9:\nbooting\nno database\n"
    )
