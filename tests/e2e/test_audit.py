"""The audit log end to end: filters and formats of 'signgate audit log', paging over HTTP,
and 'signgate audit verify' against a database edited behind signgate's back."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from signgate.audit.model import compute_hash
from tests.conftest import unique
from tests.support.server import CliResult, Server

CSV_HEADER = ["seq", "time", "actor", "action", "outcome", "subject", "project", "key",
              "details", "prev_hash", "entry_hash"]
AUDIT_COLUMNS = ["time", "actor", "action", "outcome", "subject", "project", "key_ref",
                 "details", "prev_hash", "entry_hash"]


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def audit_json(server: Server, *args: str, token: str | None = None) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = server.cli("audit", "log", "--json", *args,
                                               token=token).json()
    return entries


# -- filters and formats on a shared server -------------------------------------------


def api(server: Server, method: str, path: str, token: str | None = None,
        ok: tuple[int, ...] = (200, 201), **kwargs: Any) -> Any:
    """Set-up straight over HTTP (the CLI's audit commands are what these tests exercise)."""
    with server.http(token) as http:
        r = http.request(method, "/api/v1" + path, **kwargs)
    assert r.status_code in ok, r.text
    return r.json()


def api_sign(server: Server, ref: str, data: bytes, token: str,
             ok: tuple[int, ...] = (200,)) -> Any:
    project, key = ref.split("/")
    return api(server, "POST", f"/projects/{project}/keys/{key}/sign", token, ok,
               json={"digest": hashlib.sha256(data).hexdigest(), "artifact_name": "a.bin"})


def setup_history(server: Server, p: str, q: str, ci: str, other: str) -> None:
    """Two projects with a key each, two CI identities, signings and a refusal."""
    for name in (p, q):
        api(server, "POST", "/projects", json={"name": name})
    api(server, "POST", f"/projects/{p}/keys", json={"name": "release"})
    api(server, "POST", f"/projects/{q}/keys", json={"name": "nightly", "algorithm": "ed25519"})
    tokens = {}
    for name in (ci, other):
        tokens[name] = api(server, "POST", "/identities", json={"name": name})["token"]
    api(server, "POST", "/grants", json={"identity": ci, "role": "signer",
                                         "scope": f"{p}/release"})
    api(server, "POST", "/grants", json={"identity": other, "role": "signer", "scope": q})
    for i in range(3):
        api_sign(server, f"{p}/release", f"build {i}".encode(), tokens[ci])
    api_sign(server, f"{q}/nightly", b"nightly", tokens[other])
    api_sign(server, f"{p}/release", b"nightly", tokens[other], ok=(403,))
    api(server, "POST", f"/projects/{p}/keys/release/rotate")


@pytest.fixture(scope="module")
def history(server: Server) -> dict[str, Any]:
    names = {"p": unique("audit-p"), "q": unique("audit-q"), "ci": unique("audit-ci"),
             "other": unique("audit-other")}
    setup_history(server, names["p"], names["q"], names["ci"], names["other"])
    return names


def test_filters(server: Server, history: dict[str, Any]) -> None:
    p, q, ci, other = history["p"], history["q"], history["ci"], history["other"]
    everything = audit_json(server)
    assert [e["seq"] for e in everything] == list(range(1, len(everything) + 1))

    by_ci = audit_json(server, "--identity", ci)
    assert [(e["action"], e["outcome"]) for e in by_ci] == [("signature.create", "allowed")] * 3
    assert by_ci == [e for e in everything if e["actor"] == ci]

    by_key = audit_json(server, "--key", f"{p}/release")
    assert by_key == [e for e in everything if e["key"] == f"{p}/release"]
    assert [e["action"] for e in by_key] == [
        "key.create", "grant.add", "signature.create", "signature.create",
        "signature.create", "signature.create", "key.rotate"]
    assert [e["outcome"] for e in by_key].count("refused") == 1
    refusal = next(e for e in by_key if e["outcome"] == "refused")
    assert refusal["actor"] == other
    assert refusal["details"]["reason"] == (
        f"identity {other} may not sign with {p}/release: no signer grant")

    by_project = audit_json(server, "--project", q)
    assert by_project == [e for e in everything if e["project"] == q]
    assert [e["action"] for e in by_project] == [
        "project.create", "ca.create", "key.create", "grant.add", "signature.create"]

    signatures = audit_json(server, "--action", "signature.create", "--project", p)
    assert [(e["actor"], e["outcome"]) for e in signatures] == [
        (ci, "allowed")] * 3 + [(other, "refused")]
    combined = audit_json(server, "--action", "signature.create", "--identity", other)
    assert [(e["project"], e["outcome"]) for e in combined] == [
        (q, "allowed"), (p, "refused")]

    assert audit_json(server, "--identity", "nobody-at-all") == []
    unknown = server.cli("audit", "log", "--action", "signature.delete", check=False)
    assert unknown.returncode == 7
    assert unknown.stderr.startswith("signgate: unknown action 'signature.delete'")
    bad_time = server.cli("audit", "log", "--since", "last tuesday", check=False)
    assert bad_time.returncode == 7
    assert bad_time.stderr.startswith("signgate: invalid time 'last tuesday'")


def test_time_window(server: Server, history: dict[str, Any]) -> None:
    mine = audit_json(server, "--project", history["p"])
    assert len(mine) >= 6
    times = [parse_time(e["time"]) for e in mine]
    assert times == sorted(times)
    lo, hi = mine[2]["time"], mine[-2]["time"]

    since = audit_json(server, "--project", history["p"], "--since", lo)
    assert since == [e for e, t in zip(mine, times, strict=True) if t >= parse_time(lo)]
    assert since[0]["seq"] == mine[2]["seq"]
    until = audit_json(server, "--project", history["p"], "--until", hi)
    assert until == [e for e, t in zip(mine, times, strict=True) if t < parse_time(hi)]
    assert until[-1]["seq"] == mine[-3]["seq"]  # --until is exclusive
    window = audit_json(server, "--project", history["p"], "--since", lo, "--until", hi)
    assert window == mine[2:-2]
    # The same instant written with an offset means the same window.
    lo_offset = parse_time(lo).astimezone().isoformat()
    assert audit_json(server, "--project", history["p"], "--since", lo_offset,
                      "--until", hi) == window
    assert audit_json(server, "--since", "2999-01-01T00:00:00Z") == []


def test_csv_and_text(server: Server, history: dict[str, Any]) -> None:
    p = history["p"]
    as_json = audit_json(server, "--project", p)
    out = server.cli("audit", "log", "--project", p, "--csv").stdout
    reader = csv.DictReader(io.StringIO(out))
    assert reader.fieldnames == CSV_HEADER
    rows = list(reader)
    assert len(rows) == len(as_json)
    for row, e in zip(rows, as_json, strict=True):
        assert int(row["seq"]) == e["seq"]
        assert row["time"] == e["time"]
        assert row["actor"] == e["actor"]
        assert row["action"] == e["action"]
        assert row["outcome"] == e["outcome"]
        assert row["subject"] == e["subject"]
        assert row["project"] == e["project"]
        assert row["key"] == (e["key"] or "")
        assert json.loads(row["details"]) == e["details"]
        assert row["prev_hash"] == e["prev_hash"]
        assert row["entry_hash"] == e["entry_hash"]

    text = server.cli("audit", "log", "--project", p).stdout.splitlines()
    assert text[0].split() == ["SEQ", "TIME", "ACTOR", "ACTION", "OUTCOME", "SUBJECT", "KEY",
                               "DETAILS"]
    assert len(text) == len(as_json) + 1
    for line, e in zip(text[1:], as_json, strict=True):
        cells = line.split()
        assert cells[:5] == [str(e["seq"]), e["time"], e["actor"], e["action"], e["outcome"]]
    refused_line = next(line for line in text if " refused " in line)
    assert f"may not sign with {p}/release: no signer grant" in refused_line
    signed_line = next(line for line in text if "signature.create" in line
                       and " allowed " in line)
    first_sig = next(e for e in as_json if e["action"] == "signature.create")
    assert f"v1 sha256:{first_sig['details']['digest'][:16]}" in signed_line


def test_project_auditor_reads_only_its_project(server: Server,
                                               history: dict[str, Any]) -> None:
    p, q = history["p"], history["q"]
    reader = unique("p-auditor")
    token = server.new_identity(reader, kind="user")
    server.cli("grant", "add", reader, "auditor", p)
    seen = audit_json(server, token=token)
    assert seen
    assert {e["project"] for e in seen} == {p}
    assert seen == audit_json(server, "--project", p)
    denied = server.cli("audit", "log", "--project", q, token=token, check=False)
    assert denied.returncode == 4
    assert denied.stderr == (
        f"signgate: identity {reader} may not read the audit log of {q}: no auditor grant\n")


def test_paging_over_http(server: Server, history: dict[str, Any]) -> None:
    everything = audit_json(server)
    seen: list[int] = []
    after, pages = 0, 0
    with server.http() as http:
        while True:
            r = http.get("/api/v1/audit", params={"after": after, "limit": 2})
            assert r.status_code == 200, r.text
            page = r.json()
            pages += 1
            assert 1 <= len(page["entries"]) <= 2
            seen.extend(e["seq"] for e in page["entries"])
            if page["next_after"] is None:
                break
            assert page["next_after"] == page["entries"][-1]["seq"]
            assert len(page["entries"]) == 2
            after = page["next_after"]
        # Paging within a filter, too.
        filtered: list[int] = []
        after = 0
        while True:
            page = http.get("/api/v1/audit", params={"after": after, "limit": 2,
                                                     "project": history["p"]}).json()
            filtered.extend(e["seq"] for e in page["entries"])
            if page["next_after"] is None:
                break
            after = page["next_after"]
        too_big = http.get("/api/v1/audit", params={"limit": 5001})
        assert too_big.status_code == 422
    all_seqs = [e["seq"] for e in everything]
    assert len(seen) == len(set(seen))
    assert seen[: len(all_seqs)] == all_seqs  # entries appended meanwhile come last
    assert seen == sorted(seen)
    assert pages >= len(all_seqs) // 2
    assert filtered == [e["seq"] for e in everything if e["project"] == history["p"]]


# -- tampering, on a server of each test's own -----------------------------------------


class Db:
    """Direct access to a server's database, behind signgate's back."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.pg = server.database_url is not None

    @contextmanager
    def connect(self) -> Iterator[Any]:
        if self.pg:
            assert self.server.database_url is not None
            url = self.server.database_url.replace("postgresql+psycopg://", "postgresql://")
            with psycopg.connect(url) as conn:
                yield conn
        else:
            conn = sqlite3.connect(self.server.data_dir / "signgate.db", timeout=30)
            try:
                with conn:
                    yield conn
            finally:
                conn.close()

    def q(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.pg else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self.connect() as conn:
            conn.execute(self.q(sql), tuple(params))

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.connect() as conn:
            return [tuple(r) for r in conn.execute(self.q(sql), tuple(params)).fetchall()]

    def entry(self, seq: int) -> tuple[Any, ...]:
        cols = ", ".join(AUDIT_COLUMNS)
        return self.rows(f"SELECT {cols} FROM audit_entries WHERE seq = ?", [seq])[0]

    def set_entry(self, seq: int, values: Sequence[Any]) -> None:
        assignments = ", ".join(f"{c} = ?" for c in AUDIT_COLUMNS)
        self.execute(f"UPDATE audit_entries SET {assignments} WHERE seq = ?",
                     [*values, seq])

    def head(self) -> tuple[int, str]:
        seq, h = self.rows("SELECT seq, entry_hash FROM audit_head WHERE id = 1")[0]
        return int(seq), str(h)


def populate(server: Server) -> int:
    """Some history: project, key, identity, grant, a few signings. Returns the head seq,
    after checking that the untampered log verifies."""
    api(server, "POST", "/projects", json={"name": "tamper"})
    api(server, "POST", "/projects/tamper/keys", json={"name": "k"})
    token = api(server, "POST", "/identities", json={"name": "ci"})["token"]
    api(server, "POST", "/grants", json={"identity": "ci", "role": "signer",
                                         "scope": "tamper/k"})
    for i in range(3):
        api_sign(server, "tamper/k", bytes([i]) * 100, token)
    # init, root CA, TSA, log key, project, its issuing CA, key, identity, grant, three
    # signings
    assert_intact(server, 12)
    return 12


def assert_intact(server: Server, entries: int) -> None:
    intact = server.cli("audit", "verify")
    assert intact.stdout.startswith(f"audit log intact: {entries} entries, head {entries} ")
    assert intact.stderr == ""
    report = server.cli("audit", "verify", "--json").json()
    assert report == {"ok": True, "entries": entries, "head_seq": entries,
                      "head_hash": report["head_hash"], "first_bad_seq": None,
                      "problem": None}
    assert intact.stdout.split()[-1] == report["head_hash"]
    assert report["head_hash"] == Db(server).head()[1]


def assert_broken(server: Server, seq: int, *phrases: str) -> None:
    text = server.cli("audit", "verify", check=False)
    assert text.returncode == 8, text
    assert text.stdout == ""
    assert text.stderr.startswith(f"signgate: audit log BROKEN at entry {seq}: "), text.stderr
    assert text.stderr.count("\n") == 1
    for phrase in phrases:
        assert phrase in text.stderr, (phrase, text.stderr)
    as_json: CliResult = server.cli("audit", "verify", "--json", check=False)
    assert as_json.returncode == 8, as_json
    report = as_json.json()
    assert report["ok"] is False
    assert report["first_bad_seq"] == seq
    assert report["problem"] == text.stderr.split(": ", 2)[2].strip()
    with server.http() as http:
        r = http.get("/api/v1/audit/verify")
    assert r.status_code == 200
    assert r.headers["x-signgate-audit"] == "broken"


def test_edited_entry(fresh_server: Server) -> None:
    head = populate(fresh_server)
    db = Db(fresh_server)
    n = 9  # the grant
    original = db.entry(n)

    db.execute("UPDATE audit_entries SET actor = 'mallory' WHERE seq = ?", [n])
    assert_broken(fresh_server, n, f"entry {n} does not match its hash")
    # The log still reads, edit and all.
    assert audit_json(fresh_server, "--action", "grant.add")[0]["actor"] == "mallory"
    db.set_entry(n, original)
    assert_intact(fresh_server, head)

    details = json.loads(original[AUDIT_COLUMNS.index("details")])
    details["role"] = "admin"
    db.execute("UPDATE audit_entries SET details = ? WHERE seq = ?",
               [json.dumps(details, sort_keys=True, separators=(",", ":")), n])
    assert_broken(fresh_server, n, f"entry {n} does not match its hash")
    db.execute("UPDATE audit_entries SET details = ? WHERE seq = ?", ["{not json", n])
    assert_broken(fresh_server, n, f"entry {n} was edited: its details are not valid JSON")
    db.set_entry(n, original)

    earlier: Any = datetime(2001, 1, 1, tzinfo=UTC) if db.pg else "2001-01-01 00:00:00.000000"
    db.execute("UPDATE audit_entries SET time = ? WHERE seq = ?", [earlier, n])
    assert audit_json(fresh_server, "--action", "grant.add")[0]["time"].startswith("2001-01-01")
    assert_broken(fresh_server, n, f"entry {n} does not match its hash")
    db.set_entry(n, original)
    assert_intact(fresh_server, head)


def test_deleted_entry(fresh_server: Server) -> None:
    head = populate(fresh_server)
    db = Db(fresh_server)
    n = 4
    original = db.entry(n)
    db.execute("DELETE FROM audit_entries WHERE seq = ?", [n])
    assert_broken(fresh_server, n, f"entry {n} is missing", f"resumes at {n + 1}")
    db.execute(f"INSERT INTO audit_entries (seq, {', '.join(AUDIT_COLUMNS)}) "
               f"VALUES (?, {', '.join('?' for _ in AUDIT_COLUMNS)})", [n, *original])
    assert_intact(fresh_server, head)
    db.execute("DELETE FROM audit_entries WHERE seq IN (3, 4, 5)")
    assert_broken(fresh_server, 3, "entries 3-5 are missing")


def test_swapped_entries(fresh_server: Server) -> None:
    populate(fresh_server)
    db = Db(fresh_server)
    n = 6
    a, b = db.entry(n), db.entry(n + 1)
    db.set_entry(n, b)
    db.set_entry(n + 1, a)
    assert db.entry(n) == b
    assert_broken(fresh_server, n, f"entry {n} does not match its hash")


def test_deleted_last_entry(fresh_server: Server) -> None:
    head = populate(fresh_server)
    db = Db(fresh_server)
    db.execute("DELETE FROM audit_entries WHERE seq = ?", [head])
    assert db.head()[0] == head  # the head row still points at the deleted entry
    assert_broken(fresh_server, head, f"entries {head}-{head} are missing")


def test_forged_entry_at_the_end(fresh_server: Server) -> None:
    head = populate(fresh_server)
    db = Db(fresh_server)
    last = audit_json(fresh_server)[-1]
    assert last["seq"] == head
    seq = head + 1
    when = parse_time(last["time"])
    details = {"signature_id": "forged", "key_version": 1, "digest_algorithm": "sha256",
               "digest": "00" * 32, "format": "raw", "signature_sha256": "00" * 32}
    entry_hash = compute_hash(seq, when, "ci", "signature.create", "allowed", "backdoor.bin",
                              "tamper", "tamper/k", details, last["entry_hash"])
    stored_time: Any = when if db.pg else db.entry(head)[0]
    db.execute(
        "INSERT INTO audit_entries (seq, time, actor, action, outcome, subject, project, "
        "key_ref, details, prev_hash, entry_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [seq, stored_time, "ci", "signature.create", "allowed", "backdoor.bin", "tamper",
         "tamper/k", json.dumps(details, sort_keys=True, separators=(",", ":")),
         last["entry_hash"], entry_hash],
    )
    # The forged entry is chained correctly: only the head row gives it away.
    forged = audit_json(fresh_server)[-1]
    assert forged["seq"] == seq
    assert forged["entry_hash"] == entry_hash
    assert forged["prev_hash"] == last["entry_hash"]
    assert db.head()[0] == head
    assert_broken(fresh_server, seq, f"the chain head (entry {head}) does not match the last "
                  f"entry ({seq})")
