"""Scanning before signing, end to end: a real clamd and real YARA behind a real server.

Keys created once a scanner is configured require a scan: the CLI uploads the artifact,
signgate scans it and computes what its format signs from the scanned bytes. Findings,
deny-listed hashes and unavailable scanners refuse the signing, and every verdict is in
the audit log. Uploads need a signer grant, are limited per identity and by a spool
budget, and slow clients are disconnected.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import json
import socket
import subprocess
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from signgate.client import SigngateClient
from signgate.errors import InvalidInput
from tests.conftest import unique
from tests.e2e.test_authenticode_kinds import gcab
from tests.support.clamd import EICAR, Clamd, start_clamd
from tests.support.pe import hello_exe
from tests.support.server import SIGNGATE, Server, base_env, free_port, init_data_dir, start_server

MARKER = "SIGNGATE-YARA-TEST-MARKER"
LIMIT = 4 << 20
PER_IDENTITY = 2
SPOOL_BUDGET = 6 << 20


def scanning_server(data_dir: Path, clamd_socket: Path | None, yara_dir: Path,
                    extra: str = "") -> Server:
    init_data_dir(data_dir, None)
    with (data_dir / "config.toml").open("a") as f:
        if clamd_socket is not None:
            f.write(f'scan_clamd_socket = "{clamd_socket}"\n')
        f.write(f'scan_yara_dir = "{yara_dir}"\n'
                f"scan_max_bytes = {LIMIT}\n"
                "scan_timeout_seconds = 30\n"
                f"upload_max_concurrent_per_identity = {PER_IDENTITY}\n"
                f"upload_spool_max_bytes = {SPOOL_BUDGET}\n" + extra)
    return start_server(data_dir, None, init=False)


def yara_rules(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "marker.yar").write_text(
        f'rule TestMarker {{ strings: $a = "{MARKER}" condition: $a }}\n')
    return directory


@pytest.fixture(scope="module")
def server(clamd: Clamd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("scanning")
    srv = scanning_server(base / "data", clamd.socket, yara_rules(base / "yara"))
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def project(server: Server) -> str:
    name = unique("scan")
    server.cli("project", "create", name)
    server.cli("grant", "add", "admin", "signer", name)
    return name


def new_key(server: Server, project: str, *extra: str) -> str:
    ref = f"{project}/{unique('k')}"
    server.cli("key", "create", ref, "--algorithm", "rsa-3072", "--rsa-padding", "pkcs1v15",
               *extra)
    return ref


def artifact(fmt: str, directory: Path, payload: bytes = b"") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    if fmt == "authenticode":
        return hello_exe(directory / "app.exe", overlay=payload)
    if fmt == "jar":
        path = directory / "app.jar"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\n\r\n")
            z.writestr("App.class", b"\xca\xfe\xba\xbe" + bytes(range(256)))
            z.writestr("data.bin", payload or b"clean data")
        return path
    path = directory / "app.tar.gz"
    path.write_bytes(b"release " * 1000 + payload)
    return path


def signing_entries(server: Server, ref: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = server.cli(
        "audit", "log", "--key", ref, "--action", "signature.create", "--json").json()
    return entries


@pytest.mark.parametrize("fmt", ["raw", "cms", "authenticode", "jar", "openpgp", "dsse",
                                 "sigstore"])
def test_clean_artifacts_are_scanned_and_signed(server: Server, project: str,
                                                tmp_path: Path, fmt: str) -> None:
    ref = new_key(server, project)
    assert server.cli("key", "show", ref, "--json").json()["scan"] == "required"
    path = artifact(fmt, tmp_path)
    result = server.cli("sign", str(path), "--key", ref, "--format", fmt)
    assert "scanned app" in result.stderr
    assert f"scanned {path.name}: clean (clamav 1." in result.stderr
    uploaded = hashlib.sha256(path.read_bytes()).hexdigest()  # embedded: the signed file
    receipt = server.cli("sign", str(path), "--key", ref, "--format", fmt, "--json").json()
    scan = receipt["scan"]
    assert scan["verdict"] == "clean"
    assert [e["engine"] for e in scan["engines"]] == ["clamav", "yara", "denylist"]
    # signgate scanned exactly the bytes of the file as it was uploaded.
    assert scan["artifact_sha256"] == uploaded
    entry = signing_entries(server, ref)[-1]
    assert entry["outcome"] == "allowed"
    assert entry["details"]["scan"]["verdict"] == "clean"
    assert entry["details"]["format"] == fmt


def test_embedded_formats_sign_what_was_scanned(server: Server, project: str,
                                                 tmp_path: Path) -> None:
    """The PE image hash (and a script's and a CAB's digest) and the JAR's .SF are computed
    by the server from the upload, and the signed files verify (signgate verify, which
    recomputes them independently)."""
    ref = new_key(server, project)
    root = tmp_path / "root.pem"
    root.write_text(server.cli("ca", "cert").stdout)
    # Authenticode kinds other than PE: the server hashes the upload as the kind told.
    script = tmp_path / "script" / "deploy.ps1"
    script.parent.mkdir()
    script.write_bytes(b"Get-Date\r\n")
    cab = gcab(tmp_path / "cab" / "app.cab", artifact("raw", tmp_path / "cab"))
    for fmt, path in [("authenticode", artifact("authenticode", tmp_path / "pe")),
                      ("authenticode", script), ("authenticode", cab),
                      ("jar", artifact("jar", tmp_path / "jar"))]:
        before = hashlib.sha256(path.read_bytes()).hexdigest()
        receipt = server.cli("sign", str(path), "--key", ref, "--format", fmt,
                             "--json").json()
        assert receipt["scan"]["artifact_sha256"] == before
        out = server.cli("verify", str(path), "--ca", str(root), "--json").json()
        assert out["valid"] is True, out
        assert out["format"] == fmt


@pytest.mark.parametrize("where", ["plain", "zip", "pe"])
def test_eicar_is_refused(server: Server, project: str, tmp_path: Path, where: str) -> None:
    ref = new_key(server, project)
    if where == "plain":
        path, fmt = tmp_path / "eicar.txt", "raw"
        path.write_bytes(EICAR)
    elif where == "zip":
        path, fmt = tmp_path / "bundle.zip", "cms"
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("readme.txt", "hello")
            z.writestr("tools/eicar.com", EICAR)
        path.write_bytes(buffer.getvalue())
    else:
        path, fmt = hello_exe(tmp_path / "setup.exe", overlay=EICAR), "authenticode"
    before = path.read_bytes()
    refused = server.cli("sign", str(path), "--key", ref, "--format", fmt, check=False)
    assert refused.returncode == 4, refused
    assert f"signgate: {path.name} is refused: clamav: " in refused.stderr
    assert "EICAR" in refused.stderr.upper()
    assert path.read_bytes() == before  # an embedded format did not touch it
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # and wrote nothing
    entry = signing_entries(server, ref)[-1]
    assert entry["outcome"] == "refused"
    assert entry["details"]["code"] == "scan_findings"
    scan = entry["details"]["scan"]
    assert scan["verdict"] == "flagged"
    assert scan["artifact_sha256"] == hashlib.sha256(before).hexdigest()
    assert scan["engines"][0]["engine"] == "clamav"
    assert scan["engines"][0]["engine_version"].startswith("1.")
    assert scan["engines"][0]["findings"]


def test_yara_match_and_deny_list_are_refused(server: Server, project: str,
                                              tmp_path: Path) -> None:
    ref = new_key(server, project)
    marked = tmp_path / "marked.bin"
    marked.write_text(f"payload {MARKER} payload")
    refused = server.cli("sign", str(marked), "--key", ref, check=False)
    assert refused.returncode == 4
    assert "yara: marker:TestMarker" in refused.stderr

    known = tmp_path / "known-bad.bin"
    known.write_bytes(b"an artifact the incident team has seen before")
    digest = hashlib.sha256(known.read_bytes()).hexdigest()
    server.cli("scan", "deny", "add", digest, "--reason", "incident 7")
    try:
        refused = server.cli("sign", str(known), "--key", ref, check=False)
        assert refused.returncode == 4
        assert "denylist: denylisted:incident 7" in refused.stderr
        report = server.cli("scan", str(known), "--json", check=False)
        assert report.returncode == 4
        assert report.json()["findings"] == ["denylist: denylisted:incident 7"]
    finally:
        server.cli("scan", "deny", "remove", digest)
    server.cli("sign", str(known), "--key", ref)  # off the list: signed


def test_scan_preflight(server: Server, project: str, tmp_path: Path) -> None:
    clean = artifact("raw", tmp_path)
    out = server.cli("scan", str(clean))
    assert out.stdout.startswith(f"app.tar.gz: clean (sha256 "
                                 f"{hashlib.sha256(clean.read_bytes()).hexdigest()}; clamav ")
    bad = tmp_path / "eicar.com"
    bad.write_bytes(EICAR)
    found = server.cli("scan", str(bad), check=False)
    assert found.returncode == 4
    assert found.stderr.startswith("signgate: eicar.com: FOUND clamav: ")
    report = server.cli("scan", str(bad), "--json", check=False).json()
    assert report["clean"] is False
    assert report["verdict"] == "flagged"
    log = server.cli("audit", "log", "--action", "artifact.scan", "--json").json()
    assert {e["subject"] for e in log} >= {"app.tar.gz", "eicar.com"}
    assert all(e["details"]["engines"] for e in log)


def test_unscanned_signing_is_refused_for_scan_required_keys(
        server: Server, project: str, tmp_path: Path) -> None:
    ref = new_key(server, project)
    digest = hashlib.sha256(b"x").hexdigest()
    with server.http() as http:
        r = http.post(f"/api/v1/projects/{ref.replace('/', '/keys/')}/sign",
                      json={"digest": digest, "artifact_name": "x"})
    assert r.status_code == 403
    assert r.json()["code"] == "scan_required"

    # A key with scan off signs digests as before; the policy is a key setting, audited.
    off = new_key(server, project, "--scan", "off")
    path = artifact("raw", tmp_path)
    assert "scanned" not in server.cli("sign", str(path), "--key", off).stderr
    server.cli("key", "scan-policy", off, "required")
    assert server.cli("key", "show", off, "--json").json()["scan"] == "required"
    assert "scanned app.tar.gz: clean" in server.cli("sign", str(path), "--key", off).stderr
    changes = server.cli("audit", "log", "--key", off, "--action", "key.scan-policy",
                         "--json").json()
    assert [(e["details"]["from"], e["details"]["to"]) for e in changes] == [("off",
                                                                              "required")]


def upload(server: Server, ref: str, body: bytes, header: dict[str, Any],
           headers: dict[str, str] | None = None) -> httpx.Response:
    project, name = ref.split("/")
    with server.http() as http:
        return http.post(f"/api/v1/projects/{project}/keys/{name}/sign-upload", content=body,
                         headers={"Signgate-Sign": json.dumps(header), **(headers or {})})


def declare_only(server: Server, ref: str, length: int, header: dict[str, Any]
                 ) -> tuple[int, dict[str, Any]]:
    """Send only the headers of an upload declaring ``length`` bytes; read the answer."""
    project, name = ref.split("/")
    host, port = server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.putrequest("POST", f"/api/v1/projects/{project}/keys/{name}/sign-upload")
        for key, value in (("Authorization", f"Bearer {server.admin_token}"),
                           ("Signgate-Sign", json.dumps(header)),
                           ("Content-Length", str(length))):
            conn.putheader(key, value)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_a_client_digest_is_never_signed(server: Server, project: str) -> None:
    """Upload one file and claim another's digest: refused, and nothing signed."""
    ref = new_key(server, project)
    body = b"the bytes that were scanned"
    other = hashlib.sha256(b"the bytes the client wants signed").hexdigest()
    r = upload(server, ref, body, {"artifact_name": "a.bin", "digest": other})
    assert r.status_code == 400
    assert r.json()["code"] == "digest_mismatch"
    # Without a client digest, the signature is over signgate's digest of the upload.
    r = upload(server, ref, body, {"artifact_name": "a.bin"})
    assert r.status_code == 200, r.text
    assert r.json()["receipt"]["digest"] == hashlib.sha256(body).hexdigest()
    entries = signing_entries(server, ref)
    assert [e["outcome"] for e in entries] == ["refused", "allowed"]
    assert entries[0]["details"]["code"] == "digest_mismatch"


