"""signgate asking two real witnesses (separate processes) to cosign its checkpoints: the
cosignatures land in the stored checkpoint, a fresh process learns each witness's size from
its 409, a witness that is down leaves the other's cosignature, and after a history
rewritten and re-signed with the log key, the witnesses refuse."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from signgate.config import load_settings
from signgate.service import log as log_reads
from signgate.service import projects
from signgate.service.caller import Caller
from signgate.service.context import Context
from signgate.service.factory import build_context
from signgate.service.witnessing import Witnessing
from signgate.store.models import AuditHead, LogCheckpoint, LogHash
from signgate.transparency.checkpoint import open_checkpoint
from signgate.transparency.note import open_note, parse_verifier_key
from tests.support.server import SIGNGATE
from tests.support.witness import Witness, two_witnesses


@pytest.fixture
def witnesses(tmp_path: Path) -> Iterator[list[Witness]]:
    with two_witnesses(tmp_path) as ws:
        yield ws


@pytest.fixture
def ctx(tmp_path: Path, witnesses: list[Witness]) -> Iterator[Context]:
    data = tmp_path / "data"
    subprocess.run([SIGNGATE, "init", "--data-dir", str(data)], check=True,
                   capture_output=True, env={"PATH": "/usr/bin:/bin"})
    listed = ", ".join(f'"{w.url} {w.key.verifier_key}"' for w in witnesses)
    with (data / "config.toml").open("a") as cfg:
        cfg.write(f"log_witnesses = [{listed}]\nlog_witness_quorum = 2\n")
    c = build_context(load_settings(data))
    key = log_reads.public_key(c)
    for w in witnesses:
        added = w.cli("add-log", "--origin", key.origin, "--key", key.verifier_key)
        assert added.returncode == 0, added.stderr
    c.admin = Caller((data / "admin.token").read_text().strip())  # type: ignore[attr-defined]
    yield c
    c.close()


def latest(ctx: Context) -> bytes:
    return log_reads.checkpoint(ctx)


def test_witnesses_cosign_and_the_checkpoint_carries_it(ctx: Context,
                                                       witnesses: list[Witness]) -> None:
    w = Witnessing(ctx.settings, ctx.db, ctx.log_hashes)
    projects.create(ctx, ctx.admin, "one")  # type: ignore[attr-defined]
    first = w.cosign_latest()
    assert first.witnesses == ("w1.example", "w2.example"), first.problems
    note = latest(ctx)
    assert open_note(note, [x.key for x in witnesses]).signatures  # both verify
    vkey = log_reads.public_key(ctx).verifier_key
    cp, _ = open_checkpoint(note, [parse_verifier_key(vkey)])
    assert cp.size == first.size
    with ctx.db.read() as session:
        assert session.get(LogCheckpoint, cp.size).cosignatures == 2  # type: ignore[union-attr]

    projects.create(ctx, ctx.admin, "two")  # type: ignore[attr-defined]
    # A fresh process: learns each witness's size from its 409.
    again = Witnessing(ctx.settings, ctx.db, ctx.log_hashes)
    grown = again.cosign_latest()
    assert grown.size > first.size
    assert grown.witnesses == ("w1.example", "w2.example"), grown.problems
    w.close()
    again.close()


def test_a_witness_down_leaves_one_cosignature(ctx: Context, witnesses: list[Witness]) -> None:
    w = Witnessing(ctx.settings, ctx.db, ctx.log_hashes)
    witnesses[1].stop()
    projects.create(ctx, ctx.admin, "three")  # type: ignore[attr-defined]
    got = w.cosign_latest()
    assert got.witnesses == ("w1.example",)
    assert len(got.problems) == 1
    assert "did not answer" in got.problems[0]
    w.close()


def test_witnesses_refuse_a_rewritten_history(ctx: Context, witnesses: list[Witness]) -> None:
    w = Witnessing(ctx.settings, ctx.db, ctx.log_hashes)
    projects.create(ctx, ctx.admin, "four")  # type: ignore[attr-defined]
    assert len(w.cosign_latest().witnesses) == 2
    # The owner of the database rebuilds the tree over an edited entry; the next write
    # signs a checkpoint of it with the log key.
    with ctx.db.write() as session:
        session.execute(LogHash.__table__.delete())
        session.execute(LogCheckpoint.__table__.delete())
        session.execute(update(AuditHead).values(tree_size=0, seq=AuditHead.seq))
        session.execute(update(AuditHead.__table__).values(tree_size=0))
    from sqlalchemy import text

    with ctx.db.write() as session:
        session.execute(text("UPDATE audit_entries SET subject = 'rewritten' WHERE seq = 2"))
    ctx.log_hashes = type(ctx.log_hashes)()  # what this process cached is the old tree
    projects.create(ctx, ctx.admin, "five")  # type: ignore[attr-defined]
    refused = w.cosign_latest()
    assert refused.witnesses == ()
    assert all("inconsistent" in p or "refused" in p for p in refused.problems), refused
    with ctx.db.read() as session:
        size = session.execute(select(AuditHead.tree_size)).scalar_one()
    assert refused.size == size
    w.close()


def test_signing_does_not_wait_for_a_witness_that_just_failed(
        ctx: Context, witnesses: list[Witness]) -> None:
    """A batch skips a witness that did not answer lately (it would wait its timeout each
    time); the catch-up (cosign_latest) asks it anyway and clears the mark."""
    w = Witnessing(ctx.settings, ctx.db, ctx.log_hashes)
    witnesses[1].stop()
    projects.create(ctx, ctx.admin, "five")  # type: ignore[attr-defined]
    note = latest(ctx)
    size = int(note.split(b"\n")[1])
    assert w.cosign(size, note).witnesses == ("w1.example",)
    witnesses[1].start()
    skipped = w.cosign(size, note)
    assert "w2.example" not in skipped.witnesses
    assert any("did not answer lately" in p for p in skipped.problems)
    assert w.cosign_latest().witnesses == ("w1.example", "w2.example")
    projects.create(ctx, ctx.admin, "six")  # type: ignore[attr-defined]
    grown = latest(ctx)
    assert w.cosign(int(grown.split(b"\n")[1]), grown).witnesses == ("w1.example",
                                                                     "w2.example")
    w.close()


def test_a_checkpoint_overtaken_by_a_later_one_gets_the_later_ones_cosignatures(
        ctx: Context) -> None:
    """Two server processes: the second's batch commits after the first's, and its
    checkpoint reaches the witnesses first. They cannot cosign the older one any more; the
    first batch is answered with the newer checkpoint (which holds its entries), cosigned
    by both, for its receipts to be proven in."""
    first = Witnessing(ctx.settings, ctx.db, ctx.log_hashes)
    second = Witnessing(ctx.settings, ctx.db, ctx.log_hashes)
    projects.create(ctx, ctx.admin, "seven")  # type: ignore[attr-defined]
    older = latest(ctx)
    projects.create(ctx, ctx.admin, "eight")  # type: ignore[attr-defined]
    newer = latest(ctx)
    newer_size = int(newer.split(b"\n")[1])
    assert second.cosign(newer_size, newer).witnesses == ("w1.example", "w2.example")
    got = first.cosign(int(older.split(b"\n")[1]), older)
    assert got.size == newer_size
    assert got.witnesses == ("w1.example", "w2.example")
    cp, _ = open_checkpoint(got.note, [parse_verifier_key(log_reads.public_key(ctx)
                                                          .verifier_key)])
    assert cp.size == newer_size
    first.close()
    second.close()
