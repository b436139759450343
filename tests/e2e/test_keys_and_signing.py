"""Keys of every algorithm, signing and verification, end to end: the real CLI against a real
server, every signature checked by the real 'openssl'."""

from __future__ import annotations

import hashlib
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import unique
from tests.support.server import Server, openssl

# (algorithm, --rsa-padding or None, digests to sign with)
CASES = [
    ("ecdsa-p256", None, ["sha256", "sha384", "sha512"]),
    ("ecdsa-p384", None, ["sha384", "sha256"]),
    ("ed25519", None, ["sha256", "sha384", "sha512"]),
    ("rsa-3072", "pss", ["sha256", "sha512"]),
    ("rsa-4096", "pss", ["sha256"]),
    ("rsa-3072", "pkcs1v15", ["sha256", "sha384"]),
]

# What 'openssl pkey -text_pub' says about the public key of each algorithm.
KEY_TEXT = {
    "ecdsa-p256": "prime256v1",
    "ecdsa-p384": "secp384r1",
    "ed25519": "ED25519 Public-Key",
    "rsa-3072": "Public-Key: (3072 bit)",
    "rsa-4096": "Public-Key: (4096 bit)",
}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60)


def openssl_verify(algorithm: str, padding: str | None, digest: str, pub: Path, sig: Path,
                   artifact: Path, tmp: Path) -> subprocess.CompletedProcess[str]:
    """Check ``sig`` over ``artifact`` with openssl the way a relying party would."""
    if algorithm == "ed25519":
        # Pure Ed25519 over the digest bytes of the file.
        digest_bin = tmp / (artifact.name + f".{digest}.bin")
        digest_bin.write_bytes(hashlib.new(digest, artifact.read_bytes()).digest())
        return run(openssl(), "pkeyutl", "-verify", "-pubin", "-inkey", str(pub), "-rawin",
                   "-in", str(digest_bin), "-sigfile", str(sig))
    cmd = [openssl(), "dgst", f"-{digest}", "-verify", str(pub), "-signature", str(sig)]
    if padding == "pss":
        cmd += ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:-1"]
    return run(*cmd, str(artifact))


def assert_openssl_ok(proc: subprocess.CompletedProcess[str], algorithm: str) -> None:
    expected = "Signature Verified Successfully" if algorithm == "ed25519" else "Verified OK"
    assert proc.returncode == 0, proc
    assert proc.stdout.strip() == expected, proc


