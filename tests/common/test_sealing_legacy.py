"""Every sealed format stored before ``berth_common.sealing`` became the one module still opens with it.

The sealing code of each service as it was (kept here byte for byte in what it wrote) seals a value; the
one module, and the services' adapters over it, open it. The api's and the notifier's bytes were already
the current layout under their purpose's key, so what they seal now also opens with their former code.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import threading

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from berth_common import sealing
from berth_common.catalogue import ApplicationSpec
from berth_common.keyfile import KeyFile, read_or_create_key, write_private_file
from tests.scheduler.test_snapshot import SPEC

PLAIN = "pa55-w0rd/with+base64=chars \U0001f512"


# --- the former code, as it sealed -------------------------------------------------------------------------


def legacy_blob(material: bytes, salt: bytes, info: bytes, label: bytes, value: str, aad: str) -> bytes:
    """berth_api.adapters.secretbox.SecretBox.seal and berth_notifier's SecretBox.encrypt (their layout)."""
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(material)
    kid = hashlib.sha256(label + key).digest()[:8]
    nonce = os.urandom(12)
    return b"\x01" + kid + nonce + AESGCM(key).encrypt(nonce, value.encode(), aad.encode())


def legacy_open_blob(material: bytes, salt: bytes, info: bytes, blob: bytes, aad: str) -> str:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(material)
    assert blob[:1] == b"\x01"
    return AESGCM(key).decrypt(blob[9:21], blob[21:], aad.encode()).decode()


def api_seal(material: bytes, value: str, aad: str) -> bytes:
    return legacy_blob(material, b"berth-api-v1", b"application-secrets", b"berth-api-key-id:", value, aad)


def api_seal_text(material: bytes, value: str, aad: str) -> str:
    """The api's deployment snapshots: ``sealed:v1:`` + standard base64 of the blob."""
    return "sealed:v1:" + base64.b64encode(api_seal(material, value, aad)).decode()


def notifier_encrypt(material: bytes, values: dict[str, str], aad: str) -> bytes:
    plain = json.dumps(values, sort_keys=True)
    return legacy_blob(material, b"berth-notifier-v1", b"channel-secrets", b"berth-key-id:", plain, aad)


def scheduler_fernet(secret_key: str, value: str) -> str:
    """berth_scheduler.adapters.sealing.Sealer: ``sealed:`` + Fernet under sha256(label + key)."""
    digest = hashlib.sha256(b"berth-scheduler-spec-v1:" + secret_key.encode()).digest()
    return "sealed:" + Fernet(base64.urlsafe_b64encode(digest)).encrypt(value.encode()).decode()


# --- they open -----------------------------------------------------------------------------------------------


def test_the_purposes_derive_their_keys_as_hkdf_with_their_salt_and_info():
    for purpose in (sealing.BUS, sealing.API_SECRETS, sealing.NOTIFIER_CHANNELS, sealing.SCHEDULER_SPECS):
        for secret in (b"x", os.urandom(32), "gr\u00fc\u00dfe".encode() * 40):
            expected = HKDF(algorithm=hashes.SHA256(), length=32, salt=purpose.salt, info=purpose.info).derive(secret)
            assert sealing.derive_key(secret, purpose) == expected
    keys = {sealing.derive_key(b"one secret", p) for p in (sealing.API_SECRETS, sealing.NOTIFIER_CHANNELS)}
    assert len(keys) == 2  # one secret, a key per purpose


def test_the_apis_stored_values_open_and_rotation_reseals_its_snapshot_texts():
    from berth_api.adapters.secretbox import SecretBox

    material = os.urandom(32).hex().encode()
    box = SecretBox([material])
    blob = api_seal(material, PLAIN, "var:a1:runtime:DB")
    assert box.open(blob, "var:a1:runtime:DB") == PLAIN
    assert box.sealed_with_current(blob)  # the same format: rotation leaves it
    text = api_seal_text(material, PLAIN, "deployment:d1")
    assert box.open_text(text, "deployment:d1") == PLAIN
    assert not box.sealed_with_text(text)  # the former text: rotation re-seals it in the current one
    again = box.seal_text(box.open_text(text, "deployment:d1"), "deployment:d1")
    assert sealing.is_sealed(again) and box.sealed_with_text(again)
    with pytest.raises(sealing.UnsealError):
        box.open_text(text, "deployment:d2")
    # what the api seals now opens with its former code: the bytes are the same layout under the same key
    new = box.seal(PLAIN, "aad")
    assert new[:1] == b"\x01" and new[1:9] == blob[1:9]
    assert legacy_open_blob(material, b"berth-api-v1", b"application-secrets", new, "aad") == PLAIN
    # an older key still opens after a rotation
    rotated = SecretBox([os.urandom(32), material])
    assert rotated.open(blob, "var:a1:runtime:DB") == PLAIN and not rotated.sealed_with_current(blob)


