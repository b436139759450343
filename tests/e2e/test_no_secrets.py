"""Private keys and tokens never appear in clear: not in the data directory, the database,
the server log, CLI output or API responses. Sealed key material is bound to its key."""

from __future__ import annotations

import base64
import hashlib
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from signgate.crypto.algorithms import KeyAlgorithm
from signgate.keystore.base import KeyRef
from signgate.keystore.blobs import InMemoryBlobs
from signgate.keystore.soft import SoftwareKeyStore, decode_master_key
from tests.conftest import unique
from tests.support.server import CliResult, Server

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


def test_no_private_key_or_token_in_clear(server: Server, tmp_path: Path) -> None:
    rec = Recorder(server)
    project = unique("secrets")
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
