"""The transparency log end to end: checkpoints signed by the log key, inclusion proofs of
real audit entries, and 'signgate log monitor' catching a rollback and rewritten
histories made with direct SQL (and re-signed with the log key itself, as an insider who
owns the server could)."""

from __future__ import annotations

import base64
from datetime import datetime
from pathlib import Path
from typing import Any

from signgate.audit.model import entry_bytes, time_text
from signgate.transparency import merkle
from signgate.transparency.checkpoint import open_checkpoint
from signgate.transparency.note import parse_verifier_key
from tests.e2e.test_audit import Db, api, api_sign, audit_json
from tests.support.server import Server


def setup(server: Server) -> str:
    api(server, "POST", "/projects", json={"name": "logged"})
    api(server, "POST", "/projects/logged/keys", json={"name": "k"})
    token: str = api(server, "POST", "/identities", json={"name": "ci"})["token"]
    api(server, "POST", "/grants", json={"identity": "ci", "role": "signer",
                                         "scope": "logged/k"})
    return token


def checkpoint(server: Server, vkey: str) -> tuple[int, bytes]:
    with server.http(token="") as http:
        note = http.get("/log/checkpoint")
    assert note.status_code == 200, note.text
    cp, _ = open_checkpoint(note.content, [parse_verifier_key(vkey)])
    return cp.size, cp.root_hash


def leaf_of(entry: dict[str, Any]) -> bytes:
    """An audit entry as 'audit log --json' shows it, as the log's leaf hash."""
    import json

    when = datetime.fromisoformat(entry["time"].replace("Z", "+00:00"))
    data = entry_bytes(entry["seq"], time_text(when), entry["actor"], entry["action"],
                       entry["outcome"], entry["subject"], entry["project"], entry["key"],
                       json.dumps(entry["details"], sort_keys=True, separators=(",", ":"),
                                  ensure_ascii=False), entry["prev_hash"])
    return merkle.leaf_hash(data)


def monitor(server: Server, state: Path, *args: str) -> Any:
    return server.cli("log", "monitor", "--state", str(state), *args, check=False)


def test_every_entry_is_in_the_signed_tree(server: Server) -> None:
    key = server.cli("log", "public-key", "--json", token="").json()
    assert key["verifier_key"].startswith(key["origin"] + "+")
    assert "BEGIN PUBLIC KEY" in key["public_key_pem"]
    token = setup(server)
    receipt = api_sign(server, "logged/k", b"release 1.0", token)["receipt"]
    size, root = checkpoint(server, key["verifier_key"])
    entries = audit_json(server)
    assert size >= receipt["audit_seq"]
    assert entries[0]["action"] == "signgate.init"
    assert any(e["action"] == "log.create" for e in entries)
    for entry in (entries[0], entries[receipt["audit_seq"] - 1], entries[size - 1]):
        index = entry["seq"] - 1
        with server.http(token="") as http:
            proof = http.get("/log/proof/inclusion", params={"index": index, "size": size})
        assert proof.status_code == 200, proof.text
        hashes = [base64.b64decode(h) for h in proof.json()["hashes"]]
        assert merkle.verify_inclusion(index, size, leaf_of(entry), hashes, root)
        assert not merkle.verify_inclusion(index, size, leaf_of({**entry, "subject": "x"}),
                                           hashes, root)
    with server.http(token="") as http:
        bad = http.get("/log/proof/inclusion", params={"index": size, "size": size})
        beyond = http.get("/log/proof/consistency", params={"old": 1, "new": size + 10**6})
    assert bad.status_code == 400
    assert beyond.status_code == 404