class Tampering(httpx.BaseTransport):
    """A network that flips one bit of an upload on its way to signgate (the client hashes
    what it sends; signgate hashes, scans and signs what arrives)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/sign-upload"):
            assert isinstance(request.stream, httpx.SyncByteStream)
            body = b"".join(request.stream)
            request = httpx.Request(request.method, request.url, headers=request.headers,
                                    content=body[:-1] + bytes([body[-1] ^ 1]))
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize("fmt", ["raw", "cms"])
def test_detached_uploads_read_the_file_once(server: Server, project: str, tmp_path: Path,
                                             fmt: str) -> None:
    """A detached format's upload is hashed as it is sent (no separate hashing pass, no
    client digest in the request); what signgate signed is compared with that digest, and
    a signature over other bytes is never written. (An upload asked for, as for a file
    above ASK_FIRST_ABOVE: a small file is hashed first and its digest offered, see
    client/sign_file.py.)"""
    ref = new_key(server, project)
    path = artifact("raw", tmp_path)
    stages: list[str] = []

    @contextlib.contextmanager
    def progress(stage: str, _path: Path) -> Iterator[None]:
        stages.append(stage)
        yield None

    with SigngateClient(server.url, server.admin_token) as client:
        signed = client.sign_file(path, ref, fmt, progress=progress, upload=True)
    assert stages == ["uploading"]
    assert signed.receipt["digest"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert signed.signature_path.exists()
    signed.signature_path.unlink()

    with SigngateClient(server.url, server.admin_token, transport=Tampering()) as client, \
            pytest.raises(InvalidInput) as info:
        client.sign_file(path, ref, fmt, upload=True)
    assert info.value.code == "digest_mismatch"
    assert "changed on the way" in str(info.value)
    assert not signed.signature_path.exists()
    # signgate signed (and recorded) exactly the bytes it received and scanned.
    altered = path.read_bytes()[:-1] + bytes([path.read_bytes()[-1] ^ 1])
    entry = signing_entries(server, ref)[-1]
    assert entry["details"]["digest"] == hashlib.sha256(altered).hexdigest()
    assert entry["details"]["scan"]["artifact_sha256"] == hashlib.sha256(altered).hexdigest()


def test_bad_uploads(server: Server, project: str, tmp_path: Path) -> None:
    ref = new_key(server, project)
    # Declared too large: answered before a byte of the body is even sent.
    status, problem = declare_only(server, ref, LIMIT + 1, {"artifact_name": "big.bin"})
    assert status == 413
    assert problem["code"] == "artifact_too_large"
    # Streamed without a declared length: refused (411) before anything is stored, as
    # the spool budget is reserved from the declared length.
    with server.http() as http:
        r = http.post(f"/api/v1/projects/{ref.replace('/', '/keys/')}/sign-upload",
                      content=iter([b"y" * (1 << 20)] * 5),
                      headers={"Signgate-Sign": json.dumps({"artifact_name": "big.bin"})})
    assert r.status_code == 411
    assert r.json()["code"] == "length_required"
    assert not uploads_in_flight(server)
    big = tmp_path / "big.bin"
    big.write_bytes(b"z" * (LIMIT + 1))
    cli = server.cli("sign", str(big), "--key", ref, check=False)
    assert cli.returncode == 7, cli
    assert "larger than the scan limit" in cli.stderr
    refusals = [e for e in signing_entries(server, ref) if e["subject"] == "big.bin"]
    # The command line sends a small file's digest at once (one round trip, not two): the
    # key's answer that it signs only scanned artifacts is on the record, then the upload.
    assert [e["details"]["code"] for e in refusals] == [
        "artifact_too_large", "length_required", "scan_required", "artifact_too_large"]

    # Not a PE for authenticode: the server's own examination refuses it.
    text = tmp_path / "notes.exe"
    text.write_text("not a PE")
    r = upload(server, ref, text.read_bytes(), {"artifact_name": "notes.exe",
                                                "format": "authenticode"})
    assert r.status_code == 400
    assert r.json()["detail"].startswith("notes.exe is not a PE file")
    r = upload(server, ref, b"x", {"artifact_name": "x"} | {"format": "nope"})
    assert r.status_code == 400
    for header in ("not json", json.dumps({"format": "raw"}), json.dumps([1])):
        with server.http() as http:
            r = http.post(f"/api/v1/projects/{ref.replace('/', '/keys/')}/sign-upload",
                          content=b"x", headers={"Signgate-Sign": header})
        assert r.status_code == 400, (header, r.text)
    # A stranger learns nothing and uploads nothing.
    stranger = server.new_identity(unique("stranger"))
    with server.http(stranger) as http:
        r = http.post(f"/api/v1/projects/{ref.replace('/', '/keys/')}/sign-upload",
                      content=b"x" * 100, headers={"Signgate-Sign": json.dumps(
                          {"artifact_name": "x"})})
    assert r.status_code == 403
    assert not uploads_in_flight(server)


def test_scanner_down_refuses(tmp_path_factory: pytest.TempPathFactory) -> None:
    """clamd stopped: every signing is refused with "scanner unavailable", and recorded."""
    base = tmp_path_factory.mktemp("scanner-down")
    own = start_clamd(base / "clamd")
    srv = scanning_server(base / "data", own.socket, yara_rules(base / "yara"))
    try:
        project = unique("down")
        srv.cli("project", "create", project)
        srv.cli("grant", "add", "admin", "signer", project)
        ref = new_key(srv, project)
        path = artifact("raw", base / "files")
        srv.cli("sign", str(path), "--key", ref)
        own.stop()
        refused = srv.cli("sign", str(path), "--key", ref, check=False)
        assert refused.returncode == 9, refused
        assert refused.stderr.startswith("signgate: scanner unavailable: clamav: ")
        preflight = srv.cli("scan", str(path), check=False)
        assert preflight.returncode == 9
        entry = signing_entries(srv, ref)[-1]
        assert entry["outcome"] == "refused"
        assert entry["details"]["code"] == "scanner_unavailable"
        assert entry["details"]["scan"]["verdict"] == "unavailable"
        scans = srv.cli("audit", "log", "--action", "artifact.scan", "--json").json()
        assert scans[-1]["outcome"] == "refused"

        # An upload left behind by a server that died mid-request is removed at start.
        srv.stop()
        stale = srv.data_dir / "spool" / "upload-stale"
        stale.mkdir(parents=True)
        (stale / "app.tar.gz").write_bytes(b"half an upload")
        srv = start_server(srv.data_dir, None, init=False)
        assert not (srv.data_dir / "spool").exists()
    finally:
        srv.stop()
        own.stop()


def test_broken_yara_rules_stop_the_server(clamd: Clamd,
                                           tmp_path_factory: pytest.TempPathFactory) -> None:
    """A rule file that does not compile is a configuration error at start, not a scanner
    that silently passes."""
    base = tmp_path_factory.mktemp("broken-yara")
    rules = yara_rules(base / "yara")
    (rules / "broken.yar").write_text("rule Broken { condition: \n")
    data = base / "data"
    init_data_dir(data, None)
    with (data / "config.toml").open("a") as f:
        f.write(f'scan_clamd_socket = "{clamd.socket}"\nscan_yara_dir = "{rules}"\n')
    serve = subprocess.run([SIGNGATE, "serve", "--data-dir", str(data), "--port",
                            str(free_port())], capture_output=True, text=True, timeout=60,
                           env=base_env(None))
    assert serve.returncode == 10, serve
    assert "broken.yar" in serve.stderr
    assert "does not compile" in serve.stderr


# -- limits on uploads ---------------------------------------------------------------------


def uploads_in_flight(server: Server) -> list[Path]:
    spool = server.data_dir / "spool"
    return sorted(spool.glob("upload-*")) if spool.exists() else []


def wait_for_uploads(server: Server, count: int) -> None:
    """Until ``count`` uploads are admitted to the spool (their requests have reached the
    body); a generous deadline only catches a hang."""
    deadline = time.monotonic() + 30
    while len(uploads_in_flight(server)) != count:
        assert time.monotonic() < deadline, uploads_in_flight(server)
        time.sleep(0.05)


def raw_request(server: Server, path: str, token: str, length: int, body: bytes = b"",
                extra: str = "") -> socket.socket:
    """Send a request's headers declaring ``length`` body bytes, and ``body`` (which may
    be shorter: the rest never comes)."""
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n"
            f"{extra}\r\n")
    sock.sendall(head.encode() + body)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a socket timeout, 30 s,
    means it never did)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def problem_of(response: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def signer(server: Server, project: str) -> tuple[str, str]:
    name = unique("uploader")
    token = server.new_identity(name)
    server.cli("grant", "add", name, "signer", project)
    return name, token


def scan_refusals(server: Server, identity: str) -> list[str]:
    entries = server.cli("audit", "log", "--identity", identity, "--action", "artifact.scan",
                         "--json").json()
    return [e["details"]["code"] for e in entries if e["outcome"] == "refused"]


def test_scanning_an_upload_needs_a_signer_grant(server: Server, project: str) -> None:
    """Any authenticated identity could make the server spool and scan 4 GiB; now only one
    with a signer grant (on any key) can, and the refusal comes before the body."""
    name = unique("nogrant")
    token = server.new_identity(name)
    server.cli("grant", "add", name, "auditor", project)  # a grant, but not to sign
    with server.http(token) as http:
        r = http.post("/api/v1/scan", params={"name": "x.bin"}, content=b"x" * 1000)
    assert r.status_code == 403, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["detail"] == (f"identity {name} may not upload artifacts to scan: "
                                  "no signer grant")
    assert not uploads_in_flight(server)
    assert scan_refusals(server, name) == ["denied"]
    server.cli("grant", "add", name, "signer", new_key(server, project))  # on one key
    with server.http(token) as http:
        r = http.post("/api/v1/scan", params={"name": "x.bin"}, content=b"x" * 1000)
    assert r.status_code == 200, r.text


def test_uploads_in_flight_per_identity_are_limited(server: Server, project: str) -> None:
    name, token = signer(server, project)
    stalled = [raw_request(server, "/api/v1/scan?name=slow.bin", token, 1000, b"x" * 10)
               for _ in range(PER_IDENTITY)]
    try:
        wait_for_uploads(server, PER_IDENTITY)
        with server.http(token) as http:
            r = http.post("/api/v1/scan", params={"name": "one-more.bin"}, content=b"x" * 100)
        assert r.status_code == 429, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"] == "too_many_uploads"
        # Another identity is not held back by this one's uploads.
        _, other = signer(server, project)
        with server.http(other) as http:
            assert http.post("/api/v1/scan", content=b"x" * 100).status_code == 200
        # One ends (the client goes away): its spool directory goes, and a slot is free.
        stalled.pop().close()
        wait_for_uploads(server, PER_IDENTITY - 1)
        with server.http(token) as http:
            r = http.post("/api/v1/scan", params={"name": "one-more.bin"}, content=b"x" * 100)
        assert r.status_code == 200, r.text
    finally:
        for sock in stalled:
            sock.close()
    wait_for_uploads(server, 0)
    assert scan_refusals(server, name) == ["too_many_uploads"]


def test_the_spool_budget_is_shared(server: Server, project: str) -> None:
    """Uploads in flight reserve their declared length; one that does not fit in what is
    left of upload_spool_max_bytes gets 507 before its body is read."""
    _, big_token = signer(server, project)
    name, token = signer(server, project)
    big = raw_request(server, "/api/v1/scan?name=big.bin", big_token, LIMIT, b"x" * 10)
    try:
        wait_for_uploads(server, 1)
        with raw_request(server, "/api/v1/scan?name=more.bin", token,
                         SPOOL_BUDGET - LIMIT + 1,  # headers only: no body is sent
                         extra="Connection: close\r\n") as refused:
            status, problem = problem_of(read_until_closed(refused))
        assert status == 507
        assert problem["code"] == "spool_full"
        assert "upload_spool_max_bytes" in problem["detail"]
        # What still fits is taken.
        with server.http(token) as http:
            r = http.post("/api/v1/scan", content=b"y" * (SPOOL_BUDGET - LIMIT))
        assert r.status_code == 200, r.text
    finally:
        big.close()
    wait_for_uploads(server, 0)
    assert scan_refusals(server, name) == ["spool_full"]


def test_slow_clients_are_disconnected(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Headers that do not come within http_header_timeout_seconds, and a body that stops
    for http_body_idle_timeout_seconds, end the connection (and the upload, which leaves
    nothing in the spool); a body that keeps moving is taken however long it takes."""
    base = tmp_path_factory.mktemp("slow-clients")
    srv = scanning_server(base / "data", None, yara_rules(base / "yara"),
                          "http_header_timeout_seconds = 2\n"
                          "http_body_idle_timeout_seconds = 3\n")
    try:
        project = unique("slow")
        srv.cli("project", "create", project)
        srv.cli("grant", "add", "admin", "signer", project)
        host, port = srv.url.removeprefix("http://").split(":")
        for sent in (b"", b"POST /api/v1/sc"):  # nothing at all; half a request line
            with socket.create_connection((host, int(port)), timeout=30) as sock:
                sock.sendall(sent)
                started = time.monotonic()
                assert read_until_closed(sock) == b""  # closed, without an answer
                assert time.monotonic() - started >= 1.5

        # Headers, 1000 of the 100000 bytes declared, then nothing: 408, closed.
        with raw_request(srv, "/api/v1/scan?name=stalled.bin", srv.admin_token, 100_000,
                         b"z" * 1000) as sock:
            wait_for_uploads(srv, 1)
            status, problem = problem_of(read_until_closed(sock))
        assert status == 408
        assert problem["code"] == "request_timeout"
        assert "http_body_idle_timeout_seconds" in problem["detail"]
        assert not uploads_in_flight(srv)  # the partial upload is gone
        assert scan_refusals(srv, "admin") == ["request_timeout"]

        # Slow but moving: 5 pieces a second apart, longer than the idle deadline in all.
        pieces = [MARKER.encode()[:4] * 250 for _ in range(5)]
        with raw_request(srv, "/api/v1/scan?name=slow.bin", srv.admin_token,
                         sum(map(len, pieces)), extra="Connection: close\r\n") as sock:
            for piece in pieces:
                time.sleep(1)
                sock.sendall(piece)
            response = read_until_closed(sock)
        assert response.startswith(b"HTTP/1.1 200 "), response
        assert json.loads(response.partition(b"\r\n\r\n")[2])["size"] == 5000
    finally:
        srv.stop()
