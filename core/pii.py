"""Encryption, keyed lookup hashes and masking for resident ID numbers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

CIPHER_VERSION = "v1"


def derive_key(master: bytes, purpose: str) -> bytes:
    """A 32-byte subkey of the master secret for one purpose, so keys are never reused."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(
        master
    )


class PiiCipher:
    """AES-256-GCM for values at rest, HMAC-SHA256 for equality lookups without decrypting."""

    def __init__(self, master: bytes) -> None:
        self._aead = AESGCM(derive_key(master, "cloudwindow/pii-encryption/v1"))
        self._lookup = derive_key(master, "cloudwindow/pii-lookup/v1")

    def encrypt(self, value: str, *, context: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, value.encode(), context.encode())
        return f"{CIPHER_VERSION}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def decrypt(self, token: str, *, context: str) -> str:
        version, _, body = token.partition(":")
        if version != CIPHER_VERSION:
            raise ValueError(f"unknown cipher version {version!r}")
        raw = base64.urlsafe_b64decode(body)
        return self._aead.decrypt(raw[:12], raw[12:], context.encode()).decode()

    @property
    def lookup_key(self) -> bytes:
        """The keyed-hash key, for other one-way lookups (e.g. SMS login codes)."""
        return self._lookup

    def lookup_hash(self, value: str) -> str:
        return hmac.new(self._lookup, value.encode(), hashlib.sha256).hexdigest()
