"""AES-256-GCM with a random 96-bit nonce: the one cipher carelog seals PHI with."""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12
KEY_BYTES = 32  # AES-256


class Unreadable(ValueError):
    """Ciphertext that does not open with the key given (tampered, or the wrong key)."""


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def seal(cipher: AESGCM, plaintext: bytes, aad: bytes) -> bytes:
    """nonce || ciphertext || tag; `aad` binds it to its context (event id, key id)."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + cipher.encrypt(nonce, plaintext, aad)


def open_sealed(cipher: AESGCM, sealed: bytes, aad: bytes) -> bytes:
    try:
        return cipher.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
    except InvalidTag:
        raise Unreadable("sealed bytes do not open with this key (wrong key or tampered)") from None
