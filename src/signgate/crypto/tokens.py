"""API tokens: 256 random bits shown once, stored only as a SHA-256 hash.

A slow password hash buys nothing for a 256-bit random secret (it cannot be guessed), and
a fast hash lets the token be looked up by an index.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

PREFIX = "sgt_"


def new_token() -> str:
    raw = secrets.token_bytes(32)
    return PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
