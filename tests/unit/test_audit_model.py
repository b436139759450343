"""Audit entry hashing and the canonical JSON it is computed over."""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from signgate.audit.model import GENESIS_HASH, compute_hash, time_text
from signgate.crypto.canonical import canonical_json

BASE: dict[str, Any] = {
    "seq": 7,
    "time": datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
    "actor": "ci",
    "action": "signature.create",
    "outcome": "allowed",
    "subject": "app.tar.gz",
    "project": "app",
    "key_ref": "app/release",
    "details": {"key_version": 1, "digest": "ab" * 32},
    "prev_hash": GENESIS_HASH,
}

CHANGED: dict[str, Any] = {
    "seq": 8,
    "time": BASE["time"] + timedelta(microseconds=1),
    "actor": "cj",
    "action": "key.rotate",
    "outcome": "refused",
    "subject": "app.tar.gz ",
    "project": None,
    "key_ref": "app/nightly",
    "details": {"key_version": 2, "digest": "ab" * 32},
    "prev_hash": "1" + GENESIS_HASH[1:],
}


def h(**fields: Any) -> str:
    return compute_hash(**{**BASE, **fields})


def test_compute_hash_is_deterministic_sha256_hex() -> None:
    first = h()
    assert first == h()
    assert len(first) == 64
    int(first, 16)
    # and equal to SHA-256 over the documented canonical body
    body = {"seq": 7, "time": "2026-01-02T03:04:05.123456Z", "actor": "ci",
            "action": "signature.create", "outcome": "allowed", "subject": "app.tar.gz",
            "project": "app", "key": "app/release", "details": BASE["details"],
            "prev": GENESIS_HASH}
    assert first == hashlib.sha256(canonical_json(body)).hexdigest()


def test_compute_hash_ignores_details_key_order() -> None:
    assert h(details={"a": 1, "b": 2}) == h(details={"b": 2, "a": 1})


@pytest.mark.parametrize("field", sorted(BASE))
def test_compute_hash_covers_every_field(field: str) -> None:
    assert field in CHANGED
    assert h(**{field: CHANGED[field]}) != h()


def test_compute_hash_same_instant_other_offset() -> None:
    """The hash is over UTC text, so an equal instant in another zone hashes alike."""
    other = BASE["time"].astimezone(timezone(timedelta(hours=5)))
    assert h(time=other) == h()


def test_compute_hash_null_vs_empty() -> None:
    assert h(project=None) != h(project="")
    assert h(key_ref=None) != h(key_ref="")


def test_time_text_microseconds_and_z() -> None:
    assert time_text(BASE["time"]) == "2026-01-02T03:04:05.123456Z"
    assert time_text(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00.000000Z"
    assert time_text(datetime(2026, 12, 31, 23, 59, 59, 1, tzinfo=UTC)) == \
        "2026-12-31T23:59:59.000001Z"


def test_time_text_converts_to_utc() -> None:
    plus_two = datetime(2026, 1, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))
    assert time_text(plus_two) == "2026-01-01T00:00:00.000000Z"


# -- canonical_json -----------------------------------------------------------------------


def test_canonical_json_sorts_keys_recursively() -> None:
    assert canonical_json({"b": 1, "a": {"d": 1, "c": 2}}) == b'{"a":{"c":2,"d":1},"b":1}'


def test_canonical_json_is_compact() -> None:
    out = canonical_json({"a": [1, 2, {"b": None}], "c": True, "d": "x y"})
    assert out == b'{"a":[1,2,{"b":null}],"c":true,"d":"x y"}'
    assert b": " not in out
    assert b", " not in out
    assert b"\n" not in out


def test_canonical_json_is_utf8_not_escaped() -> None:
    out = canonical_json({"name": "Grüße ✓"})
    assert out == '{"name":"Grüße ✓"}'.encode()
    assert b"\\u" not in out
    assert json.loads(out.decode("utf-8")) == {"name": "Grüße ✓"}


def test_canonical_json_independent_of_insertion_order() -> None:
    a = {"x": 1, "y": [1, 2], "z": {"p": "q", "o": "n"}}
    b = {"z": {"o": "n", "p": "q"}, "y": [1, 2], "x": 1}
    assert canonical_json(a) == canonical_json(b)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_canonical_json_rejects_nan_and_infinity(bad: float) -> None:
    with pytest.raises(ValueError, match="JSON compliant"):
        canonical_json({"x": bad})


def _old_hash(seq: int, time: datetime, actor: str, action: str, outcome: str, subject: str,
              project: str | None, key_ref: str | None, details: Any, prev_hash: str) -> str:
    """The hash as first specified: canonical JSON of the fields as one object."""
    body = {"seq": seq, "time": time_text(time), "actor": actor, "action": action,
            "outcome": outcome, "subject": subject, "project": project, "key": key_ref,
            "details": details, "prev": prev_hash}
    return hashlib.sha256(canonical_json(body)).hexdigest()


AWKWARD = ["", "plain", 'quo"te\\back', "ctl\x00\x01\x1f\x7f", "line\u2028sep\u2029",
           "émoji 🔑 ✓", "\ud7ff\ue000\uffff", " spaced ", "</script>"]


@pytest.mark.parametrize("text", AWKWARD)
def test_entry_bytes_equal_canonical_json_of_the_whole(text: str) -> None:
    """Databases made before entry_bytes existed keep verifying: same bytes, same hash."""
    fields = {**BASE, "actor": text, "subject": text, "project": text or None,
              "key_ref": None if text else "x/y", "details": {"k": text, "n": [1, None, True],
                                                              text: {"z": -3}}}
    assert compute_hash(**fields) == _old_hash(**fields)
    for seq in (0, 1, 2**62):
        assert compute_hash(**{**fields, "seq": seq}) == _old_hash(**{**fields, "seq": seq})
