"""A failed deployment's reason is the headline of its page's timeline (the replica's last log lines under
it), and the CLI's last word: the template and the CLI's ending, rendered and compared exactly."""

from __future__ import annotations

import re

from berth_api.dashboard.web import templates
from berth_cli.commands.deploy import ending

REASON = (
    "replica berth-shop-web-1 (web #1) is not ready: the app listens on 8080, not on 80; set the service port "
    "to 8080 (or make the app listen on $PORT, which is 80); last log lines:\nlistening on 8080\nready <now>"
)


def timeline(state: str, reason: str | None) -> str:
    d = {"id": "d" * 32, "state": state, "reason": reason, "detail": "", "number": 3}
    return templates.get_template("_timeline.html").render(d=d, steps=[])


def test_the_reason_heads_the_timeline_with_the_log_lines_under_it():
    html = timeline("failed", REASON)
    problem = re.search(r'<div class="problem" id="reason">(.*?)</div>', html, re.S)
    assert problem is not None, html
    assert html.index('id="reason"') < html.index('id="steps-title"')  # above the steps
    head = re.search(r'<p class="headline">(.*?)</p>', problem.group(1), re.S)
    assert head is not None and head.group(1) == (
        "<strong>Failed:</strong> replica berth-shop-web-1 (web #1) is not ready: the app listens on 8080, not on "
        "80; set the service port to 8080 (or make the app listen on $PORT, which is 80); last log lines:"
    )
    assert '<pre class="log">listening on 8080\nready &lt;now&gt;</pre>' in problem.group(1)


def test_no_reason_no_problem_box():
    assert 'class="problem"' not in timeline("verifying", None)
    one_line = timeline("cancelled", "cancelled by user")
    assert '<p class="headline"><strong>Cancelled:</strong> cancelled by user</p>' in one_line
    assert "<pre" not in one_line


def test_the_cli_ends_with_the_headline_and_indents_the_log_lines():
    assert ending("Deployment #3 of shop", {"state": "failed", "reason": REASON}) == (
        "Deployment #3 of shop failed: replica berth-shop-web-1 (web #1) is not ready: the app listens on 8080, "
        "not on 80; set the service port to 8080 (or make the app listen on $PORT, which is 80); last log lines:\n"
        "  listening on 8080\n  ready <now>"
    )
    assert ending("Deployment #3 of shop", {"state": "succeeded", "reason": None}) == "Deployment #3 of shop succeeded"
