"""Private keys and tokens never appear in clear: not in the data directory, the database,
the server log, CLI output or API responses. Sealed key material is bound to its key.

With the keys in an HSM (``init --store hsm`` on SoftHSM2), the token refuses their
secret attributes even to a process holding the PIN, the vault holds no blob, and no
private key structure, PEM private key block or the PIN is anywhere outside the token."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from signgate.crypto.algorithms import KeyAlgorithm
from signgate.keystore.base import KeyRef
from signgate.keystore.blobs import InMemoryBlobs
from signgate.keystore.pkcs11_uri import parse
from signgate.keystore.soft import SoftwareKeyStore, decode_master_key
from tests.conftest import unique
from tests.support.server import CliResult, Server
from tests.support.softhsm import SoftHsm, make_softhsm, start_hsm_server

ALGORITHMS = ["ecdsa-p256", "ecdsa-p384", "ed25519", "rsa-3072", "rsa-4096"]


class Recorder:
    """Runs the CLI and the API and keeps everything they printed or returned."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.seen: list[bytes] = []

    def cli(self, *args: str, token: str | None = None, check: bool = True) -> CliResult:
        r = self.server.cli(*args, token=token, check=check)
        self.seen += [r.stdout.encode(), r.stderr.encode()]
        return r

    def get(self, path: str, **params: Any) -> Any:
        with self.server.http() as http:
            r = http.get(path, params=params)
        self.seen.append(r.content)
        return r.json()


@contextmanager
def connect(server: Server) -> Iterator[Any]:
    if server.database_url is not None:
        url = server.database_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(url) as conn:
            yield conn
    else:
        conn = sqlite3.connect(server.data_dir / "signgate.db", timeout=30)
        try:
            yield conn
        finally:
            conn.close()


def query(server: Server, sql: str) -> list[tuple[Any, ...]]:
    with connect(server) as conn:
        return [tuple(r) for r in conn.execute(sql).fetchall()]


def sealed_keys(server: Server, project: str) -> list[tuple[str, str, bytes]]:
    """(uri, algorithm, sealed blob) of every version of every key of ``project``."""
    rows = query(server, "SELECT v.uri, k.algorithm, e.sealed FROM vault_entries e "
                         "JOIN key_versions v ON v.uri = e.uri JOIN keys k ON k.id = v.key_id "
                         f"JOIN projects p ON p.id = k.project_id WHERE p.name = '{project}'")
    return [(str(uri), str(alg), bytes(blob)) for uri, alg, blob in rows]


def unseal(server: Server, uri: str, algorithm: str, blob: bytes) -> Any:
    master = decode_master_key((server.data_dir / "master.key").read_text(), "master.key")
    blobs = InMemoryBlobs()
    blobs.put(uri, blob)
    return SoftwareKeyStore(master, blobs)._open(KeyRef(uri, KeyAlgorithm(algorithm)))


