"""The command line's own errors: usage errors are one line starting ``signgate:`` (with
"did you mean" for a mistyped command or choice), missing input and configuration errors
get the exit codes the README gives them (issue 9, items 17 and 18)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import unique
from tests.support.server import SIGNGATE, CliResult, Server


def run(*args: str, url: str = "http://127.0.0.1:1", cwd: Path | None = None) -> CliResult:
    """The CLI with no server behind it: usage errors come before any request."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNGATE_")}
    env |= {"SIGNGATE_URL": url, "SIGNGATE_TOKEN": "sgt_not-used"}
    proc = subprocess.run([SIGNGATE, *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=60)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def one_line(result: CliResult, code: int, *needles: str) -> str:
    assert result.returncode == code, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("signgate: "), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert result.stdout == ""
    return lines[0]


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    path = tmp_path / "app.bin"
    path.write_bytes(b"artifact")
    return path


def test_missing_file(tmp_path: Path) -> None:
    one_line(run("sign", str(tmp_path / "nope.bin"), "--key", "p/k"), 2,
             "nope.bin' does not exist", "(see 'signgate sign --help')")
    assert not (tmp_path / "nope.bin.sig").exists()


def test_unknown_format_suggests_the_closest(artifact: Path) -> None:
    one_line(run("sign", str(artifact), "--key", "p/k", "--format", "cmss"), 2,
             "'cmss' is not one of", "Did you mean 'cms'?")
    one_line(run("verify", str(artifact), "--format", "sigstor"), 2,
             "Did you mean 'sigstore'?")


def test_missing_key_option(artifact: Path) -> None:
    one_line(run("sign", str(artifact)), 2, "Missing option '--key'")


def test_bad_role_suggests_the_closest() -> None:
    one_line(run("grant", "add", "ci", "sigler", "acme"), 2,
             "'sigler' is not one of", "Did you mean 'signer'?")
    one_line(run("identity", "create", "x", "--kind", "servce"), 2, "Did you mean 'service'?")


@pytest.mark.parametrize(("args", "suggestion"), [
    (["sing", "x"], "Did you mean 'sign'?"),
    (["verfy"], "Did you mean 'verify'?"),
    (["key", "crate", "p/k"], "'create'"),
    (["audit", "verfy"], "Did you mean 'verify'?"),
    (["sign", "x", "--tken", "t"], "Did you mean"),
])
def test_mistyped_commands_and_options(args: list[str], suggestion: str) -> None:
    line = one_line(run(*args), 2, suggestion)
    assert "Usage:" not in line


def test_help_is_unchanged() -> None:
    r = run("sign", "--help")
    assert r.returncode == 0
    assert r.stdout.startswith("Usage: signgate sign [OPTIONS] FILE...\n")
    assert "--format" in r.stdout
    assert len(r.stdout.splitlines()) > 10
    r = run("key")  # a group without its command: its help, as before
    assert r.returncode == 2
    assert "Commands:" in r.stderr


@pytest.mark.parametrize("url", ["127.0.0.1:8080", "localhost", "ftp://127.0.0.1/",
                                 "http://"])
def test_url_without_a_scheme_is_a_configuration_error(url: str) -> None:
    one_line(run("project", "list", url=url), 10, "is not an http:// or https:// URL")


def test_verify_without_the_certificate_it_needs_is_missing_input(
        sqlite_server: Server, artifact: Path) -> None:
    """A raw signature names no signer: without --certificate (or --key) nothing can be
    checked, which is missing input (7), not a failed verification (8)."""
    project = unique("usage")
    sqlite_server.cli("project", "create", project)
    sqlite_server.cli("key", "create", f"{project}/k")
    sqlite_server.cli("grant", "add", "admin", "signer", f"{project}/k")
    sqlite_server.cli("sign", str(artifact), "--key", f"{project}/k", "--format", "raw",
                      "--no-timestamp")
    sig = artifact.with_name(artifact.name + ".sig")
    assert sig.exists()
    r = sqlite_server.cli("verify", str(artifact), "--signature", str(sig), "--format", "raw",
                          "--no-revocation-check", check=False)
    one_line(r, 7, "does not name its signer", "--certificate")
    # With the certificate it needs, it verifies (and tampering still fails with 8).
    cert = artifact.with_name("k.pem")
    cert.write_text(sqlite_server.cli("key", "cert", f"{project}/k").stdout)
    root = artifact.with_name("root.pem")
    root.write_text(sqlite_server.cli("ca", "cert").stdout)
    ok = sqlite_server.cli("verify", str(artifact), "--signature", str(sig), "--format",
                           "raw", "--certificate", str(cert), "--ca", str(root),
                           "--no-revocation-check", check=False)
    assert ok.returncode == 0, ok
    artifact.write_bytes(b"tampered")
    bad = sqlite_server.cli("verify", str(artifact), "--signature", str(sig), "--format",
                            "raw", "--certificate", str(cert), "--ca", str(root),
                            "--no-revocation-check", check=False)
    assert bad.returncode == 8, bad
