"""PiiCipher: resident ID numbers encrypted at rest and found again by keyed hash."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from cryptography.exceptions import InvalidTag

from core.pii import PiiCipher

KEY = b"master-key-one-for-tests"
OTHER_KEY = b"master-key-two-for-tests"
ID = "11010519491231002X"
CTX = "resident.id_number"


@pytest.fixture
def cipher() -> PiiCipher:
    return PiiCipher(KEY)


@pytest.mark.parametrize("value", [ID, "", "张三 13800138000", "x" * 1000])
def test_round_trip(cipher: PiiCipher, value: str) -> None:
    token = cipher.encrypt(value, context=CTX)
    assert cipher.decrypt(token, context=CTX) == value


def test_same_master_key_in_a_new_cipher_decrypts(cipher: PiiCipher) -> None:
    token = cipher.encrypt(ID, context=CTX)
    assert PiiCipher(KEY).decrypt(token, context=CTX) == ID


def test_ciphertext_hides_plaintext(cipher: PiiCipher) -> None:
    token = cipher.encrypt(ID, context=CTX)
    assert token.startswith("v1:")
    assert ID not in token
    assert ID.encode() not in base64.urlsafe_b64decode(token[3:])
    assert "19491231" not in token


def test_each_encryption_differs(cipher: PiiCipher) -> None:
    tokens = {cipher.encrypt(ID, context=CTX) for _ in range(20)}
    assert len(tokens) == 20
    assert all(cipher.decrypt(t, context=CTX) == ID for t in tokens)


def test_other_context_cannot_decrypt(cipher: PiiCipher) -> None:
    token = cipher.encrypt(ID, context="resident:1")
    with pytest.raises(InvalidTag):
        cipher.decrypt(token, context="resident:2")


def test_other_master_key_cannot_decrypt(cipher: PiiCipher) -> None:
    token = cipher.encrypt(ID, context=CTX)
    with pytest.raises(InvalidTag):
        PiiCipher(OTHER_KEY).decrypt(token, context=CTX)


@pytest.mark.parametrize("position", [0, 11, 12, 20, -1])
def test_tampered_ciphertext_fails(cipher: PiiCipher, position: int) -> None:
    token = cipher.encrypt(ID, context=CTX)
    raw = bytearray(base64.urlsafe_b64decode(token[3:]))
    raw[position] ^= 0x01
    forged = "v1:" + base64.urlsafe_b64encode(bytes(raw)).decode()
    with pytest.raises(InvalidTag):
        cipher.decrypt(forged, context=CTX)


def test_truncated_ciphertext_fails(cipher: PiiCipher) -> None:
    token = cipher.encrypt(ID, context=CTX)
    raw = base64.urlsafe_b64decode(token[3:])
    short = "v1:" + base64.urlsafe_b64encode(raw[:-1]).decode()
    with pytest.raises(InvalidTag):
        cipher.decrypt(short, context=CTX)


@pytest.mark.parametrize("prefix", ["v2", "v0", "V1", ""])
def test_unknown_version_prefix(cipher: PiiCipher, prefix: str) -> None:
    token = cipher.encrypt(ID, context=CTX)
    body = token.partition(":")[2]
    with pytest.raises(ValueError, match="unknown cipher version"):
        cipher.decrypt(f"{prefix}:{body}", context=CTX)


def test_token_without_version_is_rejected(cipher: PiiCipher) -> None:
    body = cipher.encrypt(ID, context=CTX).partition(":")[2]
    with pytest.raises(ValueError, match="unknown cipher version"):
        cipher.decrypt(body, context=CTX)


def test_lookup_hash_is_deterministic_per_key(cipher: PiiCipher) -> None:
    assert cipher.lookup_hash(ID) == cipher.lookup_hash(ID)
    assert PiiCipher(KEY).lookup_hash(ID) == cipher.lookup_hash(ID)


def test_lookup_hash_differs_across_keys(cipher: PiiCipher) -> None:
    assert PiiCipher(OTHER_KEY).lookup_hash(ID) != cipher.lookup_hash(ID)


def test_lookup_hash_differs_across_values(cipher: PiiCipher) -> None:
    assert cipher.lookup_hash(ID) != cipher.lookup_hash(ID[:17] + "0")


def test_lookup_hash_is_64_hex_chars_and_hides_value(cipher: PiiCipher) -> None:
    digest = cipher.lookup_hash(ID)
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert ID.lower() not in digest


def test_lookup_hash_is_keyed_not_plain_sha256(cipher: PiiCipher) -> None:
    assert cipher.lookup_hash(ID) != hashlib.sha256(ID.encode()).hexdigest()
