"""Batch signing end to end (SQLite; the service tests cover PostgreSQL): ``signgate sign
FILE...`` and ``POST …/sign-batch`` against a real server, every signature checked by
``openssl dgst -verify``, refusals per item on the record, malformed batches refused whole
with a 4xx (never a 500) and nothing of them recorded."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import unique

# SQLite alone: the same decisions run on both backends in
# tests/integration/test_sign_batch_service.py
from tests.support.backends import sqlite_only as sqlite_only
from tests.support.server import Server, openssl


@pytest.fixture(scope="module")
def team(server: Server) -> tuple[str, str, str]:
    """A project, a key in it, and a CI identity that may sign with it: (ref, name, token)."""
    project = unique("batch")
    server.cli("project", "create", project)
    ref = f"{project}/release"
    server.cli("key", "create", ref)
    name = unique("ci")
    token = server.new_identity(name)
    server.cli("grant", "add", name, "signer", ref)
    return ref, name, token


def batch_path(ref: str) -> str:
    project, key = ref.split("/")
    return f"/api/v1/projects/{project}/keys/{key}/sign-batch"


def item(name: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"digest": hashlib.sha256(data).hexdigest(), "artifact_name": name, **extra}


def audit_head(server: Server) -> int:
    with server.http() as http:
        page = http.get("/api/v1/audit/verify").json()
    return int(page["head_seq"])


def openssl_verifies(public: Path, sig: Path, data: Path) -> bool:
    proc = subprocess.run([openssl(), "dgst", "-sha256", "-verify", str(public), "-signature",
                           str(sig), str(data)], capture_output=True, text=True)
    return proc.returncode == 0 and "Verified OK" in proc.stdout


def test_several_files_in_one_request_each_verified_by_openssl(
        server: Server, team: tuple[str, str, str], tmp_path: Path) -> None:
    ref, ci, token = team
    files = []
    for i in range(5):
        f = tmp_path / f"part-{i}.bin"
        f.write_bytes(f"release part {i}\n".encode() * (i + 1))
        files.append(f)
    out = server.cli("sign", *map(str, files), "--key", ref, "--json", "--no-timestamp",
                     token=token)
    receipts = out.json()
    assert [r["file"] for r in receipts] == [str(f) for f in files]
    public = tmp_path / "public.pem"
    public.write_text(server.cli("key", "public", ref).stdout)
    for f, r in zip(files, receipts, strict=True):
        assert r["signature_file"] == f"{f}.sig"
        assert Path(r["proof_file"]).exists()
        assert r["identity"] == ci
        assert r["digest"] == hashlib.sha256(f.read_bytes()).hexdigest()
        assert openssl_verifies(public, Path(r["signature_file"]), f)
    # One request, one group commit: consecutive entries, all proved in the same tree
    # (the checkpoint signed at that commit).
    seqs = [r["audit_seq"] for r in receipts]
    assert seqs == list(range(seqs[0], seqs[0] + 5))
    assert len({r["log_size"] for r in receipts}) == 1
    assert receipts[0]["log_size"] >= seqs[-1]
    # The text output: one line per file, as the one-file command writes it.
    text = server.cli("sign", *map(str, files[:2]), "--key", ref, "--no-timestamp",
                      token=token).stdout.splitlines()
    assert [line.split(" with ")[0] for line in text] == ["signed part-0.bin",
                                                          "signed part-1.bin"]
    assert f"-> {files[1]}.sig (raw, signature " in text[1]


def test_a_refused_file_gets_a_line_and_nothing_written(
        server: Server, team: tuple[str, str, str], tmp_path: Path) -> None:
    ref, _ci, token = team
    good = tmp_path / "good.bin"
    good.write_bytes(b"good")
    bad = tmp_path / "bad\x01name.bin"  # control characters: not a valid artifact name
    bad.write_bytes(b"bad")
    head = audit_head(server)
    out = server.cli("sign", str(good), str(bad), "--key", ref, "--no-timestamp",
                     token=token, check=False)
    assert out.returncode == 7, out.stderr  # invalid input
    refused = [line for line in out.stderr.splitlines() if line.startswith("signgate: ")]
    assert len(refused) == 1
    assert "control characters" in refused[0]
    assert out.stdout.startswith("signed good.bin with ")
    assert (tmp_path / "good.bin.sig").exists()
    assert not list(tmp_path.glob("bad*.sig*"))
    # Both decided and recorded: the signature and the refusal.
    assert audit_head(server) == head + 2


def test_output_and_name_take_one_file(server: Server, team: tuple[str, str, str],
                                       tmp_path: Path) -> None:
    ref, _ci, token = team
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"a")
    b.write_bytes(b"b")
    for extra in (["-o", str(tmp_path / "x.sig")], ["--name", "x"]):
        out = server.cli("sign", str(a), str(b), "--key", ref, *extra, token=token,
                         check=False)
        assert out.returncode == 7
        assert "with several files each result goes beside its file" in out.stderr
    assert not list(tmp_path.glob("*.sig"))


def test_items_are_decided_one_by_one(server: Server, team: tuple[str, str, str]) -> None:
    ref, ci, token = team
    items = [item("one.bin", b"1"), {"digest": "zz" * 32, "artifact_name": "two.bin"},
             item("three.bin", b"3", digest_algorithm="md5"),
             item("four.bin", b"4", metadata={"commit": "abc"})]
    head = audit_head(server)
    with server.http(token) as http:
        r = http.post(batch_path(ref), json={"items": items})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert [x["status"] for x in answer["results"]] == [200, 400, 400, 200]
    assert (answer["signed"], answer["pending"], answer["refused"]) == (2, 0, 2)
    assert answer["results"][1]["problem"]["code"] == "bad_digest"
    assert answer["results"][2]["problem"]["code"] == "unknown_digest_algorithm"
    first, last = answer["results"][0]["result"], answer["results"][3]["result"]
    assert first["receipt"]["identity"] == ci
    assert last["receipt"]["artifact_name"] == "four.bin"
    assert first["log_proof"]  # the same receipt as /sign: with its inclusion proof
    # Every item on the record, in order, in one commit.
    assert audit_head(server) == head + 4
    with server.http() as http:
        entries = http.get("/api/v1/audit", params={"after": head, "limit": 10}).json()
    outcomes = [(e["subject"], e["outcome"]) for e in entries["entries"]]
    assert outcomes == [("one.bin", "allowed"), ("two.bin", "refused"),
                        ("three.bin", "refused"), ("four.bin", "allowed")]


@pytest.mark.parametrize("body", [
    {"items": []},
    {"items": [{"digest": "00" * 32, "artifact_name": f"f{i}"} for i in range(1001)]},
    {"items": [{"digest": "0" * 129, "artifact_name": "too-long-digest"}]},
    {"items": [{"artifact_name": "no-digest"}]},
    {"items": [{"digest": "00" * 32, "artifact_name": "x", "colour": "red"}]},
    {"items": "not a list"},
    {},
], ids=["empty", "1001", "digest-too-long", "no-digest", "unknown-field", "not-a-list",
        "no-items"])
def test_a_malformed_batch_is_refused_whole(server: Server, team: tuple[str, str, str],
                                            body: dict[str, Any]) -> None:
    ref, _ci, token = team
    head = audit_head(server)
    with server.http(token) as http:
        r = http.post(batch_path(ref), json=body)
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["code"] == "invalid_request"
    assert problem["detail"].startswith("invalid request: ")
    assert audit_head(server) == head  # nothing signed, nothing recorded


def test_not_json_and_bad_token(server: Server, team: tuple[str, str, str]) -> None:
    ref, _ci, token = team
    with server.http(token) as http:
        r = http.post(batch_path(ref), content=b"{not json",
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    with server.http("not-a-token") as http:
        r = http.post(batch_path(ref), json={"items": [item("a", b"a"), item("b", b"b")]})
    assert r.status_code == 401  # the caller, not its items: one answer
    assert r.json()["code"] == "authentication_failed"


def test_a_key_that_needs_approvals_holds_each_item(server: Server,
                                                    team: tuple[str, str, str]) -> None:
    _ref, ci, token = team
    ref = f"{_ref.split('/')[0]}/approved"
    server.cli("key", "create", ref)
    server.cli("grant", "add", ci, "signer", ref)
    server.cli("key", "policy", ref, "--approvals", "1")
    approver = unique("approver")
    approver_token = server.new_identity(approver, "user")
    server.cli("grant", "add", approver, "approver", ref)
    items = [item("a.bin", b"a"), {"digest": "nothex", "artifact_name": "b.bin"},
             item("c.bin", b"c")]
    with server.http(token) as http:
        answer = http.post(batch_path(ref), json={"items": items}).json()
    assert [x["status"] for x in answer["results"]] == [202, 400, 202]
    held = [answer["results"][0]["request"], answer["results"][2]["request"]]
    assert [h["state"] for h in held] == ["pending", "pending"]
    assert held[0]["request_id"] != held[1]["request_id"]
    # Approved, the request is signed exactly as a single held signing would be.
    server.cli("approve", held[0]["request_id"], token=approver_token)
    with server.http(token) as http:
        shown = http.get(f"/api/v1/requests/{held[0]['request_id']}").json()
    assert shown["state"] == "signed"
    assert shown["result"]["receipt"]["artifact_name"] == "a.bin"
    # The command line: each file's request id, exit 11 (pending).
    out = server.cli("sign", "--key", ref, "--no-timestamp", *_two_files(server), token=token,
                     check=False)
    assert out.returncode == 11, out.stderr
    assert len(out.stdout.splitlines()) == 2


def _two_files(server: Server) -> list[str]:
    base = server.data_dir.parent / unique("held")
    base.mkdir()
    paths = []
    for n in ("x.bin", "y.bin"):
        (base / n).write_bytes(n.encode())
        paths.append(str(base / n))
    return paths


@pytest.mark.parametrize("fmt", ["cms", "openpgp"])
def test_other_detached_formats_sign_in_one_batch(server: Server, team: tuple[str, str, str],
                                                  tmp_path: Path, fmt: str) -> None:
    """CMS (the server assembles it with the chain) and OpenPGP (the client names the key,
    fetched once for the batch): every file verifies with signgate's own verifier."""
    ref, _ci, token = team
    files = []
    for i in range(3):
        f = tmp_path / f"lib-{i}.tar.gz"
        f.write_bytes(f"library {i}".encode() * 100)
        files.append(f)
    receipts = server.cli("sign", *map(str, files), "--key", ref, "--format", fmt, "--json",
                          token=token).json()
    assert len({r["log_size"] for r in receipts}) == 1  # one request, one commit
    root = tmp_path / "root.pem"
    root.write_text(server.cli("ca", "cert").stdout)
    cert = tmp_path / "signer.pem"
    cert.write_text(server.cli("key", "cert", ref).stdout)
    for f, r in zip(files, receipts, strict=True):
        assert r["format"] == fmt
        extra = ["--certificate", str(cert)] if fmt == "openpgp" else []
        verdict = server.cli("verify", str(f), "--signature", r["signature_file"], "--ca",
                             str(root), *extra, "--json").json()
        assert verdict["valid"] is True, verdict