def test_monitor_follows_growth_and_catches_a_rollback(fresh_server: Server,
                                                       tmp_path: Path) -> None:
    token = setup(fresh_server)
    vkey = fresh_server.cli("log", "public-key", "--json", token="").json()["verifier_key"]
    state = tmp_path / "log.state"
    first = monitor(fresh_server, state, "--log-key", vkey)
    assert first.returncode == 0, first.stderr
    assert "first run: pinned" in first.stdout
    assert state.stat().st_mode & 0o777 == 0o600
    for i in range(3):
        api_sign(fresh_server, "logged/k", bytes([i]) * 10, token)
    grew = monitor(fresh_server, state, "--json")
    assert grew.returncode == 0, grew.stderr
    result = grew.json()
    assert result["size"] == result["previous_size"] + 3
    same = monitor(fresh_server, state)
    assert "unchanged at" in same.stdout

    # Delete the newest two entries behind signgate's back and move everything back.
    db = Db(fresh_server)
    size = result["size"]
    db.execute("DELETE FROM signatures WHERE audit_seq > ?", [size - 2])
    db.execute("DELETE FROM audit_entries WHERE seq > ?", [size - 2])
    db.execute("DELETE FROM log_checkpoints WHERE size > ?", [size - 2])
    db.execute("DELETE FROM log_hashes WHERE id >= ?", [merkle.stored_hash_count(size - 2)])
    prev = db.rows("SELECT entry_hash FROM audit_entries WHERE seq = ?", [size - 2])[0][0]
    db.execute("UPDATE audit_head SET seq = ?, entry_hash = ?, tree_size = ?",
               [size - 2, prev, size - 2])
    assert fresh_server.cli("audit", "verify").returncode == 0  # the chain alone is fooled
    rolled = monitor(fresh_server, state)
    assert rolled.returncode == 8
    assert "ROLLBACK" in rolled.stderr
    assert state.with_name(f"log.state.conflict-{size - 2}.note").exists()
    # Signing on grows the log past the old size again: a fork now, still caught.
    for i in range(4):
        api_sign(fresh_server, "logged/k", b"after" + bytes([i]), token)
    forked = monitor(fresh_server, state)
    assert forked.returncode == 8
    assert "FORK" in forked.stderr
    assert "does not extend the tree" in forked.stderr


def test_monitor_catches_a_history_rewritten_and_resigned(fresh_server: Server,
                                                          tmp_path: Path) -> None:
    """The insider case: an entry edited, every later chain hash and the head recomputed,
    the tree rebuilt and the checkpoint re-signed with the log key itself (the next
    writer rebuilds the tree from the edited entries and signs it). The chain verifies;
    the monitor, holding the checkpoint it verified before, does not accept it."""
    token = setup(fresh_server)
    for i in range(3):
        api_sign(fresh_server, "logged/k", bytes([i]) * 10, token)
    vkey = fresh_server.cli("log", "public-key", "--json", token="").json()["verifier_key"]
    state = tmp_path / "log.state"
    assert monitor(fresh_server, state, "--log-key", vkey).returncode == 0
    size_before, root_before = checkpoint(fresh_server, vkey)

    db = Db(fresh_server)
    grant = next(e for e in audit_json(fresh_server) if e["action"] == "grant.add")
    rewrite_from(db, grant["seq"], actor="nobody")
    # The chain is consistent again, but the entries no longer hash to the signed tree.
    caught = fresh_server.cli("audit", "verify", check=False)
    assert caught.returncode == 8
    assert (f"the entries do not hash to the log's signed checkpoint of size {size_before}: "
            f"entry {grant['seq']} differs from the leaf logged for it") in caught.stderr
    db.execute("DELETE FROM log_hashes")
    db.execute("DELETE FROM log_checkpoints")
    db.execute("UPDATE audit_head SET tree_size = 0")
    api_sign(fresh_server, "logged/k", b"next", token)  # the tree rebuilt and re-signed
    # Now the database agrees with itself everywhere: only an outside view can tell.
    assert fresh_server.cli("audit", "verify").returncode == 0
    size_after, root_after = checkpoint(fresh_server, vkey)
    assert size_after == size_before + 1
    rewritten = monitor(fresh_server, state)
    assert rewritten.returncode == 8
    assert "FORK" in rewritten.stderr
    # The entry as first logged no longer has a proof against the new tree.
    with fresh_server.http(token="") as http:
        proof = http.get("/log/proof/inclusion",
                         params={"index": grant["seq"] - 1, "size": size_after}).json()
    hashes = [base64.b64decode(h) for h in proof["hashes"]]
    assert not merkle.verify_inclusion(grant["seq"] - 1, size_after, leaf_of(grant), hashes,
                                       root_after)
    assert root_after != root_before


def rewrite_from(db: Db, seq: int, actor: str) -> None:
    """Edit entry ``seq``'s actor and recompute its hash, every later hash and the head,
    as someone with write access to the database can."""
    import hashlib

    rows = db.rows("SELECT seq, time, actor, action, outcome, subject, project, key_ref, "
                   "details, prev_hash FROM audit_entries WHERE seq >= ? ORDER BY seq", [seq])
    prev = rows[0][-1]
    for row in rows:
        n, when, who, action, outcome, subject, project, key_ref, details, _ = row
        if n == seq:
            who = actor
        stamp = when if isinstance(when, datetime) else datetime.fromisoformat(str(when))
        digest = hashlib.sha256(entry_bytes(n, time_text(stamp), who, action, outcome,
                                            subject, project, key_ref, details,
                                            prev)).hexdigest()
        db.execute("UPDATE audit_entries SET actor = ?, prev_hash = ?, entry_hash = ? "
                   "WHERE seq = ?", [who, prev, digest, n])
        prev = digest
    db.execute("UPDATE audit_head SET entry_hash = ?", [prev])
