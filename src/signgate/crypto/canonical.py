"""Canonical JSON: the byte encoding that audit entry hashes are computed over.

Keys sorted, no insignificant white space, UTF-8, no NaN/Infinity (close to RFC 8785 for
the values we store: strings, integers, booleans, null, lists and objects).
"""

from __future__ import annotations

import json
from typing import Any


def canonical_json(value: Any) -> bytes:
    if value == {} and isinstance(value, dict):
        return b"{}"  # most metadata and format parameters: no encoder for nothing
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")
