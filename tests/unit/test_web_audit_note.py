"""The Audit page's reading of a signed checkpoint note: the tree head, and as witnesses
the names on every signature line but the log's own (the first)."""

from __future__ import annotations

import base64

import pytest

from signgate.errors import InvalidInput
from signgate.web.audit import parse_note

ROOT = base64.b64encode(bytes(range(32))).decode()
SIG = base64.b64encode(b"\x01\x02\x03\x04" + b"s" * 64).decode()


def test_size_root_and_witnesses() -> None:
    note = (f"signgate.example/log\n42\n{ROOT}\n\n"
            f"\u2014 signgate.example/log {SIG}\n"
            f"\u2014 witness.one.example {SIG}\n"
            f"\u2014 witness.two.example {SIG}\n")
    facts = parse_note(note)
    assert (facts.checkpoint.origin, facts.checkpoint.size) == ("signgate.example/log", 42)
    assert facts.root_hash == ROOT
    assert facts.witnesses == ["witness.one.example", "witness.two.example"]
    alone = parse_note(f"signgate.example/log\n1\n{ROOT}\n\n\u2014 signgate.example/log {SIG}\n")
    assert alone.witnesses == []


def test_a_malformed_tree_head_is_refused() -> None:
    with pytest.raises(InvalidInput):
        parse_note(f"signgate.example/log\n042\n{ROOT}\n\n\u2014 signgate.example/log {SIG}\n")
