"""Signing receipts end to end: 'signgate sign' writes the log's inclusion proof beside the
signature, 'signgate log verify-receipt' checks it offline (and fails, exit 8, for a
tampered proof, another artifact, another signature or another log key), and the witness
policy of signing with two real witness processes: 'refuse' withholds the signature when
the quorum is not reached, 'catch-up' delivers it and gets the checkpoint cosigned once the
witness is back."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client.parser import text_string_to_metric_families

from signgate.client.receipt_check import check_receipt
from signgate.transparency.note import format_verifier_key, split_note
from tests.conftest import unique
from tests.e2e.test_audit import api, audit_json

# SQLite alone: receipts are checked offline; the log's proofs run on both backends in
# tests/integration/test_log_tree.py
from tests.support.backends import sqlite_only as sqlite_only
from tests.support.server import Server, start_server
from tests.support.witness import Witness, two_witnesses, witnessed_server


def signer(server: Server) -> tuple[str, str]:
    """A key and a signer's token for it."""
    project, ci = unique("rcpt"), unique("ci")
    api(server, "POST", "/projects", json={"name": project})
    api(server, "POST", f"/projects/{project}/keys", json={"name": "k"})
    token: str = api(server, "POST", "/identities", json={"name": ci})["token"]
    api(server, "POST", "/grants", json={"identity": ci, "role": "signer",
                                         "scope": f"{project}/k"})
    return f"{project}/k", token


def log_key(server: Server) -> str:
    key: str = server.cli("log", "public-key", "--json", token="").json()["verifier_key"]
    return key


def sign(server: Server, path: Path, ref: str, token: str, *args: str) -> Any:
    return server.cli("sign", str(path), "--key", ref, "--no-timestamp", "--json", *args,
                      token=token).json()


def verify_receipt(server: Server, proof: Path, artifact: Path, vkey: str,
                   *args: str) -> Any:
    return server.cli("log", "verify-receipt", str(proof), "--artifact", str(artifact),
                      "--log-key", vkey, *args, token="", check=False)


def test_a_raw_receipt_verifies_offline_and_nothing_else_does(server: Server,
                                                             tmp_path: Path) -> None:
    ref, token = signer(server)
    artifact = tmp_path / "app.bin"
    artifact.write_bytes(b"release 2.0")
    receipt = sign(server, artifact, ref, token)
    proof = Path(receipt["proof_file"])
    assert proof == tmp_path / "app.bin.sig.proof"
    assert receipt["log_index"] == receipt["audit_seq"] - 1
    assert receipt["log_size"] > receipt["log_index"]
    assert receipt["log_cosignatures"] == 0
    vkey = log_key(server)

    ok = verify_receipt(server, proof, artifact, vkey)
    assert ok.returncode == 0, ok.stderr
    assert f"in the log at index {receipt['log_index']}" in ok.stdout
    assert f"signed by {ref} version 1" in ok.stdout
    checked = verify_receipt(server, proof, artifact, vkey, "--json").json()
    assert checked["bound_by"] == "signature and digest"
    assert checked["signature_id"] == receipt["signature_id"]
    expected = verify_receipt(server, proof, artifact, vkey, "--key", ref, "--identity",
                              checked["identity"])
    assert expected.returncode == 0, expected.stderr

    def fails(result: Any, words: str) -> None:
        assert result.returncode == 8, (result.stdout, result.stderr)
        assert words in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1

    # Expected another key, or another identity.
    fails(verify_receipt(server, proof, artifact, vkey, "--key", ref + "x"),
          f"made with key {ref}, not {ref}x")
    fails(verify_receipt(server, proof, artifact, vkey, "--identity", "someone-else"),
          f"asked for by {checked['identity']}, not someone-else")
    # A proof hash changed: the entry is not in the signed tree.
    lines = proof.read_text().split("\n")
    at = next(i for i, line in enumerate(lines) if line.startswith("index ")) + 1
    assert lines[at], "a proof of a tree of more than one entry has hashes"
    raw = bytearray(base64.b64decode(lines[at]))
    raw[0] ^= 1
    lines[at] = base64.b64encode(bytes(raw)).decode()
    tampered = tmp_path / "tampered.proof"
    tampered.write_text("\n".join(lines))
    fails(verify_receipt(server, tampered, artifact, vkey, "--signature",
                         str(tmp_path / "app.bin.sig")), "")
    # The entry carried in the proof edited (another digest): not in the tree either.
    text = proof.read_text()
    extra = next(line for line in text.split("\n") if line.startswith("extra "))
    entry = base64.b64decode(extra[6:]).replace(b'"signature.create"', b'"signature.cancel"')
    edited = tmp_path / "edited.proof"
    edited.write_text(text.replace(extra, "extra " + base64.b64encode(entry).decode()))
    fails(verify_receipt(server, edited, artifact, vkey, "--signature",
                         str(tmp_path / "app.bin.sig")), "")
    # Another artifact, the same signature file.
    other = tmp_path / "other.bin"
    other.write_bytes(b"release 2.1")
    fails(verify_receipt(server, proof, other, vkey, "--signature",
                         str(tmp_path / "app.bin.sig")), "another artifact")
    # Another signature of the same artifact (a second signing's), with the first receipt.
    second = tmp_path / "second.sig"
    sign(server, artifact, ref, token, "-o", str(second))
    fails(verify_receipt(server, proof, artifact, vkey, "--signature", str(second)),
          "another signature")
    # Another log's key (same origin name, another key pair).
    origin = vkey.split("+")[0]
    stranger = format_verifier_key(origin, 1, Ed25519PrivateKey.generate().public_key()
                                   .public_bytes_raw())
    fails(verify_receipt(server, proof, artifact, stranger), "")

    # 'signgate verify --proof': the signature, then the receipt.
    pem = tmp_path / "key.pem"
    pem.write_text(server.cli("key", "public", ref).stdout)
    sig = str(tmp_path / "app.bin.sig")
    both = server.cli("verify", str(artifact), "--signature", sig, "--public-key", str(pem),
                      "--proof", str(proof), "--log-key", vkey, check=False)
    assert both.returncode == 0, both.stderr
    assert f"log: index {receipt['log_index']} of " in both.stdout
    fails(server.cli("verify", str(artifact), "--signature", sig, "--public-key", str(pem),
                     "--proof", str(proof), "--log-key", stranger, check=False), "")
    fails(server.cli("verify", str(artifact), "--signature", sig, "--public-key", str(pem),
                     "--proof", str(proof), "--log-key", vkey, "--identity", "someone-else",
                     check=False), "not someone-else")


