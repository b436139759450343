"""Asking the configured witnesses to cosign the log's checkpoints (C2SP tlog-witness).

After a checkpoint is committed, each witness in ``log_witnesses`` is sent it with the
consistency proof from the size that witness last cosigned (learnt from its 409 answer
when this process does not know it yet); the witness checks the proof against what it
cosigned before and answers with a timestamped cosignature. The cosignatures are added to
the stored checkpoint note, so that receipts and ``GET /log/checkpoint`` carry them.

A witness that has moved past a size (it cosigned a later checkpoint) cannot cosign an
older one; the later one, which extends it, is what counts. A witness that refuses a
checkpoint as inconsistent (422) has seen another history: that is logged loudly, never
retried with the same history.

Signing asks here after each batch commits (``pipeline/receipts.py``) and applies
``log_witness_policy``: 'refuse' withholds the batch's signatures when fewer than
``log_witness_quorum`` witnesses cosigned; 'catch-up' delivers them and starts the
background catch-up (:meth:`Witnessing.catch_up`), which keeps asking for the newest
checkpoint, with backoff, until the quorum cosigned it or the process stops.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
from sqlalchemy import select, update

from signgate import metrics
from signgate.audit.tree import HashCache, LogTree
from signgate.config import Settings
from signgate.errors import Conflict, ErrorCode, SigngateError, Unavailable
from signgate.service.witness_client import add_checkpoint
from signgate.store.db import Database
from signgate.store.models import AuditHead, LogCheckpoint
from signgate.transparency.cosignature import CosignatureVerifier, parse_cosigner_key
from signgate.transparency.note import Signature, split_note
from signgate.transparency.witness_protocol import add_signatures

log = logging.getLogger("signgate.witness")


@dataclass(frozen=True)
class Witness:
    url: str
    verifier: CosignatureVerifier

    @classmethod
    def parse(cls, setting: str) -> Witness:
        url, _, key = setting.partition(" ")
        return cls(url, parse_cosigner_key(key.strip()))


@dataclass(frozen=True)
class Cosigned:
    size: int
    witnesses: tuple[str, ...]  # names of the witnesses whose cosignature it carries
    problems: tuple[str, ...]  # one sentence per witness that did not cosign
    note: bytes = b""  # the checkpoint note with the cosignatures gathered by this call


# The catch-up's waits between rounds: doubling from 1 s up to a minute.
CATCH_UP_FIRST_WAIT, CATCH_UP_MAX_WAIT = 1.0, 60.0
# A witness that did not answer is not waited for by signing batches for this long (each
# would wait log_witness_timeout_seconds for it); the catch-up still asks it every round.
DOWN_FOR = 30.0


class Witnessing:
    """The witnesses of ``settings``; thread-safe, one per process (``Context.witnessing``).

    It reads the log through ``db`` and the tree's shared ``log_hashes`` only: it is built
    by the composition root beside the context, not on it."""

    def __init__(self, settings: Settings, db: Database, log_hashes: HashCache) -> None:
        self.db = db
        self.log_hashes = log_hashes
        self.witnesses = [Witness.parse(w) for w in settings.log_witnesses]
        self.quorum = settings.log_witness_quorum
        self.refuse = settings.log_witness_policy == "refuse"
        self._sizes: dict[str, int] = {}  # the size each witness last cosigned, as known
        self._down_until: dict[str, float] = {}  # monotonic time, for witnesses not answering
        self._lock = threading.Lock()
        self._http = httpx.Client(timeout=float(settings.log_witness_timeout_seconds))
        self._pool = ThreadPoolExecutor(max(1, len(self.witnesses)),
                                        thread_name_prefix="signgate-witness")
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._catching_up: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.witnesses)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        thread = self._catching_up
        if thread is not None:
            thread.join(timeout=10)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._http.close()

    def catch_up(self) -> None:
        """Make sure a background thread is asking the witnesses to cosign the newest
        checkpoint until ``quorum`` of them did (the 'catch-up' policy)."""
        with self._lock:
            if self._stop.is_set():
                return
            self._wake.set()
            if self._catching_up is not None and self._catching_up.is_alive():
                return
            self._catching_up = threading.Thread(target=self._catch_up_loop, daemon=True,
                                                 name="signgate-witness-catch-up")
            self._catching_up.start()

    def _catch_up_loop(self) -> None:
        wait = CATCH_UP_FIRST_WAIT
        while not self._stop.is_set():
            self._wake.clear()
            try:
                done = len(self.cosign_latest().witnesses) >= max(1, self.quorum)
            except Exception:  # the database or a witness failed: try again later
                log.exception("catching up with the witnesses failed")
                done = False
            if done:
                with self._lock:
                    if not self._wake.is_set():  # no newer batch asked meanwhile
                        self._catching_up = None
                        return
                wait = CATCH_UP_FIRST_WAIT
                continue
            self._stop.wait(wait)
            wait = min(wait * 2, CATCH_UP_MAX_WAIT)

    def cosign_latest(self, skip_down: bool = False) -> Cosigned:
        """Cosign the newest checkpoint (and store the cosignatures with it)."""
        with self.db.read() as session:
            row = session.execute(select(LogCheckpoint).order_by(LogCheckpoint.size.desc())
                                  .limit(1)).scalars().first()
        if row is None:
            return Cosigned(0, (), ("the log has no checkpoint yet",))
        return self._cosign(row.size, row.note.encode(), skip_down)

    def cosign(self, size: int, note: bytes, skip_down: bool = True) -> Cosigned:
        """Ask every witness to cosign ``note`` (the checkpoint of ``size``) and store the
        cosignatures. ``skip_down``: do not wait for a witness that did not answer in the
        last ``DOWN_FOR`` seconds (a signing batch; the catch-up asks it anyway).

        A witness that has already cosigned a later checkpoint (another process's batch
        committed after this one and was witnessed first) cannot cosign this one; the
        later checkpoint holds this one's entries, so then the newest checkpoint is
        cosigned instead, and returned when more witnesses cosigned it: its ``size`` says
        which tree the caller must prove its entries in."""
        cosigned = self._cosign(size, note, skip_down)
        for _ in range(3):  # a busy log may move on again while the witnesses are asked
            with self._lock:
                past = any(self._sizes.get(w.verifier.name, 0) > cosigned.size
                           for w in self.witnesses)
            if len(cosigned.witnesses) >= self.quorum or not past:
                break
            later = self.cosign_latest(skip_down)
            if later.size <= cosigned.size or len(later.witnesses) < len(cosigned.witnesses):
                break
            cosigned = later
        return cosigned

    def _cosign(self, size: int, note: bytes, skip_down: bool) -> Cosigned:
        if not self.witnesses:
            return Cosigned(size, (), (), note)
        answers = list(self._pool.map(lambda w: self._ask(w, size, note, skip_down),
                                      self.witnesses))
        signatures = [s for found, _ in answers for s in found]
        problems = tuple(p for _, p in answers if p)
        if signatures:
            note = self._store(size, signatures) or add_signatures(note, signatures)
        if problems:
            # A witness that would not cosign for this batch (already past this size, say)
            # may have cosigned this very checkpoint for the catch-up thread: what is
            # stored counts.
            note = self._stored(size) or note
        _, lines = split_note(note)
        names = {w.verifier.name for w in self.witnesses}
        present = {s.name for s in lines if s.name in names}
        return Cosigned(size, tuple(sorted(present)), problems, note)

    def _ask(self, witness: Witness, size: int, note: bytes,
             skip_down: bool) -> tuple[list[Signature], str]:
        found, problem, outcome = self._answer(witness, size, note, skip_down)
        metrics.WITNESS_COSIGNATURES.labels(witness.verifier.name, outcome).inc()
        return found, problem

    def _answer(self, witness: Witness, size: int, note: bytes,
                skip_down: bool) -> tuple[list[Signature], str, str]:
        """The cosignatures, the problem (if any) and the outcome the metrics count."""
        name = witness.verifier.name
        with self._lock:
            old = self._sizes.get(name, 0)
            down = self._down_until.get(name, 0.0) > time.monotonic()
        if skip_down and down:
            return [], (f"witness {name} did not answer lately (signing waits for it again "
                        f"{DOWN_FOR:.0f} s after it last failed)"), "skipped"
        # Again after a 409 tells the witness's size (which other processes' batches may
        # keep moving while this one asks).
        for _ in range(5):
            if old > size:
                with self._lock:
                    self._sizes[name] = max(old, self._sizes.get(name, 0))
                return [], f"witness {name} has cosigned size {old}, past {size}", "past"
            try:
                proof = self._consistency(old, size)
                found = add_checkpoint(witness.url, witness.verifier, old, proof, note,
                                       http=self._http)
            except Conflict as exc:
                if exc.code is not ErrorCode.WITNESS_SIZE_MISMATCH:
                    return [], str(exc), exc.code.value
                old = int(exc.details.get("size", 0))
                continue
            except SigngateError as exc:
                if isinstance(exc, Unavailable):
                    with self._lock:
                        self._down_until[name] = time.monotonic() + DOWN_FOR
                if exc.code is ErrorCode.BAD_MERKLE_PROOF:
                    log.error("witness %s refuses checkpoint %d as inconsistent with what it "
                              "cosigned: the log's history differs from the witness's", name,
                              size)
                return [], str(exc), exc.code.value
            with self._lock:
                self._sizes[name] = max(size, self._sizes.get(name, 0))
                self._down_until.pop(name, None)
            return found, "", "cosigned"
        return ([], f"witness {name} keeps answering with another size",
                ErrorCode.WITNESS_SIZE_MISMATCH.value)

    def _consistency(self, old: int, new: int) -> list[bytes]:
        if old == 0 or old == new:
            return []
        with self.db.read(snapshot=True) as session:
            tree_size = session.execute(select(AuditHead.tree_size)).scalar_one()
            tree = LogTree(session.connection(), tree_size, self.log_hashes)
            return tree.consistency(old, new)

    def _store(self, size: int, signatures: list[Signature]) -> bytes | None:
        """Add ``signatures`` to the stored checkpoint of ``size``; returns it as stored now
        (with the cosignatures other threads stored too), or None if there is none."""
        with self.db.write() as session:
            row = session.get(LogCheckpoint, size)
            if row is None:
                return None
            note = add_signatures(row.note.encode(), signatures)
            _, lines = split_note(note)
            names = {w.verifier.name for w in self.witnesses}
            session.execute(update(LogCheckpoint).where(LogCheckpoint.size == size).values(
                note=note.decode(), cosignatures=len({s.name for s in lines} & names)))
            return note

    def _stored(self, size: int) -> bytes | None:
        with self.db.read() as session:
            row = session.get(LogCheckpoint, size)
            return row.note.encode() if row is not None else None