def assert_openssl_fails(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode != 0, proc
    assert "verification failure" in (proc.stdout + proc.stderr).lower(), proc
    assert "Verified OK" not in proc.stdout
    assert "Verified Successfully" not in proc.stdout


def tamper(src: Path, dst: Path) -> Path:
    data = bytearray(src.read_bytes())
    data[len(data) // 2] ^= 0x01
    dst.write_bytes(bytes(data))
    return dst


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def project(server: Server) -> str:
    name = unique("keys")
    assert server.cli("project", "create", name).stdout.strip() == f"created project {name}"
    return name


@pytest.fixture(scope="module")
def ci(server: Server) -> tuple[str, str]:
    name = unique("ci")
    return name, server.new_identity(name)


def api(server: Server, method: str, path: str, **kwargs: Any) -> Any:
    """Set-up and look-ups straight over HTTP (the CLI is what these tests exercise)."""
    with server.http() as http:
        r = http.request(method, "/api/v1" + path, **kwargs)
    assert r.status_code in (200, 201), r.text
    return r.json()


def key_path(ref: str) -> str:
    project, name = ref.split("/")
    return f"/projects/{project}/keys/{name}"


def make_key(server: Server, ref: str, ci_name: str, *extra: str) -> None:
    out = server.cli("key", "create", ref, *extra)
    assert out.stdout.startswith(f"created key {ref} (")
    assert out.stdout.rstrip().endswith("version 1)")
    api(server, "POST", "/grants", json={"identity": ci_name, "role": "signer", "scope": ref})


def sign(server: Server, token: str, artifact: Path, ref: str, *extra: str) -> dict[str, Any]:
    result = server.cli("sign", str(artifact), "--key", ref, "--json", *extra, token=token)
    receipt: dict[str, Any] = result.json()
    return receipt


def write_public(server: Server, ref: str, path: Path, *extra: str) -> Path:
    path.write_text(server.cli("key", "public", ref, *extra).stdout)
    return path


# -- every algorithm, checked by openssl ------------------------------------------------


@pytest.mark.parametrize(("algorithm", "padding", "digests"), CASES,
                         ids=[f"{a}-{p}" if p else a for a, p, _ in CASES])
def test_sign_and_verify_every_algorithm(server: Server, project: str, ci: tuple[str, str],
                                         tmp_path: Path, algorithm: str, padding: str | None,
                                         digests: list[str]) -> None:
    ci_name, token = ci
    ref = f"{project}/{unique(algorithm)}"
    extra = ["--algorithm", algorithm] + (["--rsa-padding", padding] if padding else [])
    make_key(server, ref, ci_name, *extra)
    shown = api(server, "GET", key_path(ref))
    assert shown["algorithm"] == algorithm
    assert shown["rsa_padding"] == padding

    pub = write_public(server, ref, tmp_path / "pub.pem")
    text = run(openssl(), "pkey", "-pubin", "-in", str(pub), "-noout", "-text_pub")
    assert text.returncode == 0, text
    assert KEY_TEXT[algorithm] in text.stdout, text.stdout

    for i, digest in enumerate(digests):
        artifact = tmp_path / f"artifact-{digest}.bin"
        artifact.write_bytes(f"{algorithm} {digest} release bits ".encode() * 777)
        receipt = sign(server, token, artifact, ref, "--digest", digest)
        assert receipt["key"] == ref
        assert receipt["algorithm"] == algorithm
        assert receipt["rsa_padding"] == padding
        assert receipt["digest_algorithm"] == digest
        assert receipt["digest"] == hashlib.new(digest, artifact.read_bytes()).hexdigest()
        sig = Path(receipt["signature_file"])
        assert sig == artifact.with_name(artifact.name + ".sig")
        raw = sig.read_bytes()
        if algorithm == "ed25519":
            assert len(raw) == 64
        elif algorithm.startswith("rsa"):
            assert len(raw) == int(algorithm.split("-")[1]) // 8
        else:
            assert raw[0] == 0x30  # DER Ecdsa-Sig-Value

        assert_openssl_ok(openssl_verify(algorithm, padding, digest, pub, sig, artifact,
                                         tmp_path), algorithm)
        bad = tamper(artifact, tmp_path / f"tampered-{digest}.bin")
        assert_openssl_fails(openssl_verify(algorithm, padding, digest, pub, sig, bad,
                                            tmp_path))

        online = server.cli("verify", str(artifact), "--signature", str(sig), "--key", ref,
                            "--digest", digest, token=token)
        assert online.stdout.strip() == f"{artifact.name}: valid: signed by {ref} version 1"
        if i > 0:
            continue  # the CLI verifiers on a tampered file: once per algorithm is enough
        offline = server.cli("verify", str(artifact), "--signature", str(sig),
                             "--public-key", str(pub), "--digest", digest)
        assert offline.stdout.strip() == (
            f"{artifact.name}: valid: signed by the holder of {pub.name}")

        online_bad = server.cli("verify", str(bad), "--signature", str(sig), "--key", ref,
                                "--digest", digest, token=token, check=False)
        assert online_bad.returncode == 8, online_bad
        assert online_bad.stdout == ""
        assert online_bad.stderr == (
            f"signgate: INVALID {bad.name}: the signature does not match any version of "
            f"{ref} for this file\n")
        offline_bad = server.cli("verify", str(bad), "--signature", str(sig),
                                 "--public-key", str(pub), "--digest", digest, check=False)
        assert offline_bad.returncode == 8, offline_bad
        assert offline_bad.stderr == (
            f"signgate: INVALID {bad.name}: the signature does not match {pub.name} "
            "for this file\n")

    if algorithm != "ed25519":
        # The digest is part of what is signed: verifying with another digest fails.
        other = "sha512" if digests[0] != "sha512" else "sha256"
        artifact = tmp_path / f"artifact-{digests[0]}.bin"
        sig = artifact.with_name(artifact.name + ".sig")
        assert_openssl_fails(openssl_verify(algorithm, padding, other, pub, sig, artifact,
                                            tmp_path))
    versions = api(server, "GET", key_path(ref))["versions"]
    assert [(v["version"], v["signatures"]) for v in versions] == [(1, len(digests))]


# -- receipts --------------------------------------------------------------------------


def test_receipt_and_output_file(server: Server, project: str, ci: tuple[str, str],
                                 tmp_path: Path) -> None:
    ci_name, token = ci
    ref = f"{project}/{unique('receipt')}"
    make_key(server, ref, ci_name)
    artifact = tmp_path / "app-1.0.tar.gz"
    artifact.write_bytes(b"\x00\x01 receipt test " * 5000)
    out = tmp_path / "sigs" / "app.sig"
    out.parent.mkdir()
    before = datetime.now(UTC)
    result = server.cli("sign", str(artifact), "--key", ref, "--json", "-o", str(out),
                        "--meta", "commit=abc123", token=token)
    after = datetime.now(UTC)
    receipt = result.json()
    for field in ("signature_id", "key", "key_version", "algorithm", "digest",
                  "digest_algorithm", "signed_at", "audit_seq"):
        assert field in receipt, field
    assert receipt["key"] == ref
    assert receipt["key_version"] == 1
    assert receipt["algorithm"] == "ecdsa-p256"
    assert receipt["digest_algorithm"] == "sha256"
    assert receipt["digest"] == hashlib.sha256(artifact.read_bytes()).hexdigest()
    assert receipt["identity"] == ci_name
    assert receipt["artifact_name"] == artifact.name
    assert receipt["signature_file"] == str(out)
    assert len(receipt["signature_id"]) == 36
    signed_at = parse_time(receipt["signed_at"])
    assert before.timestamp() - 5 <= signed_at.timestamp() <= after.timestamp() + 5
    assert out.is_file()
    assert not artifact.with_name(artifact.name + ".sig").exists()

    pub = write_public(server, ref, tmp_path / "pub.pem")
    assert_openssl_ok(openssl_verify("ecdsa-p256", None, "sha256", pub, out, artifact,
                                     tmp_path), "ecdsa-p256")

    # The receipt names the audit entry that records this very signature.
    with server.http() as http:
        page = http.get("/api/v1/audit",
                        params={"after": receipt["audit_seq"] - 1, "limit": 1}).json()
    entry = page["entries"][0]
    assert entry["seq"] == receipt["audit_seq"]
    assert entry["action"] == "signature.create"
    assert entry["actor"] == ci_name
    assert entry["key"] == ref
    assert entry["details"]["signature_id"] == receipt["signature_id"]
    assert entry["details"]["digest"] == receipt["digest"]
    assert entry["details"]["metadata"] == {"commit": "abc123"}
    assert entry["details"]["signature_sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()

    # The online verifier finds the signature record from the receipt.
    verified = server.cli("verify", str(artifact), "--signature", str(out), "--key", ref,
                          "--json", token=token).json()
    assert verified["valid"] is True
    assert verified["signature_id"] == receipt["signature_id"]
    assert verified["signed_by"] == ci_name
    assert verified["key_version"] == 1

    # Plain text output names the key, version and where the signature went.
    again = server.cli("sign", str(artifact), "--key", ref, token=token)
    assert again.stdout.startswith(f"signed {artifact.name} with {ref} version 1 -> ")
    assert str(artifact) + ".sig" in again.stdout


# -- listing and showing keys ----------------------------------------------------------


def test_key_list_show_public(server: Server, tmp_path: Path) -> None:
    proj = unique("listing")
    api(server, "POST", "/projects", json={"name": proj})
    a, b = f"{proj}/alpha", f"{proj}/beta"
    api(server, "POST", f"/projects/{proj}/keys", json={"name": "alpha",
                                                         "algorithm": "ecdsa-p384"})
    api(server, "POST", f"/projects/{proj}/keys", json={"name": "beta", "algorithm": "ed25519",
                                                         "max_signatures": 10,
                                                         "rotate_every_days": 30})

    listed = server.cli("key", "list", proj).stdout.splitlines()
    assert listed[0].split() == ["KEY", "ALGORITHM", "STATE", "VERSION", "STORE"]
    assert [line.split() for line in listed[1:]] == [
        [a, "ecdsa-p384", "active", "1", "soft"], [b, "ed25519", "active", "1", "soft"]]
    as_json = server.cli("key", "list", proj, "--json").json()
    assert [(k["ref"], k["algorithm"], k["state"], k["current_version"]) for k in as_json] == [
        (a, "ecdsa-p384", "active", 1), (b, "ed25519", "active", 1)]
    everything = [k["ref"] for k in server.cli("key", "list", "--json").json()]
    assert a in everything
    assert b in everything
    assert server.cli("key", "list").stdout.count(proj + "/") == 2

    shown = server.cli("key", "show", b).stdout.splitlines()
    assert shown[0].split() == ["key", b]
    assert shown[1].split() == ["algorithm", "ed25519"]
    assert shown[2].split() == ["state", "active"]
    assert shown[3].split() == ["version", "1"]
    assert "rotate     every 30 days" in shown
    assert "limit      10 signatures per version" in shown
    assert shown[-2].split() == ["VERSION", "CURRENT", "STORE", "SIGNATURES", "CREATED", "AT",
                                 "RETIRED", "AT"]
    assert shown[-1].split()[:4] == ["1", "yes", "soft", "0"]
    detail = server.cli("key", "show", b, "--json").json()
    assert detail["ref"] == b
    assert detail["project"] == proj
    assert detail["name"] == "beta"
    assert detail["max_signatures"] == 10
    assert detail["rotate_every_days"] == 30
    assert detail["compromised_at"] is None
    assert [(v["version"], v["current"], v["signatures"], v["retired_at"], v["store"],
             v["attributes"]) for v in detail["versions"]] == [(1, True, 0, None, "soft", None)]

    pem = server.cli("key", "public", a).stdout
    assert pem.startswith("-----BEGIN PUBLIC KEY-----\n")
    assert pem.endswith("-----END PUBLIC KEY-----\n")
    assert "PRIVATE" not in pem
    pub = tmp_path / "a.pem"
    pub.write_text(pem)
    text = run(openssl(), "pkey", "-pubin", "-in", str(pub), "-noout", "-text_pub")
    assert "secp384r1" in text.stdout, text
    assert server.cli("key", "public", a, "--version", "1").stdout == pem
    pj = server.cli("key", "public", a, "--version", "1", "--json").json()
    created = pj.pop("created_at")
    assert created == server.cli("key", "show", a, "--json").json()["versions"][0]["created_at"]
    assert pj == {"key": a, "version": 1, "algorithm": "ecdsa-p384", "rsa_padding": None,
                  "public_key_pem": pem, "current": True}
    assert server.cli("key", "public", b).stdout != pem

    missing_version = server.cli("key", "public", a, "--version", "2", check=False)
    assert missing_version.returncode == 5
    assert missing_version.stderr == f"signgate: key {a} has no version 2\n"


def test_key_errors(server: Server, project: str, ci: tuple[str, str], tmp_path: Path) -> None:
    ref = f"{project}/{unique('dup')}"
    api(server, "POST", f"/projects/{project}/keys", json={"name": ref.split("/")[1]})
    dup = server.cli("key", "create", ref, "--algorithm", "ed25519", check=False)
    assert dup.returncode == 6
    assert dup.stderr == f"signgate: key {ref} already exists\n"
    assert server.cli("key", "show", ref, "--json").json()["algorithm"] == "ecdsa-p256"

    nope = f"{project}/nope"
    for args in (("key", "show", nope), ("key", "public", nope), ("key", "rotate", nope),
                 ("key", "disable", nope)):
        r = server.cli(*args, check=False)
        assert r.returncode == 5, (args, r)
        assert r.stderr == f"signgate: no key {nope}\n", args
    artifact = tmp_path / "x"
    artifact.write_bytes(b"x")
    # Without a grant covering it, a missing key is refused like an existing one: the
    # answer does not tell whether it exists.
    r = server.cli("sign", str(artifact), "--key", nope, token=ci[1], check=False)
    assert r.returncode == 4
    assert r.stderr == f"signgate: identity {ci[0]} may not sign with {nope}: no signer grant\n"
    assert not (tmp_path / "x.sig").exists()

    r = server.cli("key", "create", "no-such-project/k", check=False)
    assert r.returncode == 5
    assert r.stderr == "signgate: no project named 'no-such-project'\n"
    r = server.cli("key", "list", "no-such-project", check=False)
    assert r.returncode == 5

    bad = server.cli("key", "create", f"{project}/{unique('dsa')}", "--algorithm", "dsa",
                     check=False)
    assert bad.returncode == 2
    assert "Invalid value for '--algorithm': 'dsa' is not one of" in bad.stderr
    bad = server.cli("key", "create", f"{project}/{unique('rsa')}", "--algorithm", "rsa-3072",
                     "--rsa-padding", "oaep", check=False)
    assert bad.returncode == 2
    assert "Invalid value for '--rsa-padding'" in bad.stderr


# -- rotation --------------------------------------------------------------------------


def test_rotation(server: Server, project: str, ci: tuple[str, str], tmp_path: Path) -> None:
    ci_name, token = ci
    ref = f"{project}/{unique('rotating')}"
    make_key(server, ref, ci_name)
    one = tmp_path / "one.txt"
    one.write_bytes(b"signed by version one")
    assert sign(server, token, one, ref)["key_version"] == 1
    pub1 = write_public(server, ref, tmp_path / "v1.pem")

    out = server.cli("key", "rotate", ref)
    assert out.stdout.strip() == f"rotated {ref}: version 2 is now current"
    shown = server.cli("key", "show", ref, "--json").json()
    assert shown["current_version"] == 2
    v1, v2 = shown["versions"]
    assert (v1["version"], v1["current"], v1["signatures"]) == (1, False, 1)
    assert v1["retired_at"] is not None
    assert (v2["version"], v2["current"], v2["signatures"], v2["retired_at"]) == (
        2, True, 0, None)

    two = tmp_path / "two.txt"
    two.write_bytes(b"signed by version two")
    assert sign(server, token, two, ref)["key_version"] == 2
    pub2 = write_public(server, ref, tmp_path / "v2.pem")
    assert pub2.read_text() != pub1.read_text()
    assert server.cli("key", "public", ref, "--version", "1").stdout == pub1.read_text()
    assert server.cli("key", "public", ref, "--version", "2").stdout == pub2.read_text()
    assert server.cli("key", "public", ref, "--version", "1", "--json").json()["current"] is False

    sig1, sig2 = Path(str(one) + ".sig"), Path(str(two) + ".sig")
    assert_openssl_ok(openssl_verify("ecdsa-p256", None, "sha256", pub1, sig1, one, tmp_path),
                      "ecdsa-p256")
    assert_openssl_ok(openssl_verify("ecdsa-p256", None, "sha256", pub2, sig2, two, tmp_path),
                      "ecdsa-p256")
    assert_openssl_fails(openssl_verify("ecdsa-p256", None, "sha256", pub2, sig1, one,
                                        tmp_path))
    assert_openssl_fails(openssl_verify("ecdsa-p256", None, "sha256", pub1, sig2, two,
                                        tmp_path))

    old = server.cli("verify", str(one), "--signature", str(sig1), "--key", ref, token=token)
    assert old.stdout.strip() == f"{one.name}: valid: signed by {ref} version 1"
    assert server.cli("verify", str(one), "--signature", str(sig1), "--key", ref,
                      "--json").json()["key_version"] == 1
    new = server.cli("verify", str(two), "--signature", str(sig2), "--key", ref, token=token)
    assert new.stdout.strip() == f"{two.name}: valid: signed by {ref} version 2"

    rotations = server.cli("audit", "log", "--key", ref, "--action", "key.rotate",
                           "--json").json()
    assert len(rotations) == 1
    assert rotations[0]["details"]["reason"] == "requested"
    assert (rotations[0]["details"]["from_version"], rotations[0]["details"]["to_version"]) == (
        1, 2)


def test_max_signatures_rotates(server: Server, project: str, ci: tuple[str, str],
                                tmp_path: Path) -> None:
    ci_name, token = ci
    ref = f"{project}/{unique('limited')}"
    make_key(server, ref, ci_name, "--max-signatures", "2")
    versions = []
    for i in range(5):
        artifact = tmp_path / f"build-{i}.bin"
        artifact.write_bytes(f"build {i}".encode())
        receipt = sign(server, token, artifact, ref)
        versions.append(receipt["key_version"])
        pub = tmp_path / f"pub-{i}.pem"
        pub.write_text(api(server, "GET", key_path(ref) + "/public",
                           params={"version": receipt["key_version"]})["public_key_pem"])
        assert_openssl_ok(openssl_verify("ecdsa-p256", None, "sha256", pub,
                                         Path(receipt["signature_file"]), artifact, tmp_path),
                          "ecdsa-p256")
        shown = api(server, "GET", key_path(ref))
        assert all(v["signatures"] <= 2 for v in shown["versions"]), shown["versions"]
    assert versions == [1, 1, 2, 2, 3]
    shown = server.cli("key", "show", ref, "--json").json()
    assert shown["current_version"] == 3
    assert [(v["version"], v["signatures"], v["current"]) for v in shown["versions"]] == [
        (1, 2, False), (2, 2, False), (3, 1, True)]

    rotations = server.cli("audit", "log", "--key", ref, "--action", "key.rotate",
                           "--json").json()
    assert [(e["details"]["from_version"], e["details"]["to_version"]) for e in rotations] == [
        (1, 2), (2, 3)]
    assert rotations[0]["details"]["reason"] == (
        "version 1 reached its limit of 2 signatures")
    assert rotations[0]["actor"] == ci_name
    assert rotations[0]["outcome"] == "allowed"
    text = server.cli("audit", "log", "--key", ref, "--action", "key.rotate").stdout
    rows = text.splitlines()[1:]
    assert [r.split()[0] for r in rows] == [str(e["seq"]) for e in rotations]
    assert all(r.split()[2:5] == [ci_name, "key.rotate", "allowed"] for r in rows), rows


# -- disable / enable ------------------------------------------------------------------


def test_disable_enable(server: Server, project: str, ci: tuple[str, str],
                        tmp_path: Path) -> None:
    ci_name, token = ci
    ref = f"{project}/{unique('switch')}"
    make_key(server, ref, ci_name)
    artifact = tmp_path / "a.bin"
    artifact.write_bytes(b"a")

    assert server.cli("key", "disable", ref).stdout.strip() == f"{ref} is now disabled"
    assert server.cli("key", "show", ref, "--json").json()["state"] == "disabled"
    refused = server.cli("sign", str(artifact), "--key", ref, token=token, check=False)
    assert refused.returncode == 4, refused
    assert refused.stdout == ""
    assert refused.stderr == f"signgate: key {ref} is disabled\n"
    assert not artifact.with_name("a.bin.sig").exists()
    again = server.cli("key", "disable", ref, check=False)
    assert again.returncode == 6
    assert again.stderr == f"signgate: key {ref} is disabled; cannot disable it\n"

    assert server.cli("key", "enable", ref).stdout.strip() == f"{ref} is now active"
    receipt = sign(server, token, artifact, ref)
    assert receipt["key_version"] == 1
    pub = write_public(server, ref, tmp_path / "pub.pem")
    assert_openssl_ok(openssl_verify("ecdsa-p256", None, "sha256", pub,
                                     Path(receipt["signature_file"]), artifact, tmp_path),
                      "ecdsa-p256")
    log = server.cli("audit", "log", "--key", ref, "--json").json()
    assert [(e["action"], e["outcome"]) for e in log] == [
        ("key.create", "allowed"), ("grant.add", "allowed"), ("key.disable", "allowed"),
        ("signature.create", "refused"), ("key.disable", "refused"),
        ("key.enable", "allowed"), ("signature.create", "allowed")]
    assert log[3]["details"]["reason"] == f"key {ref} is disabled"


# -- revocation ------------------------------------------------------------------------


def test_revocation(server: Server, project: str, ci: tuple[str, str], tmp_path: Path) -> None:
    ci_name, token = ci
    ref = f"{project}/{unique('leaky')}"
    make_key(server, ref, ci_name)
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"signed before the leak")
    b.write_bytes(b"signed after the leak")
    # Untimestamped: judged by signgate's own record of the signing time (the timestamped
    # case is in test_timestamped_signing.py).
    ra = sign(server, token, a, ref, "--no-timestamp")
    time.sleep(0.05)
    compromised = datetime.now(UTC)
    time.sleep(0.05)
    rb = sign(server, token, b, ref, "--no-timestamp")
    t_a, t_b = parse_time(ra["signed_at"]), parse_time(rb["signed_at"])
    assert t_a < compromised < t_b

    when = compromised.isoformat().replace("+00:00", "Z")
    out = server.cli("key", "revoke", ref, "--compromised-at", when, "--reason", "leaked")
    assert out.stdout.startswith(f"revoked {ref}; signatures made since ")
    shown = server.cli("key", "show", ref, "--json").json()
    assert shown["state"] == "revoked"
    assert shown["revoke_reason"] == "leaked"
    assert parse_time(shown["compromised_at"]) == compromised
    text = server.cli("key", "show", ref).stdout
    assert "(leaked)" in text

    sig_a, sig_b = Path(str(a) + ".sig"), Path(str(b) + ".sig")
    good = server.cli("verify", str(a), "--signature", str(sig_a), "--key", ref, token=token)
    assert good.stdout.startswith(f"{a.name}: valid: signed by version 1 before {ref} was "
                                  "compromised at ")
    good_json = server.cli("verify", str(a), "--signature", str(sig_a), "--key", ref,
                           "--json").json()
    assert good_json["valid"] is True
    assert good_json["key_state"] == "revoked"
    assert good_json["signature_id"] == ra["signature_id"]

    bad = server.cli("verify", str(b), "--signature", str(sig_b), "--key", ref, token=token,
                     check=False)
    assert bad.returncode == 8, bad
    assert bad.stdout == ""
    assert bad.stderr.startswith(f"signgate: INVALID {b.name}: signed at ")
    assert f"after {ref} was compromised at " in bad.stderr
    bad_json = server.cli("verify", str(b), "--signature", str(sig_b), "--key", ref,
                          "--json", check=False)
    assert bad_json.returncode == 8
    assert bad_json.json()["valid"] is False
    assert bad_json.json()["signature_id"] == rb["signature_id"]

    # The signature itself is still mathematically fine: only signgate knows it is too late.
    pub = write_public(server, ref, tmp_path / "pub.pem")
    assert_openssl_ok(openssl_verify("ecdsa-p256", None, "sha256", pub, sig_b, b, tmp_path),
                      "ecdsa-p256")

    c = tmp_path / "c.bin"
    c.write_bytes(b"after the revocation")
    refused = server.cli("sign", str(c), "--key", ref, token=token, check=False)
    assert refused.returncode == 4
    assert refused.stderr == f"signgate: key {ref} is revoked\n"
    assert not Path(str(c) + ".sig").exists()
    rotate = server.cli("key", "rotate", ref, check=False)
    assert rotate.returncode == 6
    assert rotate.stderr == f"signgate: key {ref} is revoked and cannot be rotated\n"
    again = server.cli("key", "revoke", ref, "--compromised-at", when, check=False)
    assert again.returncode == 6
    enable = server.cli("key", "enable", ref, check=False)
    assert enable.returncode == 6

    revokes = server.cli("audit", "log", "--key", ref, "--action", "key.revoke",
                         "--json").json()
    assert [e["outcome"] for e in revokes] == ["allowed", "refused"]
    assert revokes[0]["details"]["reason"] == "leaked"
    assert parse_time(revokes[0]["details"]["compromised_at"]) == compromised


def test_revoke_in_the_future_is_refused(server: Server, project: str, ci: tuple[str, str],
                                         tmp_path: Path) -> None:
    ref = f"{project}/{unique('future')}"
    make_key(server, ref, ci[0])
    r = server.cli("key", "revoke", ref, "--compromised-at", "2999-01-01T00:00:00Z",
                   check=False)
    assert r.returncode == 7, r
    assert r.stderr == "signgate: --compromised-at lies in the future\n"
    r = server.cli("key", "revoke", ref, "--compromised-at", "yesterday", check=False)
    assert r.returncode == 7
    assert r.stderr.startswith("signgate: invalid time 'yesterday'")
    assert server.cli("key", "show", ref, "--json").json()["state"] == "active"
    artifact = tmp_path / "still.bin"
    artifact.write_bytes(b"still signs")
    assert sign(server, ci[1], artifact, ref)["key_version"] == 1