def int_bytes(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


def clear_forms(private: Any) -> dict[str, bytes]:
    """Every clear-text representation of a private key we can think of."""
    forms: dict[str, bytes] = {}
    pkcs8 = private.private_bytes(serialization.Encoding.DER,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    forms["pkcs8 der"] = pkcs8
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    forms["pkcs8 pem"] = pem
    forms["pkcs8 pem body"] = b"".join(pem.splitlines()[1:-1])
    forms["pkcs8 pem body with newlines"] = b"\n".join(pem.splitlines()[1:-1])
    if isinstance(private, ed25519.Ed25519PrivateKey):
        forms["raw"] = private.private_bytes(serialization.Encoding.Raw,
                                             serialization.PrivateFormat.Raw,
                                             serialization.NoEncryption())
    else:
        forms["traditional der"] = private.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption())
        if isinstance(private, ec.EllipticCurvePrivateKey):
            size = (private.curve.key_size + 7) // 8
            forms["raw"] = private.private_numbers().private_value.to_bytes(size, "big")
        else:
            assert isinstance(private, rsa.RSAPrivateKey)
            numbers = private.private_numbers()
            forms["d"] = int_bytes(numbers.d)
            forms["p"] = int_bytes(numbers.p)
            forms["q"] = int_bytes(numbers.q)
    return forms


def needles(name: str, secret: bytes) -> dict[str, bytes]:
    """The secret itself, in hex and in base64 (with and without padding, URL-safe)."""
    b64 = base64.b64encode(secret)
    url = base64.urlsafe_b64encode(secret)
    out = {
        name: secret,
        f"{name} hex": secret.hex().encode(),
        f"{name} HEX": secret.hex().upper().encode(),
        f"{name} base64": b64,
        f"{name} base64 unpadded": b64.rstrip(b"="),
        f"{name} urlsafe base64": url.rstrip(b"="),
    }
    return out


# The two files that hold a secret on purpose (owner-only).
SECRET_FILES = {"master.key", "admin.token"}


def data_dir_files(server: Server) -> dict[str, bytes]:
    """Every file of the data directory (signgate.db, -wal, -shm, ...) but the two above."""
    for name in SECRET_FILES:
        assert (server.data_dir / name).stat().st_mode & 0o777 == 0o600, name
    return {str(p): p.read_bytes() for p in sorted(server.data_dir.rglob("*"))
            if p.is_file() and p.name not in SECRET_FILES}


def table_dump(server: Server) -> bytes:
    """Every column of every row of every table of the database, concatenated (for SQLite
    too: a long value may be split over overflow pages in the file)."""
    parts: list[bytes] = []
    with connect(server) as conn:
        if server.database_url is not None:
            sql = ("SELECT table_name FROM information_schema.tables "
                   "WHERE table_catalog = current_database() AND table_schema = 'public' "
                   "AND table_type = 'BASE TABLE'")
        else:
            sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
        tables = [r[0] for r in conn.execute(sql).fetchall()]
        assert "vault_entries" in tables
        assert "audit_entries" in tables
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"').fetchall():
                for value in row:
                    if isinstance(value, bytes | bytearray | memoryview):
                        parts.append(bytes(value))
                    elif value is not None:
                        parts.append(str(value).encode())
    return b"\n".join(parts)


def haystacks(server: Server, rec: Recorder) -> dict[str, bytes]:
    stacks = data_dir_files(server)
    stacks["server log"] = server.server_log().encode()
    stacks["cli and api output"] = b"\n".join(rec.seen)
    stacks["database tables"] = table_dump(server)
    return stacks


def find(stacks: dict[str, bytes], wanted: dict[str, bytes]) -> list[str]:
    return [f"{what} in {where}" for what, needle in wanted.items()
            for where, stack in stacks.items() if needle in stack]


def sign_with_every_algorithm(rec: Recorder, prefix: str,
                              tmp_path: Path) -> tuple[str, str, str, Path, list[str]]:
    """A project with a key of every algorithm, each signing and verifying one artifact and
    read back (every answer recorded): the project, the signer and its token, the artifact
    and the keys."""
    project = unique(prefix)
    rec.cli("project", "create", project)
    ci = unique("ci")
    token = rec.cli("identity", "create", ci, "--json").json()["token"]
    rec.cli("grant", "add", ci, "signer", project)
    artifact = tmp_path / "artifact.bin"
    artifact.write_bytes(b"something to sign" * 100)
    refs = []
    for alg in ALGORITHMS:
        ref = f"{project}/{alg}"
        refs.append(ref)
        rec.cli("key", "create", ref, "--algorithm", alg)
        rec.cli("sign", str(artifact), "--key", ref, "--json", token=token)
        rec.cli("verify", str(artifact), "--signature", str(artifact) + ".sig", "--key", ref,
                token=token)
        rec.get(f"/api/v1/projects/{project}/keys/{alg}")
        rec.get(f"/api/v1/projects/{project}/keys/{alg}/public")
    return project, ci, token, artifact, refs


def test_no_private_key_or_token_in_clear(server: Server, tmp_path: Path) -> None:
    rec = Recorder(server)
    project, ci, token, artifact, refs = sign_with_every_algorithm(rec, "secrets", tmp_path)
    rec.cli("key", "rotate", refs[0])
    rec.cli("sign", str(artifact), "--key", refs[0], "--json", token=token)
    rec.cli("key", "show", refs[0])
    rec.cli("key", "public", refs[0], "--version", "1")
    rec.cli("key", "list", "--json")
    rec.cli("identity", "list")
    rec.cli("audit", "log")
    rec.cli("audit", "log", "--csv")
    rec.cli("whoami", token=token)
    rec.get("/api/v1/audit", limit=5000)
    rec.get("/api/v1/keys")
    rec.get("/api/v1/identities")
    rec.get("/api/v1/grants")
    rec.get("/api/v1/audit/verify")
    rec.get("/openapi.json")

    vault = sealed_keys(server, project)
    assert sorted(alg for _, alg, _ in vault) == sorted([*ALGORITHMS, ALGORITHMS[0]])

    stacks = haystacks(server, rec)
    if server.database_url is None:
        assert any(name.endswith("signgate.db") for name in stacks)
    all_text = b"".join(stacks.values())

    secrets: dict[str, bytes] = {}
    checked_algorithms = set()
    for uri, alg, blob in vault:
        private = unseal(server, uri, alg, blob)
        checked_algorithms.add(alg)
        for form, value in clear_forms(private).items():
            secrets.update(needles(f"{alg} {uri} {form}", value))
        # Positive control: the search does find what is stored (the sealed blob, the
        # public key), so not finding the private key means something.
        public_der = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        assert base64.b64encode(public_der)[:60] in all_text
        assert blob in all_text
    assert checked_algorithms == set(ALGORITHMS)

    master = decode_master_key((server.data_dir / "master.key").read_text(), "master.key")
    secrets.update(needles("master key", master))
    secrets.update(needles("admin token", server.admin_token.encode()))
    secrets.update(needles("ci token", token.encode()))

    leaks = find(stacks, secrets)
    # The CLI printed the new identity's token once, on purpose ('identity create').
    leaks = [leak for leak in leaks
             if not (leak.startswith("ci token") and leak.endswith("cli and api output"))]
    assert leaks == []

    # Only the SHA-256 of a token is stored (positive control for the token search).
    token_hash = hashlib.sha256(token.encode()).hexdigest().encode()
    db_stacks = {k: v for k, v in stacks.items() if k != "cli and api output"}
    assert any(token_hash in v for v in db_stacks.values())
    assert query(server, f"SELECT token_hash FROM identities WHERE name = '{ci}'") == [
        (token_hash.decode(),)]


def test_sealed_blob_is_bound_to_its_key(server: Server, tmp_path: Path) -> None:
    project = unique("swap")
    server.cli("project", "create", project)
    a, b = f"{project}/a", f"{project}/b"
    server.cli("key", "create", a)
    server.cli("key", "create", b)
    ci = unique("ci-swap")
    token = server.new_identity(ci)
    server.cli("grant", "add", ci, "signer", project)
    with server.http() as http:
        log = http.get("/api/v1/audit", params={"project": project, "action": "key.create",
                                                 "limit": 100}).json()["entries"]
    uri = {e["key"]: e["details"]["key_uri"] for e in log}
    blob_a = query(server, f"SELECT sealed FROM vault_entries WHERE uri = '{uri[a]}'")[0][0]
    blob_b = query(server, f"SELECT sealed FROM vault_entries WHERE uri = '{uri[b]}'")[0][0]
    assert bytes(blob_a) != bytes(blob_b)
    # b has never signed, so the server has not opened it yet: it must read the row.
    with connect(server) as conn:
        ph = "%s" if server.database_url else "?"
        conn.execute(f"UPDATE vault_entries SET sealed = {ph} WHERE uri = {ph}",
                     (bytes(blob_a), uri[b]))
        conn.commit()

    artifact = tmp_path / "artifact.bin"
    artifact.write_bytes(b"please sign me")
    r = server.cli("sign", str(artifact), "--key", b, token=token, check=False)
    assert r.returncode != 0
    assert r.returncode not in (3, 4, 5, 6, 7)
    assert r.stdout == ""
    assert r.stderr.count("\n") == 1
    assert r.stderr.startswith(f"signgate: cannot open key {uri[b]}: ")
    assert "tampered key material" in r.stderr
    assert "internal error" not in r.stderr
    assert not (tmp_path / "artifact.bin.sig").exists()
    with server.http(token=token) as http:
        resp = http.post(f"/api/v1/projects/{project}/keys/b/sign",
                         json={"digest": hashlib.sha256(b"x").hexdigest(),
                               "artifact_name": "x"})
    assert resp.status_code >= 500
    assert resp.json()["code"] == "keystore_unseal_failed"
    assert "signature" not in resp.json()
    assert "Traceback" not in server.server_log()

    # No signature was counted or recorded for b; a still works with its own blob.
    shown = server.cli("key", "show", b, "--json").json()
    assert shown["versions"][0]["signatures"] == 0
    entries = server.cli("audit", "log", "--key", b, "--action", "signature.create",
                         "--json").json()
    assert entries
    assert all(e["outcome"] == "refused" for e in entries)
    assert entries[0]["details"]["code"] == "keystore_unseal_failed"
    ok = server.cli("sign", str(artifact), "--key", a, "--json", token=token).json()
    assert ok["key"] == a
    pub = tmp_path / "a.pem"
    pub.write_text(server.cli("key", "public", a).stdout)
    out = subprocess.run(["openssl", "dgst", "-sha256", "-verify", str(pub), "-signature",
                          str(artifact) + ".sig", str(artifact)], capture_output=True, text=True)
    assert out.stdout.strip() == "Verified OK", out


# -- keys in an HSM ----------------------------------------------------------------------
#
# A token's private keys cannot be read (that is the point), so the scan cannot look for
# their bytes. It proves instead that the token refuses to give them to anyone, signgate
# included, and that nothing shaped like a private key, and not the PIN, is anywhere
# outside the token.

# DER structures of a private key in clear, whoever's key it is:
PRIVATE_KEY_DER = re.compile(
    # PKCS#8 PrivateKeyInfo (RFC 5208 §5): version 0, then an EC, RSA or Ed25519
    # AlgorithmIdentifier (a certificate or a public key has no version 0 before it);
    rb"\x02\x01\x00\x30[\x05\x0d\x13]\x06(?:\x07\x2a\x86\x48\xce\x3d\x02\x01"
    rb"|\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01|\x03\x2b\x65\x70)"
    # RFC 5915 ECPrivateKey: version 1, then the 32- or 48-byte scalar;
    rb"|\x30(?:[\x00-\x7f]|\x81.)\x02\x01\x01\x04[\x20\x30]"
    # RFC 8017 RSAPrivateKey: version 0, then a 3072- or 4096-bit modulus.
    rb"|\x02\x01\x00\x02\x82[\x01\x02]", re.S)
PEM_PRIVATE_KEY = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----")
BASE64_RUN = re.compile(rb"[A-Za-z0-9+/_\-]{43,}={0,2}")
HEX_RUN = re.compile(rb"(?:[0-9a-fA-F]{2}){32,}")


def decodings(stack: bytes) -> Iterator[bytes]:
    """``stack`` itself, and every long base64 (standard or URL-safe, at each of the four
    alignments: a run may start inside a word) or hex run in it, decoded. PEM bodies are
    joined first, in JSON too (a newline escaped as ``\\n``)."""
    yield stack
    joined = re.sub(rb"(?:\\n|\r?\n)", b"", stack)
    for run in BASE64_RUN.findall(joined):
        body = run.rstrip(b"=")
        for skip in range(4):
            part = body[skip:]
            part = part[:len(part) - len(part) % 4]
            for decode in (base64.b64decode, base64.urlsafe_b64decode):
                decoded = b""
                with suppress(ValueError):
                    decoded = decode(part)
                yield decoded
    for run in HEX_RUN.findall(stack):
        yield bytes.fromhex(run.decode())


def private_key_shape(stack: bytes, depth: int = 2) -> str | None:
    """What private key structure or PEM block ``stack`` holds, looking ``depth`` levels
    of encoding deep (a PEM block base64-encoded again is found too)."""
    if PEM_PRIVATE_KEY.search(stack):
        return "PEM private key block"
    for decoded in decodings(stack):
        match = PRIVATE_KEY_DER.search(decoded)
        if match:
            return f"DER private key {match.group(0)[:12].hex()}"
        if depth > 1 and decoded is not stack and len(decoded) >= 32:
            inner = private_key_shape(decoded, depth - 1)
            if inner:
                return inner
    return None


def private_key_shapes(stacks: dict[str, bytes]) -> list[str]:
    """Where a private key structure or PEM block is, and what it was."""
    return [f"{shape} in {where}" for where, stack in stacks.items()
            if (shape := private_key_shape(stack))]


def test_the_shape_search_finds_private_keys() -> None:
    """Positive control: every form of a clear private key is found, inside JSON and logs,
    and public keys are not."""
    keys: list[Any] = [ec.generate_private_key(ec.SECP256R1()),
                       ec.generate_private_key(ec.SECP384R1()),
                       ed25519.Ed25519PrivateKey.generate(),
                       rsa.generate_private_key(65537, 3072)]
    for private in keys:
        forms = {k: v for k, v in clear_forms(private).items()
                 if k in ("pkcs8 der", "pkcs8 pem", "traditional der")}
        for form, value in forms.items():
            for shown in (value, b"log: " + base64.b64encode(value) + b" end",
                          json.dumps({"x": value.decode() if b"-----" in value
                                      else value.hex()}).encode(),
                          b"x" + base64.urlsafe_b64encode(value)):
                assert private_key_shapes({"stack": shown}), (type(private), form, shown[:40])
        public = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        assert private_key_shapes({"public": public}) == []


def probe_token(hsm: SoftHsm) -> dict[str, Any]:
    """tests/support/token_probe.py, in a process of its own (its own SOFTHSM2_CONF)."""
    done = subprocess.run([sys.executable, "-m", "tests.support.token_probe", hsm.module,
                           "signgate"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **hsm.env()}, check=False,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_no_private_key_byte_outside_the_token(tmp_path: Path) -> None:
    # A PIN no other bytes will look like, to search for it.
    hsm = make_softhsm(tmp_path / "softhsm", ["signgate"], pin=f"hsm-pin-{secrets.token_hex(8)}")
    server = start_hsm_server(tmp_path / "data", None, hsm)
    try:
        rec = Recorder(server)
        project, _, token, artifact, refs = sign_with_every_algorithm(
            rec, "hsm-secrets", tmp_path)
        # The CA, the TSA and the log key at work: a timestamped CMS signature, a CRL.
        rec.cli("sign", str(artifact), "--key", refs[0], "--format", "cms", "--json",
                token=token)
        rec.cli("key", "rotate", refs[0])
        rec.cli("sign", str(artifact), "--key", refs[0], "--json", token=token)
        once = f"{project}/once"
        rec.cli("key", "create", once, "--one-time")
        rec.cli("sign", str(artifact), "--key", once, "--json", token=token)
        when = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        rec.cli("key", "revoke", refs[1], "--compromised-at", when)  # a CRL by the HSM CA
        for ref in refs:
            rec.cli("key", "show", ref, "--json")
        rec.cli("key", "list", "--json")
        rec.cli("ca", "cert")
        rec.cli("ca", "trusted-root", "--json")
        rec.cli("audit", "log", "--csv")
        rec.get("/api/v1/audit", limit=5000)
        rec.get("/api/v1/keys")
        rec.get("/api/v1/audit/verify")
        with server.http() as http:
            rec.seen.append(http.get(f"/crl/{project}.crl").content)

        # (c) No sealed blob at all: every key of the server is a token object.
        assert query(server, "SELECT uri FROM vault_entries") == []
        versions = [(str(uri), bool(one_time)) for uri, one_time in query(
            server, "SELECT v.uri, k.one_time FROM key_versions v JOIN keys k "
                    "ON k.id = v.key_id")]
        authorities = [str(u) for (u,) in query(server, "SELECT key_uri FROM authorities")]
        log_keys = [str(u) for (u,) in query(server, "SELECT key_uri FROM log_keys")]
        token_keys = [u for u, one_time in versions if not one_time] + authorities + log_keys
        assert len(authorities) >= 3
        assert len(log_keys) == 1
        assert all(u.startswith("pkcs11:token=signgate;") for u, _ in versions)
        assert all(u.startswith("pkcs11:token=signgate;") for u in token_keys)

        # (a) The token refuses every secret attribute of every signgate key, to a process
        # logged in with the PIN; the same question about a non-sensitive key is answered.
        probed = probe_token(hsm)
        control = probed["control"]["secrets"]["CKA_VALUE"]
        assert (control["rv"], control["length"]) == ("CKR_OK", 32)
        on_token = {k["id"]: k for k in probed["keys"]}
        wanted = {parse(u).id.hex() for u in token_keys}  # type: ignore[union-attr]
        assert wanted <= set(on_token), wanted - set(on_token)
        types = set()
        for key in on_token.values():  # signgate's, and nothing else is on this token
            types.add(key["type"])
            assert (key["sensitive"], key["extractable"], key["never_extractable"]) == (
                True, False, True), key
            assert key["secrets"], key
            assert {s["rv"] for s in key["secrets"].values()} == {"CKR_ATTRIBUTE_SENSITIVE"}, key
            assert {s["length"] for s in key["secrets"].values()} == {0}, key
        assert types == {"CKK_ECDSA", "CKK_EC_EDWARDS", "CKK_RSA"}

        # (b) Nothing shaped like a private key, and not the PIN, in the data directory
        # (database, WAL), the database's tables, the server log or what the CLI and the API
        # returned.
        stacks = haystacks(server, rec)
        assert any(name.endswith("signgate.db") for name in stacks)
        all_text = b"".join(stacks.values())
        public_der = base64.b64decode("".join(
            rec.cli("key", "public", refs[0]).stdout.strip().splitlines()[1:-1]))
        assert base64.b64encode(public_der)[:60] in all_text  # the search sees the keys
        assert hsm.pin not in (server.data_dir / "config.toml").read_text()
        assert private_key_shapes(stacks) == []
        assert find(stacks, needles("hsm pin", hsm.pin.encode())) == []
    finally:
        server.stop()
