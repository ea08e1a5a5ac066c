"""Symmetric encryption of the few secrets the ACS must be able to read back.

Connection-request passwords must be usable (the CPE's Digest realm is only learnt from
its challenge), so they cannot be hashed; they are sealed with AES-256-GCM under a key
derived from the server secret instead.
"""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class SecretBox:
    def __init__(self, secret: bytes, purpose: str):
        self._aead = AESGCM(hashlib.sha256(secret + b"\0" + purpose.encode()).digest())
        self._purpose = purpose.encode()

    def seal(self, plaintext: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), self._purpose)
        return base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, token: str) -> str:
        """The plaintext; ``ValueError`` if the token was not sealed with this key."""
        try:
            raw = base64.urlsafe_b64decode(token.encode())
            return self._aead.decrypt(raw[:12], raw[12:], self._purpose).decode()
        except (InvalidTag, ValueError, UnicodeDecodeError) as exc:
            raise ValueError("cannot open sealed secret (was ACS_SECRET_KEY changed?)") from exc
