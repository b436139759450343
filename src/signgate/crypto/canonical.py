"""Canonical JSON: the byte encoding that audit entry hashes are computed over.

Keys sorted, no insignificant white space, UTF-8, no NaN/Infinity (close to RFC 8785 for
the values we store: strings, integers, booleans, null, lists and objects).
"""

from __future__ import annotations

import json
from typing import Any

# One encoder for every call: ``json.dumps`` with options builds a new one each time,
# which costs more than encoding a small dict.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                            allow_nan=False)


def canonical_json(value: Any) -> bytes:
    return _ENCODER.encode(value).encode("utf-8")
