"""Sealed secret values: AES-256-GCM under an HKDF key from BERTH_SECRET_KEY, bound to their purpose.

Checked against an independent derivation (HKDF written out with hmac) and an independent decryption, so a
format or key change cannot pass unnoticed; tampering, moving a value and a missing key all fail loudly.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr, ValidationError
from pydantic_core import PydanticSerializationError

from berth_common import sealing
from berth_common.catalogue import (
    ApplicationSpec,
    BuildArg,
    EnvVar,
    GitSource,
    StartBuild,
    StartDeployment,
)
from berth_common.catalogue.deployments import MAX_VALUE_CHARS

SECRET_KEY = "sealing-test-secret-key-0123456789"
TOKEN = re.compile(r"^sealed:v1:([0-9a-f]{16}):([A-Za-z0-9_-]+)$")
PLAIN = "pa55-w0rd/with+base64=chars"
NPM = "npm_tok_ABC123xyz"


@pytest.fixture
def ring() -> Iterator[sealing.Keyring]:
    """The process-wide keyring for one test (the session's one is put back after)."""
    ring = sealing.Keyring.from_secrets(SECRET_KEY)
    before = sealing.install(ring)
    yield ring
    sealing.install(before)


def hkdf_sha256(ikm: bytes, info: bytes, length: int = 32) -> bytes:
    """RFC 5869 with no salt (a hash-length string of zeros), written out independently of the code."""
    prk = hmac.new(b"\0" * 32, ikm, hashlib.sha256).digest()
    out, block, i = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        out += block
        i += 1
    return out[:length]


def open_independently(token: str, secret_key: str, aad: str) -> str:
    match = TOKEN.match(token)
    assert match, token
    blob = base64.urlsafe_b64decode(match.group(2) + "=" * (-len(match.group(2)) % 4))
    key = hkdf_sha256(secret_key.encode(), b"berth sealing v1")
    return AESGCM(key).decrypt(blob[:12], blob[12:], aad.encode()).decode()


def test_format_key_derivation_and_roundtrip(ring):
    token = sealing.seal(PLAIN, "berth/env/DB_PASSWORD")
    assert TOKEN.match(token)
    assert PLAIN not in token
    assert open_independently(token, SECRET_KEY, "berth/env/DB_PASSWORD") == PLAIN
    assert sealing.unseal(token, "berth/env/DB_PASSWORD") == PLAIN
    assert sealing.token_key_id(token) == ring.current
    assert ring.keys[ring.current] == hkdf_sha256(SECRET_KEY.encode(), b"berth sealing v1")
    again = sealing.seal(PLAIN, "berth/env/DB_PASSWORD")
    assert again != token  # a fresh nonce every time
    assert sealing.unseal(sealing.seal("", "a"), "a") == ""
    unicode = "gr\u00fc\u00dfe \U0001f512 \u65e5\u672c"
    assert sealing.unseal(sealing.seal(unicode, "a"), "a") == unicode
    assert "Keyring(current=" in repr(ring) and str(ring.keys[ring.current]) not in repr(ring)


def test_a_value_does_not_open_for_another_purpose(ring):
    token = sealing.seal(PLAIN, "berth/env/DB_PASSWORD")
    for aad in ("berth/env/OTHER", "berth/build-arg/DB_PASSWORD", "", "berth/env/DB_PASSWORD "):
        with pytest.raises(sealing.UnsealError, match="moved to another field"):
            sealing.unseal(token, aad)


def flip(token: str, index: int) -> str:
    kid, body = token[len("sealed:v1:") :].split(":")
    blob = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    blob[index] ^= 0x01
    return f"sealed:v1:{kid}:{base64.urlsafe_b64encode(bytes(blob)).decode().rstrip('=')}"


def test_tampering_is_detected(ring):
    token = sealing.seal(PLAIN, "aad")
    for index in (0, 11, 12, 20, -1):  # nonce, ciphertext, tag
        with pytest.raises(sealing.UnsealError):
            sealing.unseal(flip(token, index), "aad")
    kid, body = token[len("sealed:v1:") :].split(":")
    with pytest.raises(sealing.UnsealError, match="not configured here"):
        sealing.unseal(f"sealed:v1:{'0' * 16}:{body}", "aad")
    for broken in (token[:-8], f"sealed:v1:{kid}:{body[:20]}", "sealed:v1:", PLAIN, token.replace(":", ";")):
        with pytest.raises(sealing.UnsealError):
            sealing.unseal(broken, "aad")


def test_rotation_previous_keys_open_and_reseal_uses_the_current_key():
    old = sealing.Keyring.from_secrets("old-secret-key")
    token = old.seal(PLAIN, "aad")
    rotated = sealing.Keyring.from_secrets("new-secret-key", ["old-secret-key"])
    assert rotated.current != old.current
    assert rotated.unseal(token, "aad") == PLAIN
    fresh = rotated.reseal(token, "aad")
    assert sealing.token_key_id(fresh) == rotated.current and fresh != token
    assert rotated.reseal(fresh, "aad") == fresh  # already under the current key: kept as it is
    only_new = sealing.Keyring.from_secrets("new-secret-key")
    assert only_new.unseal(fresh, "aad") == PLAIN
    with pytest.raises(sealing.UnsealError, match=old.current):
        only_new.unseal(token, "aad")
    with pytest.raises(ValueError, match="empty"):
        sealing.Keyring.from_secrets("")


def test_configure_keep_open_keeps_what_this_process_sealed():
    before = sealing.install(None)
    try:
        sealing.configure("first-service-key")
        token = sealing.seal(PLAIN, "aad")
        sealing.configure("second-service-key", keep_open=True)
        assert sealing.unseal(token, "aad") == PLAIN
        assert sealing.token_key_id(sealing.seal(PLAIN, "aad")) != sealing.token_key_id(token)
        sealing.configure("second-service-key")  # without keep_open: only the given keys
        with pytest.raises(sealing.UnsealError):
            sealing.unseal(token, "aad")
    finally:
        sealing.install(before)


def test_no_key_configured_is_an_error_never_plain_text():
    before = sealing.install(None)
    try:
        assert not sealing.is_configured()
        with pytest.raises(sealing.NoSealingKeyError, match="configure"):
            sealing.seal(PLAIN, "aad")
        with pytest.raises(sealing.NoSealingKeyError):
            sealing.unseal("sealed:v1:0123456789abcdef:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "aad")
        var = EnvVar(name="DB_PASSWORD", value=PLAIN, secret=True)
        with pytest.raises(PydanticSerializationError, match="NoSealingKeyError") as err:
            var.model_dump_json()
        assert PLAIN not in str(err.value)
        assert EnvVar(name="MODE", value="prod").model_dump(mode="json")["value"] == "prod"  # not secret
    finally:
        sealing.install(before)


SPEC = {
    "name": "shop",
    "source": {
        "kind": "git",
        "repository": "https://example.invalid/shop.git",
        "ref": "main",
        "build_args": [
            {"name": "NPM_TOKEN", "value": NPM, "secret": True},
            {"name": "NODE_ENV", "value": "production"},
        ],
    },
    "services": [{"kind": "web", "name": "web", "port": 8080}],
    "env": [{"name": "DB_PASSWORD", "value": PLAIN, "secret": True}, {"name": "MODE", "value": "prod"}],
}


def encodings(value: str) -> list[str]:
    raw = value.encode()
    return [value, raw.hex(), base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode().rstrip("=")]


def test_start_deployment_json_carries_no_plaintext(ring):
    cmd = StartDeployment(deployment_id="d1", application_id="a1", team_id="t1", spec=SPEC)
    text = cmd.model_dump_json()
    for secret in (PLAIN, NPM):
        for form in encodings(secret):
            assert form not in text, form
    wire = json.loads(text)
    [db, mode] = wire["spec"]["env"]
    assert set(db) == {"name", "value", "secret"} and db["name"] == "DB_PASSWORD" and db["secret"] is True
    assert TOKEN.match(db["value"]) and sealing.unseal(db["value"], "berth/env/DB_PASSWORD") == PLAIN
    assert mode == {"name": "MODE", "value": "prod", "secret": False}  # not a secret: plain
    [npm, node_env] = wire["spec"]["source"]["build_args"]
    assert sealing.unseal(npm["value"], "berth/build-arg/NPM_TOKEN") == NPM
    assert node_env == {"name": "NODE_ENV", "value": "production", "secret": False}
    assert PLAIN not in repr(cmd) and PLAIN not in str(cmd) and PLAIN not in str(cmd.model_dump())

    back = StartDeployment.model_validate(wire)  # the consumer: still sealed in memory
    assert back.spec.env[0].value.get_secret_value() == db["value"] and back.spec.env[0].sealed
    assert back.spec.env[0].reveal() == PLAIN
    assert sorted(back.spec.secret_values()) == sorted([PLAIN, NPM])
    assert back == cmd  # equal by plaintext
    assert back.model_dump_json().count("sealed:v1:") == 2
    assert json.loads(back.model_dump_json())["spec"]["env"][0]["value"] == db["value"]  # kept, not resealed


def test_start_build_json_carries_no_plaintext(ring):
    source = ApplicationSpec.model_validate(SPEC).source
    assert isinstance(source, GitSource)
    cmd = StartBuild(build_id="b1", deployment_id="d1", application_id="a1", source=source, image_tag="berth/shop:d1")
    text = cmd.model_dump_json()
    for form in encodings(NPM):
        assert form not in text
    args = json.loads(text)["source"]["build_args"]
    assert sealing.unseal(args[0]["value"], "berth/build-arg/NPM_TOKEN") == NPM
    assert args[1] == {"name": "NODE_ENV", "value": "production", "secret": False}
    back = StartBuild.model_validate_json(text)
    assert [a.reveal() for a in back.source.build_args] == [NPM, "production"]


def test_a_sealed_value_moved_to_another_variable_does_not_open(ring):
    wire = StartDeployment(deployment_id="d1", application_id="a1", team_id="t1", spec=SPEC).model_dump(mode="json")
    token = wire["spec"]["env"][0]["value"]
    moved = EnvVar(name="LOG_ME", value=token, secret=True)
    with pytest.raises(sealing.UnsealError):
        moved.reveal()
    as_build_arg = BuildArg(name="DB_PASSWORD", value=token, secret=True)  # runtime value into a build arg
    with pytest.raises(sealing.UnsealError):
        as_build_arg.reveal()
    spec = ApplicationSpec.model_validate({**SPEC, "env": [{"name": "OTHER", "value": token, "secret": True}]})
    assert spec.secret_values() == [NPM]  # what does not open cannot be in any text: nothing to redact
    with pytest.raises(PydanticSerializationError, match="UnsealError"):
        spec.model_dump_json()


def test_values_sealed_before_a_rotation_are_resealed_on_the_way_out():
    old = sealing.Keyring.from_secrets("old-secret-key")
    before = sealing.install(old)
    try:
        wire = StartDeployment(deployment_id="d1", application_id="a1", team_id="t1", spec=SPEC).model_dump(mode="json")
        sealing.configure("new-secret-key", ["old-secret-key"])
        back = StartDeployment.model_validate(wire)
        assert back.spec.env[0].reveal() == PLAIN
        out = back.model_dump(mode="json")["spec"]["env"][0]["value"]
        assert sealing.token_key_id(out) == sealing.keyring().current != old.current
        assert sealing.Keyring.from_secrets("new-secret-key").unseal(out, "berth/env/DB_PASSWORD") == PLAIN
    finally:
        sealing.install(before)


def test_envvar_objects_as_build_args_and_odd_values(ring):
    src = GitSource(
        repository="https://example.invalid/x.git",
        ref="main",
        build_args=[EnvVar(name="T", value=SecretStr(NPM), secret=True)],
    )
    assert isinstance(src.build_args[0], BuildArg)
    assert sealing.unseal(src.model_dump(mode="json")["build_args"][0]["value"], "berth/build-arg/T") == NPM
    # a secret whose text merely starts like a token is a plaintext: sealed like any other
    odd = EnvVar(name="ODD", value="sealed:v1:not-a-token", secret=True)
    assert not odd.sealed and odd.reveal() == "sealed:v1:not-a-token"
    back = EnvVar.model_validate(odd.model_dump(mode="json"))
    assert back.sealed and back.reveal() == "sealed:v1:not-a-token"
    # the longest value (4-byte characters) still fits once sealed; a longer plain value does not
    longest = EnvVar(name="BIG", value="\U0001f512" * MAX_VALUE_CHARS, secret=True)
    assert EnvVar.model_validate(longest.model_dump(mode="json")).reveal() == longest.value.get_secret_value()
    with pytest.raises(ValidationError, match="limited to 65536"):
        EnvVar(name="BIG", value="x" * (MAX_VALUE_CHARS + 1), secret=True)
    assert "**********" in repr(odd) and "not-a-token" not in repr(odd) + str(odd)


def test_the_runtime_configures_the_key_from_the_settings(monkeypatch):
    from berth_common.runtime import configure_sealing
    from berth_common.settings import BaseServiceSettings

    old = sealing.Keyring.from_secrets("rotated-away-key")
    token = old.seal(PLAIN, "aad")
    monkeypatch.setenv("BERTH_PREVIOUS_SECRET_KEYS", "rotated-away-key, other-old-key")
    before = sealing.install(None)
    try:
        configure_sealing(BaseServiceSettings(secret_key=SECRET_KEY))
        assert open_independently(sealing.seal(PLAIN, "aad"), SECRET_KEY, "aad") == PLAIN
        assert sealing.unseal(token, "aad") == PLAIN
        assert len(sealing.keyring().keys) == 3
    finally:
        sealing.install(before)


def test_the_key_derivation_equals_cryptographys_hkdf():
    """derive_key is RFC 5869 HKDF-SHA256 written with the standard library: the same key as cryptography's."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    for secret in ("x", SECRET_KEY, "gr\u00fc\u00dfe" * 40):
        expected = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"berth sealing v1").derive(
            secret.encode()
        )
        assert sealing.derive_key(secret) == expected
