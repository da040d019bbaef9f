"""axe-core in the browser tests: the script (the npm package at the version ``tests/dashboard/package.json``
pins, installed by ``deploy/install.sh --test``; never fetched at run time) is added to the page ``audit``
checks, once per document (not to every page a browser opens: a page navigated without an audit never
parses its 650 kB), and ``audit`` runs it on the page shown and returns the violations that matter."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "dashboard" / "package.json"
SCRIPT = PACKAGE.parent / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")
# WCAG 2.1 A and AA plus axe's best practices (landmarks, one main, headings in order, ...).
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]


@dataclass(frozen=True)
class Violation:
    """One rule a page breaks, its impact, the elements (CSS selectors) that break it and, for each, what axe
    says is wrong (the colours and the ratio for contrast, for instance)."""

    rule: str
    impact: str
    help: str
    targets: tuple[str, ...]
    messages: tuple[str, ...]

    def __str__(self) -> str:
        shown = "; ".join(f"{t} ({m})" for t, m in list(zip(self.targets, self.messages, strict=True))[:8])
        more = f" and {len(self.targets) - 8} more" if len(self.targets) > 8 else ""
        return f"{self.impact} {self.rule}: {self.help} [{shown}{more}]"


def pinned_version() -> str:
    return json.loads(PACKAGE.read_text())["dependencies"]["axe-core"]


@cache
def script() -> str:
    """axe-core's source; skip the test where the package is not installed or not at the pinned version."""
    import pytest

    installed = SCRIPT.parent / "package.json"
    want = pinned_version()
    have = json.loads(installed.read_text())["version"] if installed.is_file() else None
    if have != want:
        pytest.skip(f"axe-core {want} is not installed in {SCRIPT.parents[1]} (deploy/install.sh --test)")
    return SCRIPT.read_text() + "\n;0"  # evaluated for its effect (window.axe), not its value


async def inject(page) -> None:
    """Add axe-core to the document ``page`` shows, unless it has it already. Evaluated through the browser's
    debugging protocol, so the page's Content-Security-Policy does not keep it out (nor is relaxed for it)."""
    if not await page.evaluate("typeof window.axe === 'object'"):
        await page.evaluate(script())


async def audit(page, *, impacts: tuple[str, ...] = BLOCKING) -> list[Violation]:
    """Run axe on the whole page as it is now; the violations whose impact is one of ``impacts``."""
    await inject(page)
    found = await page.evaluate(
        """async (tags) => {
            const r = await axe.run(document, {runOnly: {type: "tag", values: tags}, resultTypes: ["violations"]});
            return r.violations.map(v => ({
                rule: v.id, impact: v.impact || "", help: v.help,
                targets: v.nodes.map(n => n.target.join(" ")),
                messages: v.nodes.map(n => [...n.any, ...n.all, ...n.none].map(c => c.message).join(" ")),
            }));
        }""",
        TAGS,
    )
    return [
        Violation(v["rule"], v["impact"], v["help"], tuple(v["targets"]), tuple(v["messages"]))
        for v in found
        if v["impact"] in impacts
    ]
