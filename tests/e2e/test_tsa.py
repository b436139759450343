"""The RFC 3161 time-stamp authority end to end: queries made by the real 'openssl ts',
posted to a real server without a token, replies read and verified by 'openssl ts'
against signgate's root (fetched with the real CLI), and every answer in the audit log."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from asn1crypto import tsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from signgate.config import DEFAULT_TSA_POLICY_OID
from signgate.pki.tsa import TimeStampResp

# SQLite alone: openssl judges the TSA's answers, which the database does not shape
from tests.support.backends import sqlite_only as sqlite_only
from tests.support.server import Server, openssl

QUERY = "application/timestamp-query"
REPLY = "application/timestamp-reply"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60)


def ok(*args: str) -> str:
    out = run(*args)
    assert out.returncode == 0, out
    return out.stdout


@dataclass
class Pems:
    root: Path
    tsa: Path


@pytest.fixture(scope="module")
def pems(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Pems:
    d = tmp_path_factory.mktemp("tsa-pems")
    root = d / "root.pem"
    root.write_text(server.cli("ca", "cert").stdout)
    tsa = d / "tsa.pem"
    tsa.write_text(server.cli("ca", "tsa-cert").stdout)
    return Pems(root, tsa)


def make_query(tmp: Path, data: bytes, *options: str, name: str = "req") -> Path:
    file = tmp / f"{name}.data"
    file.write_bytes(data)
    tsq = tmp / f"{name}.tsq"
    ok(openssl(), "ts", "-query", "-data", str(file), *options, "-out", str(tsq))
    return tsq


def post(server: Server, body: bytes, content_type: str = QUERY) -> httpx.Response:
    # No Authorization header: time-stamp clients cannot send one.
    return httpx.post(f"{server.url}/tsa", content=body,
                      headers={"content-type": content_type}, timeout=30)


def stamp(server: Server, tsq: Path) -> Path:
    r = post(server, tsq.read_bytes())
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == REPLY
    tsr = tsq.with_suffix(".tsr")
    tsr.write_bytes(r.content)
    return tsr


def reply_text(tsr: Path) -> str:
    return ok(openssl(), "ts", "-reply", "-in", str(tsr), "-text")


def field(text: str, name: str) -> str:
    match = re.search(rf"^{re.escape(name)}: (.*)$", text, re.M)
    assert match, (name, text)
    return match.group(1).strip()


def verify(data: Path, tsr: Path, ca: Path, untrusted: Path) -> subprocess.CompletedProcess[str]:
    return run(openssl(), "ts", "-verify", "-data", str(data), "-in", str(tsr),
               "-CAfile", str(ca), "-untrusted", str(untrusted))


def audit_entries(server: Server) -> list[dict]:  # type: ignore[type-arg]
    return server.cli("audit", "log", "--action", "timestamp.issue", "--json").json()  # type: ignore[no-any-return]


def serial_of(text: str) -> int:
    return int(field(text, "Serial number"), 16)


# -- granted and verified ----------------------------------------------------------------


def test_openssl_query_is_granted_and_verifies(server: Server, pems: Pems,
                                               tmp_path: Path) -> None:
    tsq = make_query(tmp_path, b"release artifact\n", "-sha256", "-cert")
    query_text = ok(openssl(), "ts", "-query", "-in", str(tsq), "-text")
    tsr = stamp(server, tsq)
    text = reply_text(tsr)
    assert field(text, "Status") == "Granted."
    assert field(text, "Policy OID") == DEFAULT_TSA_POLICY_OID
    assert field(text, "Hash Algorithm") == "sha256"
    nonce = field(query_text, "Nonce")
    assert nonce.startswith("0x")
    assert field(text, "Nonce") == nonce
    assert field(text, "Accuracy") == "0x01 seconds, unspecified millis, unspecified micros"
    assert field(text, "Ordering") == "no"
    assert "signgate time-stamp authority" in field(text, "TSA")

    data = tmp_path / "req.data"
    result = verify(data, tsr, pems.root, pems.tsa)
    assert result.returncode == 0, result
    assert "Verification: OK" in result.stdout

    # The token holds the TSA certificate (certReq), so it also verifies without -untrusted.
    alone = run(openssl(), "ts", "-verify", "-data", str(data), "-in", str(tsr),
                "-CAfile", str(pems.root))
    assert "Verification: OK" in alone.stdout, alone

    # Verifying against the query (imprint and nonce) works too.
    by_query = run(openssl(), "ts", "-verify", "-queryfile", str(tsq), "-in", str(tsr),
                   "-CAfile", str(pems.root), "-untrusted", str(pems.tsa))
    assert "Verification: OK" in by_query.stdout, by_query

    # The audit log has exactly this token, with the serial the token states.
    serial = serial_of(text)
    mine = [e for e in audit_entries(server)
            if e["outcome"] == "allowed" and int(e["details"]["serial"], 16) == serial]
    assert len(mine) == 1, mine
    entry = mine[0]
    assert entry["actor"] == "anonymous"
    assert entry["details"]["hash_algorithm"] == "sha256"
    assert entry["details"]["imprint"] == \
        __import__("hashlib").sha256(b"release artifact\n").hexdigest()
    assert int(entry["details"]["nonce"], 16) == int(nonce, 16)
    assert entry["details"]["client"] == "127.0.0.1"


def test_modified_data_fails_verification(server: Server, pems: Pems, tmp_path: Path) -> None:
    tsq = make_query(tmp_path, b"original\n", "-sha256", "-cert")
    tsr = stamp(server, tsq)
    assert verify(tmp_path / "req.data", tsr, pems.root, pems.tsa).returncode == 0
    changed = tmp_path / "changed.data"
    changed.write_bytes(b"original!\n")
    result = verify(changed, tsr, pems.root, pems.tsa)
    assert result.returncode != 0
    assert "Verification: FAILED" in result.stdout
    assert "message imprint mismatch" in result.stderr


def test_another_root_does_not_verify(server: Server, pems: Pems, tmp_path: Path) -> None:
    key = tmp_path / "other.key"
    other = tmp_path / "other-root.pem"
    ok(openssl(), "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384",
       "-nodes", "-keyout", str(key), "-out", str(other), "-days", "30",
       "-subj", "/O=signgate/CN=signgate root CA")
    tsq = make_query(tmp_path, b"data\n", "-sha256", "-cert")
    tsr = stamp(server, tsq)
    result = verify(tmp_path / "req.data", tsr, other, pems.tsa)
    assert result.returncode != 0
    assert "Verification: FAILED" in result.stdout
    assert verify(tmp_path / "req.data", tsr, pems.root, pems.tsa).returncode == 0


@pytest.mark.parametrize("algorithm", ["-sha384", "-sha512"])
def test_longer_digests_are_granted(server: Server, pems: Pems, tmp_path: Path,
                                    algorithm: str) -> None:
    tsq = make_query(tmp_path, b"data\n", algorithm, "-cert")
    tsr = stamp(server, tsq)
    assert field(reply_text(tsr), "Hash Algorithm") == algorithm[1:]
    assert "Verification: OK" in verify(tmp_path / "req.data", tsr, pems.root,
                                        pems.tsa).stdout


def test_no_nonce_and_no_cert(server: Server, pems: Pems, tmp_path: Path) -> None:
    tsq = make_query(tmp_path, b"no nonce\n", "-sha256", "-no_nonce")
    tsr = stamp(server, tsq)
    text = reply_text(tsr)
    assert field(text, "Status") == "Granted."
    assert field(text, "Nonce") == "unspecified"
    token = tsp.TimeStampResp.load(tsr.read_bytes())["time_stamp_token"]["content"]
    assert token["certificates"].native is None  # no -cert, no certificate
    result = verify(tmp_path / "req.data", tsr, pems.root, pems.tsa)
    assert "Verification: OK" in result.stdout, result
    # Without the certificate in the token or on the command line there is nothing to
    # verify the signature with.
    bare = run(openssl(), "ts", "-verify", "-data", str(tmp_path / "req.data"), "-in",
               str(tsr), "-CAfile", str(pems.root))
    assert bare.returncode != 0
    serial = serial_of(text)
    entry = next(e for e in audit_entries(server)
                 if e["outcome"] == "allowed" and int(e["details"]["serial"], 16) == serial)
    assert "nonce" not in entry["details"]


def test_content_type_is_not_required(server: Server, tmp_path: Path) -> None:
    tsq = make_query(tmp_path, b"x", "-sha256")
    r = post(server, tsq.read_bytes(), "application/octet-stream")
    assert r.status_code == 200
    assert tsp.TimeStampResp.load(r.content)["status"]["status"].native == "granted"


# -- refused -----------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["-md5", "-sha1"])
def test_weak_digests_are_rejected(server: Server, tmp_path: Path, algorithm: str) -> None:
    before = len(audit_entries(server))
    tsq = make_query(tmp_path, b"old\n", algorithm)
    r = post(server, tsq.read_bytes())
    assert r.status_code == 200  # an RFC 3161 rejection, not an HTTP error
    assert r.headers["content-type"] == REPLY
    tsr = tmp_path / "reject.tsr"
    tsr.write_bytes(r.content)
    text = reply_text(tsr)
    assert field(text, "Status") == "Rejected."
    assert "unrecognized or unsupported algorithm identifier" in text
    assert "TST info:\nNot included." in text
    entries = audit_entries(server)[before:]
    assert [(e["outcome"], e["details"]["failure"]) for e in entries] == \
        [("refused", "bad_alg")]


@pytest.mark.parametrize("body", [b"", b"garbage", b"\x30\x80\x00\x00", b"\x30" * 5000])
def test_undecodable_bodies_get_400_with_a_rejection(server: Server, tmp_path: Path,
                                                     body: bytes) -> None:
    before = len(audit_entries(server))
    r = post(server, body)
    assert r.status_code == 400
    assert r.headers["content-type"] == REPLY
    status = TimeStampResp.load(r.content, strict=True)["status"]
    assert status["status"].native == "rejection"
    assert status["fail_info"].native == {"bad_data_format"}
    tsr = tmp_path / "garbage.tsr"
    tsr.write_bytes(r.content)
    text = reply_text(tsr)
    assert field(text, "Status") == "Rejected."
    assert "the data submitted has the wrong format" in text
    entries = audit_entries(server)[before:]
    assert [(e["outcome"], e["details"]["failure"]) for e in entries] == \
        [("refused", "bad_data_format")]


def test_bodies_over_64_kib_are_refused(server: Server) -> None:
    r = post(server, b"\x00" * (64 * 1024 + 1))
    assert r.status_code == 413
    status = TimeStampResp.load(r.content)["status"]
    assert status["status"].native == "rejection"
    # Streamed (no Content-Length), too.
    chunks = iter([b"\x00" * 40000, b"\x00" * 40000])
    r = httpx.post(f"{server.url}/tsa", content=chunks, headers={"content-type": QUERY})
    assert r.status_code == 413


def test_only_post(server: Server) -> None:
    assert httpx.get(f"{server.url}/tsa").status_code == 405


# -- the TSA and its certificate ---------------------------------------------------------


def test_tsa_certificate(server: Server, pems: Pems) -> None:
    tsa = x509.load_pem_x509_certificate(pems.tsa.read_bytes())
    root = x509.load_pem_x509_certificate(pems.root.read_bytes())
    assert tsa.issuer == root.subject
    assert tsa.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == \
        "signgate time-stamp authority"
    eku = tsa.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical
    assert list(eku.value) == [x509.ExtendedKeyUsageOID.TIME_STAMPING]
    assert tsa.not_valid_after_utc <= root.not_valid_after_utc
    text = ok(openssl(), "x509", "-in", str(pems.tsa), "-noout", "-text")
    assert "NIST CURVE: P-256" in text
    assert ok(openssl(), "verify", "-CAfile", str(pems.root), "-purpose", "timestampsign",
              str(pems.tsa)).strip().endswith("OK")

    as_json = server.cli("ca", "tsa-cert", "--json").json()
    assert as_json["pem"] == pems.tsa.read_text()
    assert as_json["chain_pem"] == pems.tsa.read_text() + pems.root.read_text()
    assert as_json["sha256"] == tsa.fingerprint(hashes.SHA256()).hex()

    # Created once, at 'signgate init', and on the record.
    created = server.cli("audit", "log", "--action", "tsa.create", "--json").json()
    assert len(created) == 1, created
    assert created[0]["actor"] == "signgate"
    assert created[0]["details"]["sha256"] == as_json["sha256"]
    assert created[0]["details"]["serial"] == as_json["serial"]


def test_tsa_certificate_route_needs_a_token(server: Server) -> None:
    with server.http(token="") as anon:
        r = anon.get("/api/v1/ca/tsa-certificate")
    assert r.status_code == 401
    out = server.cli("ca", "tsa-cert", token="sgt_" + "C" * 43, check=False)
    assert out.returncode == 3
    assert out.stdout == ""


def test_one_audit_entry_per_granted_token(server: Server, tmp_path: Path) -> None:
    before = audit_entries(server)
    serials = []
    for i in range(5):
        tsr = stamp(server, make_query(tmp_path, f"file {i}".encode(), "-sha256",
                                       name=f"q{i}"))
        serials.append(serial_of(reply_text(tsr)))
    after = audit_entries(server)
    new = after[len(before):]
    assert [e["seq"] for e in after[:len(before)]] == [e["seq"] for e in before]
    assert [int(e["details"]["serial"], 16) for e in new] == serials
    assert len(set(serials)) == 5
    assert all(e["outcome"] == "allowed" for e in new)
    assert server.cli("audit", "verify", "--json").json()["ok"] is True
