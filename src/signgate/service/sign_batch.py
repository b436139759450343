"""Group commit for signing: many signing requests, one durable transaction.

A signature may be returned only once its audit entry is committed, and the audit chain
orders every writer, so each commit is a point of serialisation. Committing each signing
on its own makes the fsync (SQLite) or the round trips (PostgreSQL) the ceiling. Instead,
requests queue up while a transaction is in flight, and one writer thread decides, signs
and records the whole queue in the next transaction:

- every request is decided on its own (authentication, grants, key state, limits) with
  the state as of that transaction, and refused ones get their refusal entry in the same
  transaction;
- identity, grant and key look-ups are made once per batch and reused; counters are kept
  in memory and written once;
- no request learns its result before the commit has returned. If the commit fails, every
  request of the batch fails and nothing of it was recorded or returned.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import queue
import threading
import uuid
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from signgate.audit.model import Action, Outcome, Record
from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm, RsaPadding, parse_digest
from signgate.crypto.canonical import canonical_json
from signgate.crypto.tokens import token_hash
from signgate.errors import (
    AuthenticationFailed,
    Denied,
    InvalidInput,
    NotFound,
    SigngateError,
)
from signgate.keystore.base import KeyHandle
from signgate.policy import decide
from signgate.policy.model import Actor, Grant, KeySnapshot, KeyState, Role, Scope
from signgate.service.context import ANONYMOUS, Caller, Context, Target, refusal_record
from signgate.service.keys import get_key, rotate_version
from signgate.service.views import Receipt, SignResult
from signgate.store.models import (
    GrantRow,
    Identity,
    Key,
    KeyVersion,
    Project,
    SignatureRecord,
    VaultEntry,
    table,
)

log = logging.getLogger("signgate.sign")

# Statements built once: constructing SQLAlchemy expressions per request costs more than
# running them.
_ident, _grants, _keys = table(Identity), table(GrantRow), table(Key)
_versions, _projects, _vault = table(KeyVersion), table(Project), table(VaultEntry)
IDENTITY_BY_TOKEN = select(_ident.c.id, _ident.c.name, _ident.c.enabled).where(
    _ident.c.token_hash == bindparam("token_hash"))
GRANTS_OF = select(_grants.c.role, _grants.c.scope).where(
    _grants.c.identity_id == bindparam("identity_id"))
CURRENT_KEY = (
    select(_keys.c.id, _keys.c.algorithm, _keys.c.rsa_padding, _keys.c.state,
           _keys.c.rotate_every_days, _keys.c.max_signatures, _versions.c.id.label("vid"),
           _versions.c.version, _versions.c.uri, _versions.c.created_at,
           _versions.c.signature_count)
    .join(_projects, _keys.c.project_id == _projects.c.id)
    .join(_versions, (_versions.c.key_id == _keys.c.id)
          & (_versions.c.version == _keys.c.current_version))
    .where(_projects.c.name == bindparam("project"), _keys.c.name == bindparam("key"))
)
SEALED = select(_vault.c.sealed).where(_vault.c.uri == bindparam("uri"))
ADD_SIGNATURES = (
    update(_versions).where(_versions.c.id == bindparam("version_id"))
    .values(signature_count=_versions.c.signature_count + bindparam("n"))
)
INSERT_SIGNATURE = insert(table(SignatureRecord))

MAX_BATCH = 256
MAX_CACHED = 4096
MAX_ARTIFACT_NAME = 1024
MAX_METADATA_BYTES = 8192
RAW_FORMAT = "raw"


@dataclass
class SignJob:
    caller: Caller
    project: str
    key: str
    digest_algorithm: str
    digest_hex: str
    artifact_name: str
    metadata: Mapping[str, str]
    # Exactly one waiter: a thread (``future``) or an event loop (``loop`` + ``waiter``).
    future: Future[SignResult] | None = None
    loop: asyncio.AbstractEventLoop | None = None
    waiter: asyncio.Future[SignResult] | None = None

    @property
    def ref(self) -> str:
        return f"{self.project}/{self.key}"

    def target(self) -> Target:
        subject = self.artifact_name[:MAX_ARTIFACT_NAME] or self.ref
        return Target(Action.SIGN, subject, self.project, self.ref)


@dataclass
class _KeyState:
    """A key and its current version as seen inside one batch transaction."""

    key_id: int
    algorithm: KeyAlgorithm
    rsa_padding: RsaPadding
    state: KeyState
    rotate_every_days: int | None
    max_signatures: int | None
    version_id: int
    version: int
    uri: str
    created_at: datetime
    signatures: int  # committed count plus this batch's signings

    def snapshot(self, project: str, name: str) -> KeySnapshot:
        return KeySnapshot(
            project=project, name=name, state=self.state,
            rotate_every=timedelta(days=self.rotate_every_days)
            if self.rotate_every_days else None,
            max_signatures=self.max_signatures, current_version=self.version,
            current_version_created=self.created_at,
            current_version_signatures=self.signatures,
        )


def check_request(artifact_name: str, metadata: Mapping[str, str]) -> dict[str, str]:
    if not artifact_name or len(artifact_name) > MAX_ARTIFACT_NAME:
        raise InvalidInput(f"artifact name must be 1 to {MAX_ARTIFACT_NAME} characters")
    if any(ord(c) < 32 for c in artifact_name):
        raise InvalidInput("artifact name must not contain control characters")
    meta = dict(metadata)
    if len(canonical_json(meta)) > MAX_METADATA_BYTES:
        raise InvalidInput(f"metadata is limited to {MAX_METADATA_BYTES} bytes of JSON")
    return meta


@dataclass
class _Cache:
    """Look-ups that stay valid while nobody else writes.

    Every change to identities, grants or keys appends to the audit log, and every writer
    holds the audit head lock for its whole transaction. So if the head is still where
    this process's last batch left it, nothing has changed since, and the identities,
    grants and keys read then are still what the database holds.
    """

    head_seq: int = -1
    actors: dict[str, tuple[int, Actor]] = field(default_factory=dict)
    keys: dict[str, _KeyState] = field(default_factory=dict)

    def valid_at(self, head_seq: int) -> bool:
        # Only what exists is cached, and only so much of it: unknown tokens or key names
        # sent in bulk cannot grow the cache.
        if head_seq != self.head_seq or len(self.actors) + len(self.keys) > MAX_CACHED:
            self.clear()
            return False
        return True

    def clear(self) -> None:
        self.head_seq = -1
        self.actors.clear()
        self.keys.clear()


class _Batch:
    """The work of one transaction."""

    def __init__(self, ctx: Context, session: Session, cache: _Cache) -> None:
        self.ctx = ctx
        self.session = session
        self.conn = session.connection()  # Core statements: the ORM costs too much here
        self.actors = cache.actors
        self.keys = cache.keys
        self.counts: dict[int, int] = {}
        self.signatures: list[dict[str, object]] = []

    def actor(self, caller: Caller) -> tuple[int, Actor]:
        if not caller.token:
            raise AuthenticationFailed()
        h = token_hash(caller.token)
        found = self.actors.get(h)
        if found is None:
            row = self.conn.execute(IDENTITY_BY_TOKEN, {"token_hash": h}).first()
            if row is None:
                raise AuthenticationFailed()
            grants = self.conn.execute(GRANTS_OF, {"identity_id": row.id}).all()
            found = (row.id, Actor(row.name, row.enabled, tuple(
                Grant(Role(role), Scope.parse(scope)) for role, scope in grants)))
            self.actors[h] = found
        return found

    def key(self, project: str, name: str) -> _KeyState:
        ref = f"{project}/{name}"
        state = self.keys.get(ref)
        if state is None:
            row = self.conn.execute(CURRENT_KEY, {"project": project, "key": name}).first()
            if row is None:
                raise NotFound(f"no key {ref}")
            state = _KeyState(
                row.id, KeyAlgorithm(row.algorithm), RsaPadding(row.rsa_padding),
                KeyState(row.state), row.rotate_every_days, row.max_signatures, row.vid,
                row.version, row.uri, row.created_at,
                row.signature_count + self.counts.get(row.vid, 0),
            )
            self.keys[ref] = state
        return state

    def sealed_loader(self, uri: str) -> bytes:
        sealed = self.conn.execute(SEALED, {"uri": uri}).scalar_one_or_none()
        return sealed or b""

    def sign(self, job: SignJob) -> SignResult:
        try:
            identity_id, actor = self.actor(job.caller)
        except SigngateError as exc:
            raise Refusal(ANONYMOUS, exc) from exc
        try:
            alg = DigestAlgorithm.parse(job.digest_algorithm)
            digest = parse_digest(alg, job.digest_hex)
            meta = check_request(job.artifact_name, job.metadata)
            # Grants first: a refusal must not tell whether the key exists.
            d = decide.may_sign_with(actor, job.project, job.key)
            if not d.allowed:
                raise Denied(d.reason)
            key = self.key(job.project, job.key)
            d = decide.may_sign(actor, key.snapshot(job.project, job.key))
            if not d.allowed:
                raise Denied(d.reason)
            now = self.ctx.clock.now()
            due = decide.rotation_due(key.snapshot(job.project, job.key), now)
            if due is None:
                signature = self._sign_with(key, alg, digest)
            else:
                key, signature = self._rotate_then_sign(job, actor, due, now, alg, digest)
        except SigngateError as exc:
            raise Refusal(actor.name, exc) from exc
        key.signatures += 1
        self.counts[key.version_id] = self.counts.get(key.version_id, 0) + 1
        signature_id = str(uuid.uuid4())
        sig_hash = hashlib.sha256(signature).hexdigest()
        details: dict[str, object] = {
            "signature_id": signature_id, "key_version": key.version,
            "digest_algorithm": alg.value, "digest": digest.hex(), "format": RAW_FORMAT,
            "signature_sha256": sig_hash,
        }
        if job.caller.address:
            details["client"] = job.caller.address
        if meta:
            details["metadata"] = meta
        seq = self.ctx.record(
            self.session,
            Record(actor.name, Action.SIGN, Outcome.ALLOWED, job.artifact_name, job.project,
                   job.ref, details),
            now,
        )
        self.signatures.append({
            "id": signature_id, "key_version_id": key.version_id, "identity_id": identity_id,
            "artifact_name": job.artifact_name, "digest_algorithm": alg.value,
            "digest": digest.hex(), "signature_sha256": sig_hash, "format": RAW_FORMAT,
            "signed_at": now, "client_address": job.caller.address,
            "metadata_json": canonical_json(meta).decode(), "audit_seq": seq,
        })
        receipt = Receipt(
            signature_id=signature_id, key=job.ref, key_version=key.version,
            algorithm=key.algorithm.value,
            rsa_padding=key.rsa_padding.value if key.algorithm.is_rsa else None,
            digest_algorithm=alg.value, digest=digest.hex(), artifact_name=job.artifact_name,
            format=RAW_FORMAT, identity=actor.name, signed_at=now, audit_seq=seq,
        )
        return SignResult(base64.b64encode(signature).decode("ascii"), receipt)

    def _sign_with(self, key: _KeyState, alg: DigestAlgorithm, digest: bytes) -> bytes:
        uri = key.uri
        handle = KeyHandle(uri, key.algorithm, key.rsa_padding, lambda: self.sealed_loader(uri))
        return self.ctx.keystores.sign(handle, alg, digest)

    def _rotate_then_sign(
        self, job: SignJob, actor: Actor, reason: str, now: datetime, alg: DigestAlgorithm,
        digest: bytes,
    ) -> tuple[_KeyState, bytes]:
        """Policy rotation before signing (rare), all or nothing: if the signing with the new
        version fails, the rotation is undone with it (savepoint, audit entries, cache)."""
        self.flush_counts()
        writer = self.ctx.audit_writer(self.session)
        mark = writer.mark()
        savepoint = self.session.begin_nested()
        try:
            rotate_version(self.ctx, self.session, get_key(self.session, job.project, job.key),
                           actor.name, reason, now)
            self.session.flush()
            del self.keys[job.ref]
            key = self.key(job.project, job.key)
            signature = self._sign_with(key, alg, digest)
        except BaseException:
            savepoint.rollback()
            writer.reset(mark)
            self.keys.pop(job.ref, None)
            raise
        savepoint.commit()
        return key, signature

    def flush_counts(self) -> None:
        if self.counts:
            self.conn.execute(ADD_SIGNATURES, [{"version_id": v, "n": n}
                                               for v, n in self.counts.items()])
        self.counts = {}

    def flush(self) -> None:
        self.flush_counts()
        if self.signatures:
            self.conn.execute(INSERT_SIGNATURE, self.signatures)
            self.signatures = []


class Refusal(Exception):
    """A job refused inside a batch: who asked, and the error they get."""

    def __init__(self, actor: str, error: SigngateError) -> None:
        super().__init__(str(error))
        self.actor = actor
        self.error = error


class SignBatcher:
    """One writer thread per process; ``submit`` returns once the job's batch committed."""

    def __init__(self, ctx: Context, max_batch: int = MAX_BATCH) -> None:
        self.ctx = ctx
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[SignJob | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._cache = _Cache()

    def submit(self, job: SignJob) -> SignResult:
        job.future = Future()
        self._enqueue(job)
        return job.future.result()

    async def submit_async(self, job: SignJob) -> SignResult:
        """The same for an event loop: waits without holding a thread."""
        job.loop = asyncio.get_running_loop()
        job.waiter = job.loop.create_future()
        self._enqueue(job)
        return await job.waiter

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _enqueue(self, job: SignJob) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    t = threading.Thread(target=self._run, name="signgate-signer", daemon=True)
                    t.start()
                    self._thread = t
        self._queue.put(job)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs = [first]
            stop = False
            while len(jobs) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                jobs.append(nxt)
            self._deliver(jobs, self._process(jobs))
            if stop:
                return

    def _process(self, jobs: list[SignJob]) -> list[SignResult | Exception]:
        outcomes: list[SignResult | Exception] = []
        try:
            with self.ctx.transaction() as session:
                writer = self.ctx.audit_writer(session)
                self._cache.valid_at(writer.seq)
                batch = _Batch(self.ctx, session, self._cache)
                for job in jobs:
                    try:
                        outcomes.append(batch.sign(job))
                    except Refusal as refused:
                        self.ctx.record(session, refusal_record(
                            job.caller, job.target(), refused.actor, refused.error))
                        outcomes.append(refused.error)
                batch.flush()
                head_after = writer.seq
        except Exception as exc:  # the commit or the batch failed: nothing was recorded
            if not isinstance(exc, SigngateError):
                log.exception("signing batch failed")
            self._cache.clear()
            return [exc] * len(jobs)
        self._cache.head_seq = head_after
        return outcomes

    @staticmethod
    def _deliver(jobs: list[SignJob], outcomes: list[SignResult | Exception]) -> None:
        """Hand out results only now that the batch is committed (or failed): one wake-up
        per event loop, not one per request."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[SignJob, SignResult | Exception]]]
        by_loop = {}
        for job, outcome in zip(jobs, outcomes, strict=True):
            if job.loop is not None:
                by_loop.setdefault(job.loop, []).append((job, outcome))
            elif job.future is not None:
                if isinstance(outcome, Exception):
                    job.future.set_exception(outcome)
                else:
                    job.future.set_result(outcome)
        for loop, items in by_loop.items():
            # A closed loop raises RuntimeError: nobody is waiting there any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, items)


def _settle(items: list[tuple[SignJob, SignResult | Exception]]) -> None:
    for job, outcome in items:
        waiter = job.waiter
        if waiter is None or waiter.done():
            continue
        if isinstance(outcome, Exception):
            waiter.set_exception(outcome)
        else:
            waiter.set_result(outcome)
