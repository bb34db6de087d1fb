"""A key's text, its hash (the only thing stored) and its shown prefix."""

from __future__ import annotations

import hashlib
import secrets
import string

KEY_PREFIX = "pr-"
KEY_RANDOM_CHARS = 40
SHOWN_CHARS = len(KEY_PREFIX) + 8  # "pr-" and 8 random characters tell keys apart in lists and records
_ALPHABET = string.ascii_letters + string.digits


def new_key() -> str:
    """``pr-`` and 40 random letters and digits (238 bits)."""
    return KEY_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(KEY_RANDOM_CHARS))


def hash_key(key: str) -> str:
    """SHA-256: a key carries 238 random bits, so a fast hash cannot be reversed by guessing."""
    return hashlib.sha256(key.encode("utf-8", errors="replace")).hexdigest()


def shown_prefix(key: str) -> str:
    return key[:SHOWN_CHARS]


def looks_like_key(value: str) -> bool:
    """Whether a bearer token is meant as a gateway key (anything else is some other credential)."""
    return value.startswith(KEY_PREFIX)