def test_a_cms_receipt_is_bound_by_the_digest(server: Server, tmp_path: Path) -> None:
    ref, token = signer(server)
    artifact = tmp_path / "lib.so"
    artifact.write_bytes(b"\x7fELF pretend")
    receipt = sign(server, artifact, ref, token, "--format", "cms")
    proof = Path(receipt["proof_file"])
    assert proof == tmp_path / "lib.so.p7s.proof"
    vkey = log_key(server)
    ok = verify_receipt(server, proof, artifact, vkey, "--json")
    assert ok.returncode == 0, ok.stderr
    assert ok.json()["bound_by"] == "digest"
    artifact.write_bytes(b"\x7fELF changed")
    assert verify_receipt(server, proof, artifact, vkey).returncode == 8


# --- the witness policy, with two real witness processes ---------------------------------


@pytest.fixture
def witnesses(tmp_path: Path) -> Iterator[list[Witness]]:
    with two_witnesses(tmp_path) as ws:
        yield ws


def test_refuse_withholds_the_signature_when_a_witness_is_down(
        tmp_path: Path, witnesses: list[Witness]) -> None:
    server = witnessed_server(tmp_path / "data", witnesses, "refuse")
    try:
        ref, token = signer(server)
        artifact = tmp_path / "a.bin"
        artifact.write_bytes(b"witnessed")
        ok = sign(server, artifact, ref, token)
        assert ok["log_cosignatures"] == 2
        witnesses[1].stop()
        refused = server.cli("sign", str(artifact), "--key", ref, "--no-timestamp",
                             "-o", str(tmp_path / "b.sig"), token=token, check=False)
        assert refused.returncode == 9, refused.stderr
        assert "could not be witnessed" in refused.stderr
        assert "1 of 2" in refused.stderr
        assert not (tmp_path / "b.sig").exists()
        entries = audit_json(server)
        withheld = [e for e in entries if e["details"].get("code") == "witness_unavailable"]
        assert len(withheld) == 1
        assert withheld[0]["outcome"] == "refused"
        assert withheld[0]["action"] == "signature.create"
        signed = next(e for e in entries if e["seq"] == withheld[0]["details"]["withheld_seq"])
        assert signed["details"]["signature_id"] == withheld[0]["details"]["signature_id"]
        # The witnesses' answers are counted: both cosigned the first, one failed after.
        with server.http() as c:
            families = text_string_to_metric_families(c.get("/metrics").text)
        answers = [(s.labels["outcome"], s.value) for f in families for s in f.samples
                   if s.name == "signgate_witness_cosignatures_total"]
        assert sum(v for o, v in answers if o == "cosigned") >= 2, answers
        assert sum(v for o, v in answers if o != "cosigned") >= 1, answers
    finally:
        server.stop()