def test_the_notifiers_stored_channels_open():
    from berth_notifier.adapters.secretbox import SecretBox

    blob = notifier_encrypt(b"the-old-secret-key-0123456789", {"webhook_url": "https://hooks.example/x"}, "t:c")
    box = SecretBox([b"the-old-secret-key-0123456789"])
    assert box.decrypt(blob, "t:c") == {"webhook_url": "https://hooks.example/x"}
    assert box.is_current(blob)
    new = box.encrypt({"k": "v"}, "t:c")
    plain = legacy_open_blob(b"the-old-secret-key-0123456789", b"berth-notifier-v1", b"channel-secrets", new, "t:c")
    assert json.loads(plain) == {"k": "v"}
    rotated = SecretBox([b"the-new-secret-key-0123456789", b"the-old-secret-key-0123456789"])
    assert not rotated.is_current(blob) and rotated.is_current(rotated.rotate_blob(blob, "t:c"))


def test_the_schedulers_fernet_rows_open():
    from berth_scheduler.adapters.sealing import Sealer, UnsealError

    spec = ApplicationSpec.model_validate(SPEC)
    data = spec.model_dump(mode="json")  # as the former Sealer.seal stored it
    for item in (*data["env"], *data["source"]["build_args"]):
        if item["secret"]:
            item["value"] = scheduler_fernet("key-one", item["value"])
    assert Sealer("key-one").open(data) == spec
    assert Sealer("key-two", ["key-one"]).open(data) == spec
    with pytest.raises(UnsealError, match="API_KEY"):
        Sealer("key-two").open(data)
    ring = sealing.Keyring.from_secrets("key-one", purpose=sealing.SCHEDULER_SPECS)
    assert ring.unseal(scheduler_fernet("key-one", PLAIN), "any aad") == PLAIN  # Fernet bound none
    assert sealing.is_sealed(Sealer("key-one").seal(spec)["env"][0]["value"])  # new rows: the current format


def test_the_current_format_as_bytes_and_as_text():
    ring = sealing.Keyring.from_materials([b"k" * 32], sealing.API_SECRETS)
    blob = ring.seal_bytes(PLAIN, "aad")
    token = ring.seal(PLAIN, "aad")
    assert blob[:1] == sealing.VERSION and blob[1:9].hex() == ring.current == sealing.token_key_id(token)
    assert ring.unseal_bytes(blob, "aad") == ring.unseal(token, "aad") == PLAIN
    for broken in (b"", b"\x02" + blob[1:], blob[:30]):
        with pytest.raises(sealing.UnsealError, match="unknown format"):
            ring.unseal_bytes(broken, "aad")
    with pytest.raises(sealing.UnknownKeyError, match="key file"):
        sealing.Keyring.from_materials([b"j" * 32], sealing.API_SECRETS).unseal_bytes(blob, "aad")


# --- key files -----------------------------------------------------------------------------------------------


def test_a_key_file_is_private_created_once_and_a_short_one_refused(tmp_path):
    path = tmp_path / "data" / "svc.key"
    keys: list[bytes] = []
    threads = [threading.Thread(target=lambda: keys.append(read_or_create_key(path))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(keys)) == 1 and len(keys[0]) == 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["svc.key"]  # no temp files left
    assert read_or_create_key(path) == keys[0]
    short = tmp_path / "short.key"
    short.write_bytes(b"0123456789abcdef\n")
    with pytest.raises(ValueError, match="fewer than 32 bytes"):
        read_or_create_key(short)
    assert read_or_create_key(short, 16) == b"0123456789abcdef"
    write_private_file(tmp_path / "w" / "token", "content\n")
    assert stat.S_IMODE((tmp_path / "w" / "token").stat().st_mode) == 0o600


def test_a_key_file_box_rereads_a_replaced_key(tmp_path):
    path = tmp_path / "api.key"
    file = KeyFile(path, purpose=sealing.API_SECRETS)
    box = sealing.Box(file)
    old = box.seal_bytes(PLAIN, "aad")
    assert not file.refresh()  # unchanged
    (tmp_path / "api.key.20260101T000000Z.bak").write_bytes(path.read_bytes())
    write_private_file(path, os.urandom(32).hex() + "\n")
    other = sealing.Box(KeyFile(path, purpose=sealing.API_SECRETS))
    new = other.seal_bytes(PLAIN, "aad")
    assert box.open_bytes(new, "aad") == PLAIN  # an unknown key id: the files are re-read once
    assert box.open_bytes(old, "aad") == PLAIN and box.is_current(new) and not box.is_current(old)
    assert "keys=2" in repr(box) and path.read_text().strip() not in repr(box) + repr(file)
