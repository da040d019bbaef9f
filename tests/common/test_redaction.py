"""The one redaction rule (pure): every secret value replaced by ``[redacted]``, the longest first so no
secret leaks as part of another, empty values ignored; the api and the scheduler use this very rule."""

from __future__ import annotations

from berth_api.domain import applications
from berth_common.redaction import REDACTED, redact, redact_all
from berth_scheduler.domain import names


def test_every_secret_value_is_replaced_the_longest_first() -> None:
    assert REDACTED == "[redacted]"
    said = "key=abc and key2=abcdef, again abc"
    assert redact(said, ["abc", "abcdef", ""]) == "key=[redacted] and key2=[redacted], again [redacted]"
    assert redact(said, []) == said and redact(said, [""]) == said
    assert redact_all(["a abc", "b", "abcdef"], iter(["abc", "abcdef"])) == ["a [redacted]", "b", "[redacted]"]


def test_the_api_and_the_scheduler_share_it() -> None:
    assert applications.redact is redact and names.redact is redact
