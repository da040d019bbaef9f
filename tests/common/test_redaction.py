"""The one redaction rule (pure): every secret value replaced by a mark, the longest first so no secret
leaks as part of another, empty values ignored; the api and the scheduler use this very rule, for an
application's texts (``[redacted]``) and for the database, backup and swarm reasons (``**********``)."""

from __future__ import annotations

from pydantic import SecretStr

from berth_api.domain import applications, dotenv
from berth_common import dbengines, redaction
from berth_common.redaction import MASK, REDACTED, mask, redact, redact_all
from berth_common.s3.signing import Credentials as S3Credentials
from berth_scheduler.domain import names, swarms
from berth_scheduler.usecases import backup_upkeep
from berth_scheduler.usecases import databases as database_usecases


def test_every_secret_value_is_replaced_the_longest_first() -> None:
    assert REDACTED == "[redacted]"
    said = "key=abc and key2=abcdef, again abc"
    assert redact(said, ["abc", "abcdef", ""]) == "key=[redacted] and key2=[redacted], again [redacted]"
    assert redact(said, []) == said and redact(said, [""]) == said
    assert redact_all(["a abc", "b", "abcdef"], iter(["abc", "abcdef"])) == ["a [redacted]", "b", "[redacted]"]


def test_the_mask_is_the_same_rule_with_the_stars_a_secret_prints_as() -> None:
    assert MASK == "**********" == str(SecretStr("x"))  # what pydantic prints for a secret, too
    said = "key=abc and key2=abcdef, again abc"
    assert mask(said, ["abc", "abcdef", ""]) == "key=********** and key2=**********, again **********"
    assert mask(said, []) == said and redact(said, ["abc"], MASK) == mask(said, ["abc"])


def test_the_api_and_the_scheduler_share_it() -> None:
    assert applications.redact is redact and names.redact is redact
    assert database_usecases.mask is mask and backup_upkeep.mask is mask and swarms.mask is mask
    assert applications.MASK is redaction.MASK


def test_a_secret_holding_another_does_not_leak_its_rest_from_a_backup_or_a_swarm_reason() -> None:
    # the order the secrets come in (a database's password, then a destination's key) no longer matters
    assert backup_upkeep.masked("S3 said: key abc123-tail refused", ["abc123", "abc123-tail"]) == (
        "S3 said: key ********** refused"
    )
    assert backup_upkeep.masked("x" * 5000, ["y"]) == "x" * backup_upkeep.MAX_REASON  # still bounded
    said = "join failed: SWMTKN-1-abc-def refused"
    assert swarms.scrub(said, "SWMTKN-1-abc", "SWMTKN-1-abc-def") == "join failed: ********** refused"


def test_what_a_listing_or_a_repr_shows_of_a_secret_is_the_mask() -> None:
    creds = dbengines.Credentials("app", "pw-123", "orders")
    assert repr(creds) == f"Credentials(user='app', password={MASK}, database='orders')" and "pw-123" not in repr(creds)
    s3 = S3Credentials("AKIA", "s3-secret")
    assert f"secret_key='{MASK}'" in repr(s3) and "s3-secret" not in repr(s3)
    assert repr(applications.Variable("TOKEN", "t-1", secret=True)) == f"Variable('TOKEN', {MASK}, secret=True)"
    assert dotenv.render([("A", "1"), ("B", None)]).startswith(f"A=1\n# B={MASK} (secret: masked")
