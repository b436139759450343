"""signgate-gpg with the real tools that run gpg: git (commit -S, tag -s; verified by stock
gpg with the exported key), rpmsign (checked by rpmkeys --checksig), an apt repository
(InRelease and Release.gpg accepted by apt-get update with signed-by=) and gpg itself for
cleartext messages. Every accepted signature has a tampered twin that is refused. One
SQLite server and one Ed25519 key for the module (what is proven does not depend on the
database; the key types are proven by tests/e2e/test_openpgp.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from signgate.client.client import SigngateClient
from tests.conftest import unique
from tests.support import gpg as gpg_support
from tests.support.server import Server, start_server

SIGNGATE_GPG = str(Path(sys.executable).with_name("signgate-gpg"))


MARKER = "SIGNGATE-GPG-YARA-MARKER"


@dataclass(frozen=True)
class Signer:
    ref: str  # scan off
    scanned: str  # a key of the same project that signs only what signgate scanned
    fingerprint: str
    key_asc: Path  # the exported OpenPGP public key
    home: Path  # a GnuPG home with it imported
    env: dict[str, str]  # SIGNGATE_URL and a token of an identity with a signer grant
    server: Server


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Signer]:
    """A SQLite server with a YARA rule (so that a key can require scanning), an Ed25519
    key, and a CI identity that may sign with it."""
    rules = tmp_path_factory.mktemp("yara")
    (rules / "marker.yar").write_text(
        f'rule GpgMarker {{ strings: $a = "{MARKER}" condition: $a }}\n')
    with ExitStack() as stack:
        server = start_server(tmp_path_factory.mktemp("signgate") / "data", None,
                              config=f'scan_yara_dir = "{rules}"')
        stack.callback(server.stop)
        project, ci = unique("gpgc"), unique("ci")
        ref, scanned = f"{project}/release", f"{project}/scanned"
        with SigngateClient(server.url, server.admin_token) as admin:
            admin.create_project(project)
            admin.create_key(ref, "ed25519", scan="off")
            admin.create_key(scanned, "ed25519", scan="required")
            token = admin.create_identity(ci, "service")["token"]
            admin.add_grant(ci, "signer", project)
            admin.add_grant("admin", "signer", project)
            view = admin.openpgp_key(ref, user_id="Acme Releases <release@acme.example>")
        key_asc = tmp_path_factory.mktemp("key") / "release.asc"
        key_asc.write_text(view["armored"])
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("SIGNGATE_", "GNUPG"))}
        env.update(SIGNGATE_URL=server.url, SIGNGATE_TOKEN=token, GIT_CONFIG_NOSYSTEM="1",
                   GIT_CONFIG_GLOBAL=os.devnull,
                   PATH=f"{Path(SIGNGATE_GPG).parent}{os.pathsep}{os.environ['PATH']}")
        home = stack.enter_context(gpg_support.gpg_home())
        imported = gpg(home, "--status-fd", "1", "--import", str(key_asc))
        assert f"IMPORT_OK 1 {view['fingerprint']}" in imported.stdout, imported
        yield Signer(ref, scanned, view["fingerprint"], key_asc, home, env, server)


def gpg(home: Path, *args: str, data: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["gpg", "--homedir", str(home), "--batch", "--no-tty", *args],
                          input=data.decode() if data is not None else None,
                          capture_output=True, text=True, timeout=60)


def run(signer: Signer, *args: str, data: bytes = b"", cwd: Path | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(list(args), input=data, capture_output=True, cwd=cwd, timeout=60,
                          env={**signer.env, **(env or {})})


def sg_gpg(signer: Signer, *args: str, data: bytes = b"",
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return run(signer, SIGNGATE_GPG, *args, data=data, env=env)


def git(signer: Signer, repo: Path, *args: str, data: bytes = b"",
        ) -> subprocess.CompletedProcess[bytes]:
    return run(signer, "git", "-C", str(repo), *args, data=data,
               env={"GNUPGHOME": str(signer.home)})


# --- git --------------------------------------------------------------------------------

def test_git_commit_and_tag_signed_by_signgate_verify_with_stock_gpg(signer: Signer,
                                                                    tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True, env=signer.env)
    for name, value in (("user.name", "Dev"), ("user.email", "dev@acme.example"),
                        ("gpg.program", SIGNGATE_GPG), ("user.signingkey", signer.fingerprint)):
        git(signer, repo, "config", name, value)
    (repo / "a.txt").write_text("a\n")
    git(signer, repo, "add", "a.txt")
    made = git(signer, repo, "commit", "-q", "-S", "-m", "signed by signgate")
    assert made.returncode == 0, made.stderr
    # A tag, with the key named PROJECT/NAME this time.
    git(signer, repo, "config", "user.signingkey", signer.ref)
    tagged = git(signer, repo, "tag", "-s", "v1.0", "-m", "release 1.0")
    assert tagged.returncode == 0, tagged.stderr

    def verify(*args: str, program: str = "gpg") -> str:
        out = git(signer, repo, "-c", f"gpg.program={program}", *args)
        return out.stderr.decode()

    for raw in (verify("verify-commit", "--raw", "HEAD"), verify("verify-tag", "--raw", "v1.0"),
                # signgate-gpg hands --verify to the real gpg: still verifies as gpg.program
                verify("verify-commit", "--raw", "HEAD", program=SIGNGATE_GPG)):
        assert f"[GNUPG:] VALIDSIG {signer.fingerprint} " in raw, raw
        assert f"[GNUPG:] GOODSIG {signer.fingerprint[-16:]} " in raw, raw

    # The same signature on a commit whose message was changed: refused.
    commit = git(signer, repo, "cat-file", "commit", "HEAD").stdout
    assert b"gpgsig -----BEGIN PGP SIGNATURE-----" in commit
    forged = commit.replace(b"signed by signgate", b"signed by someone else")
    sha = git(signer, repo, "hash-object", "-t", "commit", "-w", "--stdin",
              data=forged).stdout.decode().strip()
    bad = verify("verify-commit", "--raw", sha)
    assert "[GNUPG:] BADSIG" in bad, bad
    assert "GOODSIG" not in bad
    assert "VALIDSIG" not in bad
    assert git(signer, repo, "-c", "gpg.program=gpg", "verify-commit", sha).returncode != 0


# --- rpm --------------------------------------------------------------------------------

SPEC = """\
Name: signgate-hello
Version: 1.0
Release: 1
Summary: a package to sign
License: MIT
BuildArch: noarch
%description
A package to sign.
%install
mkdir -p %{buildroot}/usr/share/signgate-hello
echo hello > %{buildroot}/usr/share/signgate-hello/hello.txt
%files
/usr/share/signgate-hello/hello.txt
"""


def test_rpmsign_through_signgate_gpg_passes_rpmkeys_checksig(signer: Signer,
                                                             tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}  # no ~/.rpmmacros of the machine's
    (tmp_path / "hello.spec").write_text(SPEC)
    built = run(signer, "rpmbuild", "-bb", "--define", f"_topdir {tmp_path / 'top'}",
                "--define", "_build_id_links none", str(tmp_path / "hello.spec"), env=env)
    assert built.returncode == 0, built.stderr
    rpm = next((tmp_path / "top" / "RPMS").rglob("*.rpm"))
    signed = run(signer, "rpmsign", "--addsign", "--define", f"__gpg {SIGNGATE_GPG}",
                 "--define", f"_gpg_name {signer.fingerprint}", str(rpm), env=env)
    assert signed.returncode == 0, signed.stderr
    db = tmp_path / "rpmdb"
    db.mkdir()
    imported = run(signer, "rpmkeys", "--dbpath", str(db), "--import", str(signer.key_asc),
                   env=env)
    assert imported.returncode == 0, imported.stderr

    def checksig(path: Path) -> subprocess.CompletedProcess[bytes]:
        return run(signer, "rpmkeys", "--dbpath", str(db), "--checksig", "-v", str(path),
                   env=env)

    good = checksig(rpm)
    assert good.returncode == 0, good
    assert f"Signature, key ID {signer.fingerprint[-8:].lower()}: OK".encode() in good.stdout
    assert run(signer, "rpmkeys", "--dbpath", str(db), "--checksig", str(rpm),
               env=env).stdout.strip().endswith(b"digests signatures OK")
    data = bytearray(rpm.read_bytes())
    data[-64] ^= 0x01  # a payload byte
    tampered = tmp_path / "tampered.rpm"
    tampered.write_bytes(bytes(data))
    bad = run(signer, "rpmkeys", "--dbpath", str(db), "--checksig", str(tampered), env=env)
    assert bad.returncode != 0, bad
    assert b"NOT OK" in bad.stdout, bad
    # The signed header itself changed (its summary): the signature is what fails.
    assert data.count(b"a package to sign") == 1
    tampered.write_bytes(rpm.read_bytes().replace(b"a package to sign", b"a package to sing"))
    bad = checksig(tampered)
    assert bad.returncode != 0, bad
    assert f"Signature, key ID {signer.fingerprint[-8:].lower()}: BAD".encode() in bad.stdout, bad


# --- apt --------------------------------------------------------------------------------

def test_apt_repository_signed_by_signgate_is_accepted_by_apt_get_update(
        signer: Signer, tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "DEBIAN" / "control").write_text(
        "Package: signgate-hello\nVersion: 1.0\nArchitecture: all\n"
        "Maintainer: Dev <dev@acme.example>\nDescription: a package to sign\n")
    (pkg / "usr" / "share").mkdir(parents=True)
    (pkg / "usr" / "share" / "signgate-hello").write_text("hello\n")
    repo = tmp_path / "repo"
    repo.mkdir()
    assert run(signer, "dpkg-deb", "-Zgzip", "--build", str(pkg),
               str(repo / "signgate-hello_1.0_all.deb")).returncode == 0
    (repo / "Packages").write_bytes(run(signer, "apt-ftparchive", "packages", ".",
                                        cwd=repo).stdout)
    release = run(signer, "apt-ftparchive", "-o", "APT::FTPArchive::Release::Origin=acme",
                  "release", ".", cwd=repo).stdout
    assert b"SHA256:" in release
    (repo / "Release").write_bytes(release)
    for args in (["--clearsign", "-o", "InRelease"], ["-abs", "-o", "Release.gpg"]):
        made = run(signer, SIGNGATE_GPG, "-u", signer.fingerprint, *args, "Release", cwd=repo)
        assert made.returncode == 0, made.stderr
    keyring = tmp_path / "acme.gpg"
    keyring.write_bytes(subprocess.run(["gpg", "--dearmor"], input=signer.key_asc.read_bytes(),
                                       capture_output=True, check=True).stdout)
    sources = tmp_path / "sources.list"
    sources.write_text(f"deb [signed-by={keyring}] file:{repo} ./\n")

    def update() -> tuple[subprocess.CompletedProcess[bytes], bytes]:
        state = tmp_path / f"state{len(list(tmp_path.glob('state*')))}"
        (state / "lists" / "partial").mkdir(parents=True)
        (state / "cache" / "archives" / "partial").mkdir(parents=True)
        options = [f"-oDir::Etc::sourcelist={sources}", "-oDir::Etc::sourceparts=-",
                   f"-oDir::State::Lists={state / 'lists'}", f"-oDir::Cache={state / 'cache'}",
                   f"-oDir::Etc::Trusted={state / 'none.gpg'}",
                   f"-oDir::Etc::TrustedParts={state / 'none.d'}",
                   "-oAPT::Sandbox::User=root", "-oDebug::NoLocking=1"]
        updated = run(signer, "apt-get", *options, "update")
        policy = run(signer, "apt-cache", *options, "policy", "signgate-hello").stdout
        return updated, policy

    def accepted() -> None:
        updated, policy = update()
        out = updated.stdout + updated.stderr
        assert updated.returncode == 0, out
        for refusal in (b"NO_PUBKEY", b"not signed", b"BADSIG", b"GPG error"):
            assert refusal not in out, out
        assert b"Candidate: 1.0" in policy, policy

    def refused() -> None:
        updated, policy = update()
        out = updated.stdout + updated.stderr
        assert updated.returncode != 0, out
        assert b"BADSIG" in out, out
        assert b"Candidate: 1.0" not in policy, policy

    accepted()  # InRelease
    inrelease = (repo / "InRelease").read_bytes()
    (repo / "InRelease").write_bytes(inrelease.replace(b"Origin: acme", b"Origin: evil"))
    refused()
    (repo / "InRelease").unlink()
    accepted()  # Release + Release.gpg
    (repo / "Release").write_bytes(release.replace(b"Origin: acme", b"Origin: evil"))
    refused()


# --- cleartext and the command line ------------------------------------------------------

TEXT = (b"Origin: acme\n-----BEGIN PGP SIGNATURE-----\n- already escaped?\n"
        b"trailing spaces   \ntrailing tab\t\nwindows line\r\nFrom the start\n\nlast, no LF")


def test_cleartext_message_verifies_with_gpg(signer: Signer, tmp_path: Path) -> None:
    made = sg_gpg(signer, "--clearsign", "-u", signer.ref, "--status-fd", "2", data=TEXT)
    assert made.returncode == 0, made.stderr
    message = made.stdout
    assert message.startswith(b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n")
    assert b"\n- -----BEGIN PGP SIGNATURE-----\n- - already escaped?\n" in message
    assert re.search(rf"^\[GNUPG:\] SIG_CREATED C 22 8 01 \d+ {signer.fingerprint}$",
                     made.stderr.decode(), re.M), made.stderr
    signed = tmp_path / "msg.asc"
    signed.write_bytes(message)
    good = gpg(signer.home, "--status-fd", "1", "--verify", str(signed))
    assert f"[GNUPG:] VALIDSIG {signer.fingerprint} " in good.stdout, good
    # gpg gives back the text as signed: trailing white space is not part of it (RFC 4880
    # §7.1), so the same signature stands without it ...
    out = gpg(signer.home, "--decrypt", str(signed))
    assert out.stdout.encode() == b"\n".join(
        line.rstrip(b" \t\r") for line in TEXT.split(b"\n")) + b"\n"
    signed.write_bytes(message.replace(b"trailing spaces   \n", b"trailing spaces\n"))
    assert "VALIDSIG" in gpg(signer.home, "--status-fd", "1", "--verify", str(signed)).stdout
    # ... but a changed word is refused.
    signed.write_bytes(message.replace(b"Origin: acme", b"Origin: acne"))
    bad = gpg(signer.home, "--status-fd", "1", "--verify", str(signed))
    assert "[GNUPG:] BADSIG" in bad.stdout, bad
    assert "VALIDSIG" not in bad.stdout, bad


def test_detached_binary_and_armored_signatures_and_status_lines(signer: Signer,
                                                                 tmp_path: Path) -> None:
    data = tmp_path / "app.tar.gz"
    data.write_bytes(b"\x00app\xff" * 1000)
    # rpm's way: binary, -sbo OUT -- IN, with the options it adds.
    made = sg_gpg(signer, "--no-verbose", "--no-armor", "--no-secmem-warning",
                  "--digest-algo=SHA512", "-u", f"0x{signer.fingerprint[-16:]}", "--batch",
                  "--pinentry-mode", "loopback", "--status-fd=1", "-sbo",
                  str(tmp_path / "app.sig"), "--", str(data))
    assert made.returncode == 0, made.stderr
    assert made.stderr == b""
    lines = made.stdout.decode().splitlines()
    assert lines[0] == f"[GNUPG:] KEY_CONSIDERED {signer.fingerprint} 0"
    assert lines[1] == "[GNUPG:] BEGIN_SIGNING H10"
    assert re.fullmatch(rf"\[GNUPG:\] SIG_CREATED D 22 10 00 \d+ {signer.fingerprint}",
                        lines[2]), lines
    assert (tmp_path / "app.sig").read_bytes()[:1] != b"-"  # binary packet
    # Default output names as gpg's: FILE.asc armored.
    assert sg_gpg(signer, "-abu", signer.ref, str(data)).returncode == 0
    for sig in (tmp_path / "app.sig", tmp_path / "app.tar.gz.asc"):
        good = gpg(signer.home, "--status-fd", "1", "--verify", str(sig), str(data))
        assert f"[GNUPG:] VALIDSIG {signer.fingerprint} " in good.stdout, good
    other = tmp_path / "other"
    other.write_bytes(data.read_bytes() + b"!")
    bad = gpg(signer.home, "--status-fd", "1", "--verify", str(tmp_path / "app.sig"), str(other))
    assert "[GNUPG:] BADSIG" in bad.stdout, bad
    # --json: signgate's receipt (the audit entry and the log index of this signing).
    receipt = sg_gpg(signer, "-abu", signer.ref, "--json", "-o", str(tmp_path / "r.asc"),
                     str(data))
    assert receipt.returncode == 0, receipt.stderr
    seen = json.loads(receipt.stdout)
    assert seen["key"] == signer.ref
    assert seen["fingerprint"] == signer.fingerprint
    assert seen["artifact_name"] == "app.tar.gz"
    assert isinstance(seen["log_index"], int)
    # The output exists: gpg in batch mode refuses without --yes, and so does this.
    again = sg_gpg(signer, "-abu", signer.ref, str(data))
    assert again.returncode != 0
    assert b"--yes" in again.stderr
    assert sg_gpg(signer, "--yes", "-abu", signer.ref, str(data)).returncode == 0


def test_refusals_are_one_line_with_a_failure_status_and_nothing_written(
        signer: Signer, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.write_bytes(b"data")
    out = tmp_path / "out.asc"

    unknown = sg_gpg(signer, "-bsau", signer.ref, "--sign-with", "x", "-x", "-o", str(out),
                     str(data))
    assert unknown.returncode == 2
    assert unknown.stderr.decode().count("\n") == 1
    assert "unknown options --sign-with, -x" in unknown.stderr.decode()

    missing = sg_gpg(signer, "--status-fd=1", "-bsau", "0x" + "AB" * 20, "-o", str(out),
                     str(data))
    assert missing.returncode == 5, missing
    assert missing.stderr.decode().count("\n") == 1
    assert b"[GNUPG:] INV_SGNR 9 0x" in missing.stdout
    assert b"[GNUPG:] FAILURE sign " in missing.stdout

    auditor = unique("auditor")  # sees the key, may not sign with it
    with SigngateClient(signer.server.url, signer.server.admin_token) as admin:
        stranger = admin.create_identity(auditor, "service")["token"]
        admin.add_grant(auditor, "auditor", signer.ref)
    denied = sg_gpg(signer, "--status-fd=1", "-bsau", signer.ref, "-o", str(out), str(data),
                    env={"SIGNGATE_TOKEN": stranger})
    assert denied.returncode == 4, denied
    assert denied.stderr.decode().count("\n") == 1
    assert b"[GNUPG:] FAILURE sign " in denied.stdout
    assert b"SIG_CREATED" not in denied.stdout
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [data]  # no temporary file left behind either

    inline = sg_gpg(signer, "-su", signer.ref, str(data))
    assert inline.returncode == 2
    assert b"inline" in inline.stderr


def test_a_key_that_requires_scanning_gets_the_data_uploaded(signer: Signer,
                                                             tmp_path: Path) -> None:
    """The data goes to signgate, which scans it and hashes it again itself (the canonical
    text of a cleartext message too) before it signs."""
    with SigngateClient(signer.server.url, signer.server.admin_token) as admin:
        view = admin.openpgp_key(signer.scanned)
    key = tmp_path / "scanned.asc"
    key.write_text(view["armored"])
    assert "IMPORT_OK" in gpg(signer.home, "--status-fd", "1", "--import", str(key)).stdout
    made = sg_gpg(signer, "--clearsign", "-u", signer.scanned, "--json", "-o",
                  str(tmp_path / "InRelease"), data=TEXT)
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["scan"]["verdict"] == "clean"
    good = gpg(signer.home, "--status-fd", "1", "--verify", str(tmp_path / "InRelease"))
    assert f"[GNUPG:] VALIDSIG {view['fingerprint']} " in good.stdout, good
    assert " 01 " + view["fingerprint"] in good.stdout  # a canonical-text signature

    flagged = sg_gpg(signer, "--status-fd=2", "-abu", signer.scanned,
                     data=b"release notes " + MARKER.encode())
    assert flagged.returncode == 4, flagged
    assert flagged.stdout == b""
    err = flagged.stderr.decode()
    assert "yara" in err, err
    assert "[GNUPG:] FAILURE sign " in err
    assert "SIG_CREATED" not in err


def test_a_key_that_needs_approvals_is_pending(signer: Signer, tmp_path: Path) -> None:
    held = signer.ref.replace("/release", "/held")
    with SigngateClient(signer.server.url, signer.server.admin_token) as admin:
        admin.create_key(held, "ed25519", scan="off")
        admin.set_approval_policy(held, 1)
    out = tmp_path / "held.asc"
    pending = sg_gpg(signer, "--status-fd=2", "-abu", held, "-o", str(out), data=b"data")
    assert pending.returncode == 11, pending
    assert b"awaits approvals (0 of 1" in pending.stderr
    assert b"SIGNGATE_GPG_WAIT" in pending.stderr
    assert b"[GNUPG:] FAILURE sign " in pending.stderr
    assert not out.exists()