def test_refuse_with_two_workers_delivers_every_signature_witnessed(
        tmp_path: Path, witnesses: list[Witness]) -> None:
    """Two server processes commit batches side by side; a witness often cosigns one
    process's later checkpoint before the other's earlier one, which it then cannot cosign.
    No signature is withheld for that: the earlier batch is proven in the later checkpoint,
    which both witnesses cosigned, and its receipts verify offline."""
    server = witnessed_server(tmp_path / "data", witnesses, "refuse", workers=2)
    try:
        ref, token = signer(server)
        project, key = ref.split("/")

        def sign_many(worker: int) -> list[tuple[bytes, dict[str, Any]]]:
            made = []
            with server.http(token=token) as http:
                for n in range(6):
                    content = f"artifact {worker}.{n}".encode()
                    r = http.post(f"/api/v1/projects/{project}/keys/{key}/sign", json={
                        "digest": hashlib.sha256(content).hexdigest(),
                        "artifact_name": f"a{worker}.{n}.bin"})
                    assert r.status_code == 200, r.text
                    made.append((content, r.json()))
            return made

        with ThreadPoolExecutor(8) as pool:
            made = [m for ms in pool.map(sign_many, range(8)) for m in ms]
        assert len(made) == 48
        assert all(signed["receipt"]["log_cosignatures"] == 2 for _, signed in made)
        assert len({made["receipt"]["log_size"] for _, made in made}) > 1
        vkey = log_key(server)
        for n, (content, signed) in enumerate(made):  # every receipt, in this process
            artifact, sig = tmp_path / f"all-{n}.bin", tmp_path / f"all-{n}.sig"
            artifact.write_bytes(content)
            sig.write_bytes(base64.b64decode(signed["signature"]))
            check_receipt(signed["log_proof"].encode(), artifact, vkey, sig,
                          [w.key.verifier_key for w in witnesses], 2)
        for n, (content, signed) in enumerate(made[::16]):  # some with the command line
            artifact, proof = tmp_path / f"{n}.bin", tmp_path / f"{n}.proof"
            artifact.write_bytes(content)
            proof.write_text(signed["log_proof"])
            (tmp_path / f"{n}.sig").write_bytes(base64.b64decode(signed["signature"]))
            ok = verify_receipt(server, proof, artifact, vkey, "--min-witnesses", "2",
                                "--signature", str(tmp_path / f"{n}.sig"),
                                *(f"--witness={w.key.verifier_key}" for w in witnesses))
            assert ok.returncode == 0, ok.stderr
    finally:
        server.stop()


def cosigners(server: Server) -> set[str]:
    note = httpx.get(server.url + "/log/checkpoint", timeout=10).content
    return {s.name for s in split_note(note)[1]}


def test_catch_up_delivers_and_the_checkpoint_gets_cosigned_later(
        tmp_path: Path, witnesses: list[Witness]) -> None:
    server = witnessed_server(tmp_path / "data", witnesses, "catch-up")
    try:
        ref, token = signer(server)
        artifact = tmp_path / "a.bin"
        artifact.write_bytes(b"caught up")
        wkeys = [a for w in witnesses for a in ("--witness", w.key.verifier_key)]
        vkey = log_key(server)
        witnesses[1].stop()
        under = sign(server, artifact, ref, token)
        assert under["log_cosignatures"] == 1
        proof = Path(under["proof_file"])
        one = verify_receipt(server, proof, artifact, vkey, *wkeys, "--min-witnesses", "1")
        assert one.returncode == 0, one.stderr
        assert "cosigned by w1.example" in one.stdout
        two = verify_receipt(server, proof, artifact, vkey, *wkeys, "--min-witnesses", "2")
        assert two.returncode == 8
        assert "1 trusted witness" in two.stderr

        witnesses[1].start()  # back: the catch-up gets the newest checkpoint cosigned
        deadline = time.monotonic() + 60
        while cosigners(server) < {"w1.example", "w2.example"}:
            assert time.monotonic() < deadline, "the checkpoint was never cosigned by both"
            time.sleep(0.5)

        # Catch-up delivers what is cosigned when the batch is done: a batch racing the
        # catch-up thread for the same witness may still go out with one; soon they all
        # carry both.
        for n in range(20):
            full = sign(server, artifact, ref, token, "-o", str(tmp_path / f"full{n}.sig"))
            if full["log_cosignatures"] == 2:
                break
            time.sleep(0.5)
        assert full["log_cosignatures"] == 2
        both = verify_receipt(server, Path(full["proof_file"]), artifact, vkey, *wkeys,
                              "--min-witnesses", "2")
        assert both.returncode == 0, both.stderr
    finally:
        server.stop()


