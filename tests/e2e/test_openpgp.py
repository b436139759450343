"""OpenPGP: `key public --openpgp` exports a key that `gpg --import` takes, and
`sign --format openpgp` writes FILE.asc that `gpg --verify` and `sqop verify` accept with
it (VALIDSIG is the proof: gpg also warns that the key is not certified by a trusted
key, and exits 0 either way only when the signature is good)."""

from __future__ import annotations

import base64
import hashlib
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from asn1crypto import pem, tsp

from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm, RsaPadding
from signgate.errors import VerificationFailed
from signgate.formats import openpgp
from signgate.formats.base import PublicKeyInfo
from tests.conftest import unique
from tests.support.server import Server

KEYS = [("ecdsa-p256", "pss", "sha256"), ("ecdsa-p384", "pss", "sha384"),
        ("ed25519", "pss", "sha256"), ("rsa-3072", "pkcs1v15", "sha512")]


def gpg(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["gpg", "--homedir", str(home), "--batch", "--no-tty", *args],
                          capture_output=True, text=True, timeout=60)


def gpg_verify(home: Path, asc: Path, data: Path) -> str:
    return gpg(home, "--status-fd", "1", "--verify", str(asc), str(data)).stdout


def sqop_verify(asc: Path, cert: Path, data: Path) -> subprocess.CompletedProcess[bytes]:
    with data.open("rb") as f:
        return subprocess.run(["sqop", "verify", str(asc), str(cert)], stdin=f,
                              capture_output=True, timeout=60)


def leaf_der(server: Server, ref: str) -> bytes:
    chain = server.cli("key", "cert", ref).stdout.encode()
    _, _, der = pem.unarmor(chain, multiple=True).__next__()
    return bytes(der)


@pytest.fixture(scope="module")
def server(sqlite_server: Server) -> Server:
    return sqlite_server


def test_openpgp_signatures_verify_with_gpg_and_sqop(server: Server, tmp_path: Path,
                                                     new_gpg_home: Callable[[], Path]) -> None:
    project = unique("pgp")
    server.cli("project", "create", project)
    server.cli("grant", "add", "admin", "signer", project)
    artifact = tmp_path / "release.tar.gz"
    artifact.write_bytes(b"release" * 50000)
    tampered = tmp_path / "tampered.tar.gz"
    tampered.write_bytes(artifact.read_bytes() + b"!")
    exported: list[tuple[Path, Path, Path]] = []  # (gpg home, key.asc, signature)
    for i, (alg, padding, digest) in enumerate(KEYS):
        ref = f"{project}/k{i}"
        server.cli("key", "create", ref, "--algorithm", alg, "--rsa-padding", padding)
        view = server.cli("key", "public", ref, "--openpgp", "--user-id",
                          f"Release {i} <release{i}@example.org>", "--json").json()
        fingerprint = view["fingerprint"]
        assert view["armored"].startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
        # Deterministic: the same key, fingerprint and certified user ID every time.
        again = server.cli("key", "public", ref, "--openpgp", "--user-id",
                           f"Release {i} <release{i}@example.org>", "--json").json()
        assert again["fingerprint"] == fingerprint
        if alg in ("ed25519", "rsa-3072"):  # no random nonce in the self-signature
            assert again["armored"] == view["armored"]
        key_asc = tmp_path / f"k{i}.asc"
        key_asc.write_text(view["armored"])
        home = new_gpg_home()
        imported = gpg(home, "--status-fd", "1", "--import", str(key_asc))
        assert f"IMPORT_OK 1 {fingerprint}" in imported.stdout, (alg, imported)
        listed = gpg(home, "--with-colons", "--fingerprint", fingerprint).stdout
        assert f"Release {i} <release{i}@example.org>" in listed

        receipt = server.cli("sign", str(artifact), "--key", ref, "--format", "openpgp",
                             "--digest", digest, "--json").json()
        asc = Path(receipt["signature_file"])
        assert asc.name == "release.tar.gz.asc"
        assert asc.read_text().startswith("-----BEGIN PGP SIGNATURE-----")
        status = gpg_verify(home, asc, artifact)
        assert f"[GNUPG:] VALIDSIG {fingerprint} " in status, (alg, status)
        assert f"[GNUPG:] GOODSIG {fingerprint[-16:]} " in status
        ok = sqop_verify(asc, key_asc, artifact)
        assert ok.returncode == 0, (alg, ok)
        assert fingerprint.encode() in ok.stdout, (alg, ok)

        bad = gpg_verify(home, asc, tampered)
        assert "[GNUPG:] BADSIG" in bad, (alg, bad)
        assert "VALIDSIG" not in bad, (alg, bad)
        assert sqop_verify(asc, key_asc, tampered).returncode != 0

        # signgate's own verifier, with the version's certificate; its signature value is
        # what the sidecar RFC 3161 token (FILE.asc.tsr) covers.
        der = leaf_der(server, ref)
        evidence = openpgp.VERIFIER.verify(artifact, asc, (der,))
        assert evidence.signer == der
        assert evidence.details["fingerprint"] == fingerprint
        assert evidence.details["fingerprint_matches_certificate"] == "yes"
        tsr = tsp.TimeStampResp.load(Path(receipt["timestamp_file"]).read_bytes())
        imprint = tsr["time_stamp_token"]["content"]["encap_content_info"]["content"].parsed[
            "message_imprint"]["hashed_message"].native
        assert imprint == hashlib.sha256(evidence.signature_value).digest()
        with pytest.raises(VerificationFailed):
            openpgp.VERIFIER.verify(tampered, asc, (der,))
        exported.append((home, key_asc, asc))

    # A signature checked against another key: gpg has no key for it, sqop refuses it,
    # signgate's verifier finds no signer among the other certificates.
    (home0, key0, _), (_, _, asc3) = exported[0], exported[3]
    wrong = gpg_verify(home0, asc3, artifact)
    assert "VALIDSIG" not in wrong
    assert "GOODSIG" not in wrong
    assert "NO_PUBKEY" in wrong
    assert sqop_verify(asc3, key0, artifact).returncode != 0
    with pytest.raises(VerificationFailed):
        openpgp.VERIFIER.verify(artifact, asc3, (leaf_der(server, f"{project}/k0"),))


