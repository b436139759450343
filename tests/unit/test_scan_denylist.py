"""The SHA-256 deny-list check."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from signgate.errors import ConfigError, InvalidInput
from signgate.scan import scan_all
from signgate.scan.denylist import DenyListScanner, check, normalize

BAD = hashlib.sha256(b"known bad build").hexdigest()
OTHER = hashlib.sha256(b"something else").hexdigest()


def test_hit_names_the_reason() -> None:
    verdict = check(BAD, {BAD: "leaked test build 1.2.3"})
    assert not verdict.clean
    assert verdict.findings == ("denylisted:leaked test build 1.2.3",)
    assert verdict.engine == "denylist"


def test_miss_is_clean() -> None:
    verdict = check(OTHER, {BAD: "x"})
    assert verdict.clean
    assert verdict.findings == ()


def test_digests_compare_case_insensitively() -> None:
    listed = normalize({BAD.upper(): "r"})
    assert not check(BAD.upper(), listed).clean
    assert not check(BAD, listed).clean


def test_empty_reason_still_denies() -> None:
    assert check(BAD, {BAD: ""}).findings == ("denylisted:no reason given",)


def test_ruleset_version_follows_the_list() -> None:
    one = check(OTHER, {BAD: "a"}).ruleset_version
    assert one == check(OTHER, {BAD: "other reason"}).ruleset_version
    assert one != check(OTHER, {BAD: "a", OTHER[::-1]: "b"}).ruleset_version


@pytest.mark.parametrize("key", ["", "abc", "z" * 64, BAD + "00"])
def test_malformed_entries_are_config_errors(key: str) -> None:
    with pytest.raises(ConfigError, match="not a SHA-256"):
        normalize({key: "r"})


def test_malformed_digest_is_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        check("not-a-digest", {})


def test_scanner_hashes_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"known bad build")
    good = tmp_path / "good.bin"
    good.write_bytes(b"fine")
    scanner = DenyListScanner({BAD: "leaked"})
    assert scan_all([scanner], bad)[0].findings == ("denylisted:leaked",)
    assert scan_all([scanner], good)[0].clean
