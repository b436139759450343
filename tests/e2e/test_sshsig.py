"""SSH signatures (`--format sshsig`) against OpenSSH and git themselves: what `signgate
sign --format sshsig` writes verifies with `ssh-keygen -Y verify` and `-Y check-novalidate`
against the line `signgate key public --ssh` prints; git signs commits through
`signgate-ssh-keygen` (gpg.ssh.program, with the key's .pub file and with the `key::`
literal) and `git verify-commit` checks them with the real ssh-keygen. Every positive check
has a twin on tampered input (or the wrong namespace) that must fail."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import unique
from tests.support.server import Server

SSH_KEYGEN_SHIM = str(Path(sys.executable).with_name("signgate-ssh-keygen"))
CONTENT = b"a release artifact\n" * 2000


def ssh_keygen(*args: str, stdin: bytes) -> tuple[int, str]:
    proc = subprocess.run(["ssh-keygen", *args], input=stdin, capture_output=True,
                          timeout=60)
    return proc.returncode, (proc.stdout + proc.stderr).decode("utf-8", "replace")


def ssh_verify(signers: Path, signature: Path, message: bytes,
               namespace: str = "file") -> tuple[int, str]:
    return ssh_keygen("-Y", "verify", "-f", str(signers), "-I", "release@example",
                      "-n", namespace, "-s", str(signature), stdin=message)


@pytest.fixture(scope="module")
def project(sqlite_server: Server) -> str:
    name = unique("ssh")
    sqlite_server.cli("project", "create", name)
    sqlite_server.cli("grant", "add", "admin", "signer", name)
    return name


def _key(server: Server, ref: str, algorithm: str, tmp: Path,
         padding: str = "pkcs1v15") -> tuple[Path, Path]:
    """Create the key; its .pub (key public --ssh) and an allowed_signers file."""
    server.cli("key", "create", ref, "--algorithm", algorithm, "--rsa-padding", padding)
    line = server.cli("key", "public", ref, "--ssh").stdout.strip()
    assert line.endswith(f" signgate:{ref}")
    pub = tmp / f"{ref.replace('/', '_')}.pub"
    pub.write_text(line + "\n")
    signers = tmp / f"{ref.replace('/', '_')}.allowed_signers"
    signers.write_text(f"release@example {line}\n")
    return pub, signers


@pytest.mark.parametrize(("algorithm", "digest"), [("ed25519", None), ("ecdsa-p256", None),
                                                   ("ecdsa-p384", "sha256")])
def test_ssh_keygen_verifies_signgate_signatures(sqlite_server: Server, project: str,
                                                 tmp_path: Path, algorithm: str,
                                                 digest: str | None) -> None:
    """(RSA, rsa-sha2-512 from a PKCS#1 v1.5 key, is checked against ssh-keygen in
    tests/unit/test_sshsig.py: an RSA key made here costs seconds and proves no more.)"""
    server = sqlite_server
    ref = f"{project}/{algorithm}"
    _, signers = _key(server, ref, algorithm, tmp_path)
    artifact = tmp_path / "release.tar.gz"
    artifact.write_bytes(CONTENT)
    extra = ["--digest", digest] if digest else []
    signed = server.cli("sign", str(artifact), "--key", ref, "--format", "sshsig",
                        "--namespace", "file", "--no-timestamp", *extra, "--json").json()
    sig = Path(signed["signature_file"])
    assert sig == tmp_path / "release.tar.gz.sig"
    assert sig.read_text().startswith("-----BEGIN SSH SIGNATURE-----\n")
    assert signed["digest_algorithm"] == (digest or "sha512")

    code, out = ssh_verify(signers, sig, CONTENT)
    assert code == 0, out
    assert 'Good "file" signature for release@example' in out
    code, out = ssh_verify(signers, sig, CONTENT + b"tampered")
    assert code != 0
    assert "Good" not in out
    code, out = ssh_verify(signers, sig, CONTENT, namespace="git")
    assert code != 0
    assert "Good" not in out
    code, out = ssh_keygen("-Y", "check-novalidate", "-n", "file", "-s", str(sig),
                           stdin=CONTENT)
    assert code == 0, out
    assert 'Good "file" signature with' in out, out
    code, out = ssh_keygen("-Y", "check-novalidate", "-n", "file", "-s", str(sig),
                           stdin=CONTENT[:-1])
    assert code != 0
    assert "Good" not in out


def test_signgate_verify(sqlite_server: Server, project: str, tmp_path: Path) -> None:
    """`signgate verify` of an SSH signature: with the bare key (the OpenSSH line), and with
    the key version's certificate (the chain to signgate's root, and the RFC 3161 token
    beside the signature, over the ECDSA value the key store made)."""
    server = sqlite_server
    ref = f"{project}/verify"
    pub, _ = _key(server, ref, "ecdsa-p256", tmp_path)
    cert = tmp_path / "cert.pem"
    cert.write_text(server.cli("key", "cert", ref).stdout)
    artifact = tmp_path / "release.tar.gz"
    artifact.write_bytes(CONTENT)
    server.cli("sign", str(artifact), "--key", ref, "--format", "sshsig", "--namespace",
               "file")
    assert (tmp_path / "release.tar.gz.sig.tsr").exists()
    ok = server.cli("verify", str(artifact), "--public-key", str(pub), "--namespace", "file")
    assert ok.stdout.startswith("release.tar.gz: valid: 'file' signature"), ok.stdout
    full = server.cli("verify", str(artifact), "--certificate", str(cert), "--json").json()
    assert full["valid"], full
    assert full["format"] == "sshsig"
    assert full["key"] == ref
    assert full["details"]["namespace"] == "file"
    assert full["timestamped_at"]
    wrong = server.cli("verify", str(artifact), "--public-key", str(pub), "--namespace",
                       "git", check=False)
    assert wrong.returncode == 8
    assert "namespace 'file', not 'git'" in wrong.stderr
    sig = tmp_path / "release.tar.gz.sig"
    genuine = sig.read_text()
    sig.write_text(genuine.replace("\n", "\nAAAA", 1))  # a garbled blob, armor intact
    garbled = server.cli("verify", str(artifact), "--certificate", str(cert), check=False)
    assert garbled.returncode == 8
    assert garbled.stderr.startswith("signgate: INVALID release.tar.gz: not an SSH signature: "
                                     "no SSHSIG preamble"), garbled.stderr
    assert garbled.stderr.count("\n") == 1
    sig.write_text(genuine)
    artifact.write_bytes(CONTENT + b"tampered")
    bad = server.cli("verify", str(artifact), "--certificate", str(cert), check=False)
    assert bad.returncode == 8, bad.stderr
    assert "INVALID release.tar.gz" in bad.stderr, bad.stderr


def test_refusals(sqlite_server: Server, project: str, tmp_path: Path) -> None:
    server = sqlite_server
    ref = f"{project}/pss"
    server.cli("key", "create", ref, "--algorithm", "rsa-3072", "--rsa-padding", "pss")
    artifact = tmp_path / "a.bin"
    artifact.write_bytes(b"x")
    cases = [
        (["--namespace", "file"], "PSS"),
        ([], "needs --namespace"),
        (["--namespace", "file", "--digest", "sha384"], "sha256 or sha512"),
    ]
    for extra, message in cases:
        out = server.cli("sign", str(artifact), "--key", ref, "--format", "sshsig", *extra,
                         check=False)
        assert out.returncode != 0, out.stderr
        assert message in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "a.bin.sig").exists()
    out = server.cli("sign", str(artifact), "--key", ref, "--namespace", "file", check=False)
    assert out.returncode != 0
    assert "--format sshsig only" in out.stderr


def _git(repo: Path, env: dict[str, str], *args: str,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=120)
    if check:
        assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc


def test_git_commits_signed_through_signgate(sqlite_server: Server, project: str,
                                             tmp_path: Path) -> None:
    server = sqlite_server
    ref = f"{project}/git"
    pub, signers = _key(server, ref, "ed25519", tmp_path)
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
           "SIGNGATE_URL": server.url, "SIGNGATE_TOKEN": server.admin_token,
           "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "Rel Eng", "GIT_AUTHOR_EMAIL": "release@example",
           "GIT_COMMITTER_NAME": "Rel Eng", "GIT_COMMITTER_EMAIL": "release@example"}
    _git(repo, env, "init", "-q", "-b", "main")
    for name, value in [("gpg.format", "ssh"), ("gpg.ssh.program", SSH_KEYGEN_SHIM),
                        ("user.signingkey", str(pub)),
                        ("gpg.ssh.allowedSignersFile", str(signers))]:
        _git(repo, env, "config", name, value)
    (repo / "README").write_text("hello\n")
    _git(repo, env, "add", "README")
    _git(repo, env, "commit", "-q", "-S", "-m", "signed by signgate")
    verified = _git(repo, env, "verify-commit", "-v", "HEAD")
    assert 'Good "git" signature for release@example with ED25519 key' in verified.stderr
    # the key:: literal form: git writes the line to a temporary file and adds -U
    _git(repo, env, "config", "user.signingkey", "key::" + pub.read_text().strip())
    (repo / "README").write_text("hello again\n")
    _git(repo, env, "commit", "-q", "-a", "-S", "-m", "signed with a literal key")
    verified = _git(repo, env, "verify-commit", "HEAD")
    assert 'Good "git" signature for release@example' in verified.stderr
    log = _git(repo, env, "log", "--format=%G? %GS", "-2").stdout.split("\n")
    assert log[:2] == ["G release@example", "G release@example"]

    # a tampered commit object (same signature, other message) fails
    raw = _git(repo, env, "cat-file", "commit", "HEAD").stdout
    forged = raw.replace("signed with a literal key", "signed with a forged key")
    assert forged != raw
    made = subprocess.run(["git", "hash-object", "-t", "commit", "-w", "--stdin"], cwd=repo,
                          env=env, input=forged, capture_output=True, text=True, check=True)
    bad = _git(repo, env, "verify-commit", made.stdout.strip(), check=False)
    assert bad.returncode != 0, bad.stderr
    assert "Good" not in bad.stderr, bad.stderr

    # a key line that is no signgate key's is refused in one line, nothing written
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)],
                   check=True)
    data = tmp_path / "data"
    data.write_bytes(b"x")
    shim = subprocess.run([SSH_KEYGEN_SHIM, "-Y", "sign", "-n", "file", "-f",
                           f"{other}.pub", str(data)], env=env, capture_output=True,
                          text=True)
    assert shim.returncode != 0
    assert "no signgate key you can see" in shim.stderr
    assert not (tmp_path / "data.sig").exists()
    # without a comment, the key is found by its public key; other verbs go to ssh-keygen
    bare = tmp_path / "bare.pub"
    bare.write_text(" ".join(pub.read_text().split()[:2]) + "\n")
    shim = subprocess.run([SSH_KEYGEN_SHIM, "-Y", "sign", "-n", "file", "-f", str(bare),
                           str(data)], env=env, capture_output=True, text=True)
    assert shim.returncode == 0, shim.stderr
    assert f"with signgate key {ref}" in shim.stderr
    code, out = ssh_verify(signers, tmp_path / "data.sig", b"x")
    assert code == 0
    assert 'Good "file" signature' in out
    check = subprocess.run([SSH_KEYGEN_SHIM, "-Y", "check-novalidate", "-n", "file", "-s",
                            str(tmp_path / "data.sig")], env=env, input=b"y",
                           capture_output=True)
    assert check.returncode != 0
    assert b"Good" not in check.stdout + check.stderr