def test_what_openpgp_cannot_express_is_refused(server: Server, tmp_path: Path) -> None:
    project = unique("pgpno")
    server.cli("project", "create", project)
    server.cli("grant", "add", "admin", "signer", project)
    artifact = tmp_path / "a.bin"
    artifact.write_bytes(b"artifact")

    server.cli("key", "create", f"{project}/pss", "--algorithm", "rsa-3072")
    refused = server.cli("sign", str(artifact), "--key", f"{project}/pss", "--format",
                         "openpgp", check=False)
    assert refused.returncode == 7, refused
    assert "PKCS#1 v1.5" in refused.stderr
    export = server.cli("key", "public", f"{project}/pss", "--openpgp", check=False)
    assert export.returncode == 7
    assert "PKCS#1 v1.5" in export.stderr

    server.cli("key", "create", f"{project}/p384", "--algorithm", "ecdsa-p384")
    short = server.cli("sign", str(artifact), "--key", f"{project}/p384", "--format",
                       "openpgp", "--digest", "sha256", check=False)
    assert short.returncode == 7
    assert "sha384" in short.stderr

    server.cli("key", "create", f"{project}/once", "--one-time")
    with server.http() as c:  # the server refuses before any one-time key pair is made
        r = c.post(f"/api/v1/projects/{project}/keys/once/sign",
                   json={"digest": hashlib.sha256(b"x").hexdigest(), "artifact_name": "x",
                         "format": "openpgp", "params": {"hashed": "BAATCAAA"}})
    assert r.status_code == 400, r.text
    assert "one-time" in r.json()["detail"], r.text
    for _ in range(2):  # before its first signing, and after (when it has a version)
        once = server.cli("sign", str(artifact), "--key", f"{project}/once", "--format",
                          "openpgp", check=False)
        assert once.returncode == 7, once
        assert "is a one-time key" in once.stderr, once
        server.cli("sign", str(artifact), "--key", f"{project}/once")
    assert not artifact.with_name("a.bin.asc").exists()
    assert artifact.read_bytes() == b"artifact"

    bad_uid = server.cli("key", "public", f"{project}/p384", "--openpgp", "--user-id",
                         "two\nlines", check=False)
    assert bad_uid.returncode == 7
    assert "control characters" in bad_uid.stderr


def _stale_params(server: Server, ref: str, artifact: Path) -> dict[str, object]:
    """What a client prepared for the key's current version, as the CLI would send it."""
    with server.http() as c:
        view = c.get(f"/api/v1/projects/{ref.replace('/', '/keys/')}/public").json()
    info = PublicKeyInfo(ref, view["version"], KeyAlgorithm(view["algorithm"]),
                         RsaPadding.PSS, view["public_key_pem"],
                         datetime.fromisoformat(view["created_at"]))
    prepared = openpgp.CLIENT.prepare(artifact, DigestAlgorithm.SHA256, None, lambda: info)
    return {"digest": prepared.digest.hex(), "artifact_name": artifact.name,
            "format": "openpgp", "params": prepared.params}