def test_embedded_and_openpgp_receipts_are_bound_to_their_files(server: Server,
                                                               tmp_path: Path) -> None:
    """authenticode and jar: by the signature value inside the signed file; openpgp: by
    the digest of the file and the .asc's hashed part; an upload's receipt like any."""
    import zipfile

    from tests.support.pe import hello_exe

    ref, token = signer(server)
    vkey = log_key(server)

    exe = hello_exe(tmp_path / "hello.exe")
    unsigned_exe = (tmp_path / "unsigned.exe")
    unsigned_exe.write_bytes(exe.read_bytes())
    receipt = sign(server, exe, ref, token, "--format", "authenticode")
    proof = Path(receipt["proof_file"])
    assert proof == tmp_path / "hello.exe.proof"
    ok = verify_receipt(server, proof, exe, vkey, "--json")
    assert ok.returncode == 0, ok.stderr
    assert ok.json()["bound_by"] == "signature"
    assert verify_receipt(server, proof, unsigned_exe, vkey).returncode == 8
    sign(server, unsigned_exe, ref, token, "--format", "authenticode")  # another signing
    resigned = verify_receipt(server, proof, unsigned_exe, vkey)
    assert resigned.returncode == 8
    assert "another signature" in resigned.stderr

    jar = tmp_path / "app.jar"
    with zipfile.ZipFile(jar, "w") as z:
        z.writestr("com/example/App.class", b"\xca\xfe\xba\xbe not really")
    signed_jar = tmp_path / "signed.jar"
    receipt = sign(server, jar, ref, token, "--format", "jar", "-o", str(signed_jar))
    assert Path(receipt["proof_file"]) == tmp_path / "signed.jar.proof"
    ok = verify_receipt(server, Path(receipt["proof_file"]), signed_jar, vkey)
    assert ok.returncode == 0, ok.stderr
    assert verify_receipt(server, Path(receipt["proof_file"]), jar, vkey).returncode == 8

    text = tmp_path / "notes.txt"
    text.write_bytes(b"release notes\n")
    receipt = sign(server, text, ref, token, "--format", "openpgp")
    proof = Path(receipt["proof_file"])
    assert proof == tmp_path / "notes.txt.asc.proof"
    ok = verify_receipt(server, proof, text, vkey, "--json")  # --signature: notes.txt.asc
    assert ok.returncode == 0, ok.stderr
    assert ok.json()["bound_by"] == "digest"
    text.write_bytes(b"release notes, edited\n")
    assert verify_receipt(server, proof, text, vkey).returncode == 8


def test_an_uploaded_and_scanned_signing_has_its_receipt(tmp_path: Path) -> None:
    """The upload path (signgate scans and hashes the file itself) goes through the same
    pipeline: its receipt verifies like any."""
    from tests.e2e.test_scanning import yara_rules

    server = start_server(tmp_path / "data", None,
                          config=f'scan_yara_dir = "{yara_rules(tmp_path / "yara")}"')
    try:
        ref, token = signer(server)
        artifact = tmp_path / "up.bin"
        artifact.write_bytes(b"scanned and signed")
        receipt = sign(server, artifact, ref, token, "--upload")
        assert receipt["scan"]["verdict"] == "clean"
        ok = verify_receipt(server, Path(receipt["proof_file"]), artifact, log_key(server))
        assert ok.returncode == 0, ok.stderr
    finally:
        server.stop()
