"""YARA rules from a directory: matches, broken rules (fail closed), reload on change."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yara

from signgate.errors import ConfigError, ScannerUnavailable
from signgate.scan import scan_all
from signgate.scan.yara import YaraScanner

MARKER_RULE = """
rule build_marker {
    strings: $m = "DO-NOT-SHIP-THIS-BUILD"
    condition: $m
}
"""
MZ_RULE = """
rule tiny_mz { condition: uint16(0) == 0x5A4D and filesize < 1024 }
"""
BROKEN_RULE = "rule broken { condition: no_such_identifier }\n"


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    d = tmp_path / "rules"
    d.mkdir()
    (d / "markers.yar").write_text(MARKER_RULE)
    return d


def artifact(tmp_path: Path, data: bytes, name: str = "artifact.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_match_is_namespace_and_rule(rules: Path, tmp_path: Path) -> None:
    scanner = YaraScanner(rules)
    verdict = scanner.scan_path(artifact(tmp_path, b"xx DO-NOT-SHIP-THIS-BUILD yy"))
    assert not verdict.clean
    assert verdict.findings == ("markers:build_marker",)
    assert verdict.engine == "yara"
    assert verdict.engine_version == yara.__version__
    assert len(verdict.ruleset_version) == 12


def test_clean_file(rules: Path, tmp_path: Path) -> None:
    verdict = YaraScanner(rules).scan_path(artifact(tmp_path, b"an ordinary build" * 1000))
    assert verdict.clean
    assert verdict.findings == ()


def test_all_files_and_subdirectories_are_compiled(rules: Path, tmp_path: Path) -> None:
    (rules / "windows").mkdir()
    (rules / "windows" / "pe.yara").write_text(MZ_RULE)
    (rules / "notes.txt").write_text("not a rule file { {")
    verdict = YaraScanner(rules).scan_path(artifact(tmp_path, b"MZ DO-NOT-SHIP-THIS-BUILD"))
    assert verdict.findings == ("markers:build_marker", "windows/pe:tiny_mz")


def test_broken_rule_file_at_load_names_the_file(rules: Path) -> None:
    (rules / "broken.yar").write_text(BROKEN_RULE)
    with pytest.raises(ConfigError, match=r"does not compile: .*broken\.yar\(1\)"):
        YaraScanner(rules)


@pytest.mark.parametrize("setup", ["missing", "empty"])
def test_no_rules_is_a_config_error(tmp_path: Path, setup: str) -> None:
    d = tmp_path / "rules"
    if setup == "empty":
        d.mkdir()
        (d / "readme.txt").write_text("rules go here")
    with pytest.raises(ConfigError, match=r"does not exist|no YARA rule files"):
        YaraScanner(d)


def test_reload_after_a_rule_file_changes(rules: Path, tmp_path: Path) -> None:
    scanner = YaraScanner(rules)
    sample = artifact(tmp_path, b"MZ tiny")
    before = scanner.scan_path(sample)
    assert before.clean

    (rules / "pe.yar").write_text(MZ_RULE)  # a new file
    after = scanner.scan_path(sample)
    assert after.findings == ("pe:tiny_mz",)
    assert after.ruleset_version != before.ruleset_version

    # Edited in place, same size: the modification time tells (set explicitly here, as
    # two writes within one clock tick of the file system can share an mtime).
    (rules / "pe.yar").write_text(MZ_RULE.replace("1024", "0002"))
    os.utime(rules / "pe.yar", ns=(0, 10**18))
    assert scanner.scan_path(sample).clean

    (rules / "pe.yar").unlink()
    assert scanner.scan_path(sample).ruleset_version == before.ruleset_version


def test_broken_after_load_fails_closed_until_fixed(rules: Path, tmp_path: Path) -> None:
    scanner = YaraScanner(rules)
    bad = artifact(tmp_path, b"DO-NOT-SHIP-THIS-BUILD")
    assert not scanner.scan_path(bad).clean

    (rules / "markers.yar").write_text(MARKER_RULE + BROKEN_RULE)
    for _ in range(2):  # stays unavailable; the old rules are not used
        with pytest.raises(ScannerUnavailable,
                           match=r"scanner unavailable: yara: .*markers\.yar\(6\)"):
            scanner.scan_path(bad)
    with pytest.raises(ScannerUnavailable):
        scan_all([scanner], bad)

    (rules / "markers.yar").write_text(MARKER_RULE)
    assert scanner.scan_path(bad).findings == ("markers:build_marker",)


def test_rules_directory_removed_after_load(rules: Path, tmp_path: Path) -> None:
    scanner = YaraScanner(rules)
    for f in rules.iterdir():
        f.unlink()
    rules.rmdir()
    with pytest.raises(ScannerUnavailable, match="does not exist"):
        scanner.scan_path(artifact(tmp_path, b"x"))


def test_unreadable_artifact_is_unavailable(rules: Path, tmp_path: Path) -> None:
    with pytest.raises(ScannerUnavailable, match=r"cannot scan missing\.bin"):
        YaraScanner(rules).scan_path(tmp_path / "missing.bin")