def test_a_rotation_between_prepare_and_sign_is_refused(server: Server,
                                                        tmp_path: Path) -> None:
    project = unique("pgprot")
    ref = f"{project}/k"
    server.cli("project", "create", project)
    server.cli("grant", "add", "admin", "signer", project)
    server.cli("key", "create", ref)
    artifact = tmp_path / "a.bin"
    artifact.write_bytes(b"artifact")
    body = _stale_params(server, ref, artifact)
    server.cli("key", "rotate", ref)
    with server.http() as c:
        r = c.post(f"/api/v1/projects/{project}/keys/k/sign", json=body)
        assert r.status_code == 409, r.text
        assert "the key was rotated while signing; sign again" in r.json()["detail"]
        # The same request prepared for the new version is signed.
        fresh = _stale_params(server, ref, artifact)
        ok = c.post(f"/api/v1/projects/{project}/keys/k/sign", json=fresh)
        assert ok.status_code == 200, ok.text
        signature = base64.b64decode(ok.json()["signature"]).decode()
        assert signature.startswith("-----BEGIN PGP SIGNATURE-----")
        # A hashed part from another time is refused, not signed.
        params = dict(fresh["params"])  # type: ignore[call-overload]
        hashed = bytearray(base64.b64decode(params["hashed"]))
        hashed[8:12] = (int(datetime.now(UTC).timestamp()) - 3600).to_bytes(4, "big")
        params["hashed"] = base64.b64encode(bytes(hashed)).decode()
        old = c.post(f"/api/v1/projects/{project}/keys/k/sign", json={**fresh, "params": params})
        assert old.status_code == 400, old.text
        assert "minutes" in old.json()["detail"], old.text


def test_export_needs_signing_permission_and_is_audited(server: Server) -> None:
    project = unique("pgpperm")
    ref = f"{project}/k"
    server.cli("project", "create", project)
    server.cli("key", "create", ref, "--algorithm", "ed25519")
    auditor = unique("auditor")
    token = server.new_identity(auditor)
    server.cli("grant", "add", auditor, "auditor", project)
    # Neither the auditor nor the admin without a signer grant may have the key sign.
    for who in (token, None):
        denied = server.cli("key", "public", ref, "--openpgp", token=who, check=False)
        assert denied.returncode == 4, denied
        assert "no signer grant" in denied.stderr
    with server.http(token=token) as c:
        r = c.post(f"/api/v1/projects/{project}/keys/k/openpgp")
        assert r.status_code == 403, r.text
    assert server.cli("key", "public", ref, token=token).stdout.startswith(
        "-----BEGIN PUBLIC KEY-----")  # the PEM stays readable to anyone who sees the key

    server.cli("grant", "add", "admin", "signer", ref)
    view = server.cli("key", "public", ref, "--openpgp", "--json").json()
    assert view["user_id"] == f"{ref} (signgate)"
    entries = server.cli("audit", "log", "--key", ref, "--action", "signature.create",
                         "--json").json()
    allowed = [e for e in entries if e["outcome"] == "allowed"]
    assert len(allowed) == 1
    details = allowed[0]["details"]
    assert details == {"format": "openpgp-key", "key_version": 1,
                       "user_id": f"{ref} (signgate)", "fingerprint": view["fingerprint"]}
    refused = [e for e in entries if e["outcome"] == "refused"]
    assert {e["actor"] for e in refused} == {auditor, "admin"}


def test_a_due_policy_rotation_costs_one_retry(server: Server, tmp_path: Path) -> None:
    project = unique("pgpdue")
    ref = f"{project}/k"
    server.cli("project", "create", project)
    server.cli("grant", "add", "admin", "signer", project)
    server.cli("key", "create", ref, "--max-signatures", "1")
    artifact = tmp_path / "a.bin"
    artifact.write_bytes(b"artifact")
    server.cli("sign", str(artifact), "--key", ref, "--format", "openpgp")
    # Version 1 reached its limit: this signing rotates to version 2 first, after the
    # client named version 1 in its hashed part.
    stale = server.cli("sign", str(artifact), "--key", ref, "--format", "openpgp",
                       check=False)
    assert stale.returncode == 6, stale
    assert "sign again" in stale.stderr
    server.cli("sign", str(artifact), "--key", ref, "--format", "openpgp")
