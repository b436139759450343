"""A rewritten history is caught (issue 11), on SQLite and PostgreSQL, with two real
witness processes: after direct SQL on the database the witnesses refuse to cosign the
next checkpoint, 'signgate log monitor' fails against the checkpoint it stored, and an old
receipt's entry has no inclusion proof in the new tree (while the receipt alone still
verifies against its own, old checkpoint).

The servers use the 'catch-up' witness policy, so signing goes on while the witnesses
refuse: what is checked is that their cosignatures never come for the rewritten tree."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from signgate.transparency import merkle
from tests.e2e.test_audit import Db, audit_json
from tests.e2e.test_log import checkpoint, leaf_of, monitor, rewrite_from
from tests.e2e.test_receipts import cosigners, log_key, sign, signer, verify_receipt
from tests.support import postgres
from tests.support.server import Server
from tests.support.witness import two_witnesses, witnessed_server

BOTH = {"w1.example", "w2.example"}
# How long the witnesses' refusal is watched: the catch-up asks again after 1, 2, 4 s.
REFUSAL_WATCH_SECONDS = 5.0


@pytest.fixture
def witnessed(backend: str, tmp_path: Path) -> Iterator[Server]:
    """A server of the test's own on ``backend`` whose log both witnesses know (quorum 2,
    'catch-up')."""
    with ExitStack() as stack:
        url = stack.enter_context(postgres.temporary_database()) \
            if backend == "postgres" else None
        witnesses = stack.enter_context(two_witnesses(tmp_path))
        server = witnessed_server(tmp_path / "data", witnesses, "catch-up", url)
        stack.callback(server.stop)
        yield server


@dataclass
class Before:
    """What an outsider holds from before the rewrite: receipts, the monitor's state."""

    ref: str
    token: str
    vkey: str
    state: Path
    receipts: list[dict[str, Any]]
    artifacts: list[Path]
    size: int


def before_the_rewrite(server: Server, tmp_path: Path) -> Before:
    """Two signings with receipts, the monitor run once, the newest checkpoint cosigned by
    both witnesses."""
    ref, token = signer(server)
    receipts, artifacts = [], []
    for i in range(2):
        artifact = tmp_path / f"release-{i}.bin"
        artifact.write_bytes(b"release %d" % i)
        receipts.append(sign(server, artifact, ref, token))
        artifacts.append(artifact)
    vkey = log_key(server)
    state = tmp_path / "log.state"
    pinned = monitor(server, state, "--log-key", vkey)
    assert pinned.returncode == 0, pinned.stderr
    deadline = time.monotonic() + 60
    while cosigners(server) < BOTH:
        assert time.monotonic() < deadline, "the checkpoint was never cosigned by both"
        time.sleep(0.5)
    size, _ = checkpoint(server, vkey)
    assert size >= receipts[-1]["audit_seq"]
    return Before(ref, token, vkey, state, receipts, artifacts, size)


def sign_again(server: Server, b: Before, tmp_path: Path, name: str) -> None:
    artifact = tmp_path / name
    artifact.write_bytes(name.encode())
    sign(server, artifact, b.ref, b.token)


def assert_caught(server: Server, b: Before, receipt: int, after_size: int) -> None:
    """The three outside views after the rewrite: no cosignature for checkpoints past
    ``after_size``, the monitor failing, the old receipt's entry not in the new tree."""
    # (1) The witnesses refuse: the catch-up keeps asking, no cosignature ever lands.
    db = Db(server)
    deadline = time.monotonic() + REFUSAL_WATCH_SECONDS
    while time.monotonic() < deadline:
        assert not cosigners(server) & BOTH
        rows = db.rows("SELECT size, cosignatures FROM log_checkpoints WHERE size > ?",
                       [after_size])
        assert rows, "no checkpoint signed after the rewrite"
        assert all(count == 0 for _, count in rows), rows
        time.sleep(0.5)
    size, root = checkpoint(server, b.vkey)
    said = server.server_log()
    for name in sorted(BOTH):  # refused as inconsistent, not merely unreachable
        assert f"witness {name} refuses checkpoint {size} as inconsistent" in said, said

    # (2) The monitor, holding the checkpoint it verified before, does not accept it.
    caught = monitor(server, b.state)
    assert caught.returncode == 8, (caught.stdout, caught.stderr)
    assert "FORK" in caught.stderr or "ROLLBACK" in caught.stderr, caught.stderr

    # (3) The old receipt's entry has no proof in the new tree; the entry now at its
    # index has (the proof is right, the old entry is gone).
    r = b.receipts[receipt]
    proof_file = Path(r["proof_file"])
    extra = next(line for line in proof_file.read_text().split("\n")
                 if line.startswith("extra "))
    old_leaf = merkle.leaf_hash(base64.b64decode(extra[len("extra "):]))
    assert size > r["log_index"]
    with server.http(token="") as http:
        got = http.get("/log/proof/inclusion", params={"index": r["log_index"], "size": size})
    assert got.status_code == 200, got.text
    hashes = [base64.b64decode(h) for h in got.json()["hashes"]]
    assert not merkle.verify_inclusion(r["log_index"], size, old_leaf, hashes, root)
    now = next(e for e in audit_json(server) if e["seq"] == r["log_index"] + 1)
    assert merkle.verify_inclusion(r["log_index"], size, leaf_of(now), hashes, root)
    # The receipt alone still verifies against its own (old, cosigned) checkpoint.
    alone = verify_receipt(server, proof_file, b.artifacts[receipt], b.vkey)
    assert alone.returncode == 0, alone.stderr


def test_an_edited_entry_rehashed_and_resigned_is_caught(witnessed: Server,
                                                        tmp_path: Path) -> None:
    """(a) and (c): an entry edited, every later chain hash and the head recomputed, the
    tree rebuilt (log_hashes and checkpoints deleted, the tree size set to 0) so that the
    next writer re-signs the rewritten history with the log key itself: what an insider
    who owns the server can do. 'audit verify' is fooled; the outside views are not."""
    b = before_the_rewrite(witnessed, tmp_path)
    db = Db(witnessed)
    grant = next(e for e in audit_json(witnessed)
                 if e["action"] == "grant.add" and e["key"] == b.ref)
    assert grant["seq"] <= b.receipts[0]["log_index"]  # the receipts' entries are rehashed
    rewrite_from(db, grant["seq"], actor="nobody")
    db.execute("DELETE FROM log_hashes")
    db.execute("DELETE FROM log_checkpoints")
    db.execute("UPDATE audit_head SET tree_size = 0")
    sign_again(witnessed, b, tmp_path, "after.bin")  # the tree rebuilt and re-signed
    verified = witnessed.cli("audit", "verify", check=False)
    assert verified.returncode == 0, verified.stderr
    assert checkpoint(witnessed, b.vkey)[0] > b.size
    assert_caught(witnessed, b, 0, 0)


def test_the_newest_entries_deleted_and_the_log_grown_again_is_caught(
        witnessed: Server, tmp_path: Path) -> None:
    """(b): the newest entries (the last signing's among them) deleted with their
    signatures, tree hashes and checkpoints, the head moved back, then signing goes on
    until the log is past its old size."""
    b = before_the_rewrite(witnessed, tmp_path)
    gone = 2
    back = b.size - gone
    assert b.receipts[-1]["audit_seq"] > back  # the last receipt's entry is deleted
    db = Db(witnessed)
    db.execute("DELETE FROM signatures WHERE audit_seq > ?", [back])
    db.execute("DELETE FROM audit_entries WHERE seq > ?", [back])
    db.execute("DELETE FROM log_checkpoints WHERE size > ?", [back])
    db.execute("DELETE FROM log_hashes WHERE id >= ?", [merkle.stored_hash_count(back)])
    prev = db.rows("SELECT entry_hash FROM audit_entries WHERE seq = ?", [back])[0][0]
    db.execute("UPDATE audit_head SET seq = ?, entry_hash = ?, tree_size = ?",
               [back, prev, back])
    for i in range(gone + 1):
        sign_again(witnessed, b, tmp_path, f"after-{i}.bin")
    assert checkpoint(witnessed, b.vkey)[0] > b.size
    assert_caught(witnessed, b, len(b.receipts) - 1, back)
