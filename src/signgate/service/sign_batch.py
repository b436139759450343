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
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from asn1crypto import tsp
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from signgate.audit.model import Action, Outcome, Record
from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm, RsaPadding, parse_digest
from signgate.crypto.canonical import canonical_json
from signgate.crypto.tokens import token_hash
from signgate.errors import (
    AuthenticationFailed,
    Conflict,
    Denied,
    ErrorCode,
    InvalidInput,
    KeyStoreError,
    NotFound,
    SigngateError,
)
from signgate.formats import cms as cms_format
from signgate.formats import registry as formats
from signgate.formats.base import Builder, Chain, FormatRequest, SignerKey, ToBeSigned
from signgate.keystore.base import KeyRef
from signgate.pki import certs
from signgate.pki import tsa as rfc3161
from signgate.policy import decide
from signgate.policy.model import Actor, Grant, KeySnapshot, KeyState, Role, Scope
from signgate.scan.outcome import ScanOutcome
from signgate.service import external_tsa
from signgate.service.context import ANONYMOUS, Caller, Context, Target, refusal_record
from signgate.service.records.authorities import (
    authority_certificate,
    authority_signer,
    ensure_issuing_ca,
    issue_version_certificate,
    root,
    tsa_authority,
    version_chain,
)
from signgate.service.records.keys import get_key, rotate_version
from signgate.service.views import Receipt, SignResult
from signgate.store.models import (
    GrantRow,
    Identity,
    Key,
    KeyVersion,
    Project,
    SignatureRecord,
    table,
)

log = logging.getLogger("signgate.sign")

# Statements built once: constructing SQLAlchemy expressions per request costs more than
# running them.
_ident, _grants, _keys = table(Identity), table(GrantRow), table(Key)
_versions, _projects = table(KeyVersion), table(Project)
IDENTITY_BY_TOKEN = select(_ident.c.id, _ident.c.name, _ident.c.enabled).where(
    _ident.c.token_hash == bindparam("token_hash"))
GRANTS_OF = select(_grants.c.role, _grants.c.scope).where(
    _grants.c.identity_id == bindparam("identity_id"))
CURRENT_KEY = (
    select(_keys.c.id, _keys.c.algorithm, _keys.c.rsa_padding, _keys.c.state,
           _keys.c.rotate_every_days, _keys.c.max_signatures, _keys.c.require_timestamp,
           _keys.c.one_time, _keys.c.scan, _keys.c.created_at.label("key_created"),
           _versions.c.id.label("vid"),
           _versions.c.version, _versions.c.uri, _versions.c.created_at,
           _versions.c.signature_count, _versions.c.public_key_pem)
    .join(_projects, _keys.c.project_id == _projects.c.id)
    # Outer: a one-time key has no version until its first signing.
    .outerjoin(_versions, (_versions.c.key_id == _keys.c.id)
               & (_versions.c.version == _keys.c.current_version))
    .where(_projects.c.name == bindparam("project"), _keys.c.name == bindparam("key"))
)
ADD_SIGNATURES = (
    update(_versions).where(_versions.c.id == bindparam("version_id"))
    .values(signature_count=_versions.c.signature_count + bindparam("n"))
)
INSERT_SIGNATURE = insert(table(SignatureRecord))

MAX_BATCH = 256
MAX_CACHED = 4096
MAX_ARTIFACT_NAME = 1024
MAX_METADATA_BYTES = 8192
MAX_PARAMS_BYTES = 16384


@dataclass
class SignJob:
    caller: Caller
    project: str
    key: str
    digest_algorithm: str
    digest_hex: str
    artifact_name: str
    metadata: Mapping[str, str]
    timestamp: bool = False
    format: str = "raw"
    params: Mapping[str, str] = field(default_factory=dict)  # the format's own
    # Set when signgate received and scanned the artifact itself (service/scanning.py):
    # then ``digest_hex`` is signgate's own, computed from the scanned bytes.
    scan: ScanOutcome | None = None
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
    require_timestamp: bool
    one_time: bool
    scan_required: bool
    version_id: int  # -1 for a one-time key that has not signed yet
    version: int
    uri: str
    created_at: datetime
    signatures: int  # committed count plus this batch's signings
    public_key_pem: str

    def signer(self, ref: str) -> SignerKey:
        return SignerKey(ref, self.version, self.algorithm, self.rsa_padding,
                         self.public_key_pem, self.created_at, self.one_time)

    def snapshot(self, project: str, name: str) -> KeySnapshot:
        return KeySnapshot(
            project=project, name=name, state=self.state,
            rotate_every=timedelta(days=self.rotate_every_days)
            if self.rotate_every_days else None,
            max_signatures=self.max_signatures, current_version=self.version,
            current_version_created=self.created_at,
            current_version_signatures=self.signatures,
        )


def check_params(fmt: str, params: Mapping[str, str]) -> dict[str, str]:
    out = dict(params)
    formats.check_params(fmt, out)
    if len(canonical_json(out)) > MAX_PARAMS_BYTES:
        raise InvalidInput(f"format parameters are limited to {MAX_PARAMS_BYTES} bytes of "
                           "JSON")
    return out


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
    chains: dict[int, Chain] = field(default_factory=dict)  # by key version id

    def valid_at(self, head_seq: int) -> bool:
        # Only what exists is cached, and only so much of it: unknown tokens or key names
        # sent in bulk cannot grow the cache.
        size = len(self.actors) + len(self.keys) + len(self.chains)
        if head_seq != self.head_seq or size > MAX_CACHED:
            self.clear()
            return False
        return True

    def clear(self) -> None:
        self.head_seq = -1
        self.actors.clear()
        self.keys.clear()
        self.chains.clear()


class _Batch:
    """The work of one transaction."""

    def __init__(self, ctx: Context, session: Session, cache: _Cache) -> None:
        self.ctx = ctx
        self.session = session
        self.conn = session.connection()  # Core statements: the ORM costs too much here
        self.actors = cache.actors
        self.keys = cache.keys
        self.chains = cache.chains
        self.counts: dict[int, int] = {}
        self.signatures: list[dict[str, object]] = []
        self.tsa: rfc3161.Authority | None = None
        self.one_time_serial = ""
        self.one_time_sha256 = ""

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
        if not found[1].enabled:  # answered like an unknown token (see authenticate)
            raise AuthenticationFailed(identity=found[1].name)
        return found

    def key(self, project: str, name: str) -> _KeyState:
        ref = f"{project}/{name}"
        state = self.keys.get(ref)
        if state is None:
            row = self.conn.execute(CURRENT_KEY, {"project": project, "key": name}).first()
            if row is None:
                raise NotFound(f"no key {ref}")
            vid = -1 if row.vid is None else row.vid
            state = _KeyState(
                row.id, KeyAlgorithm(row.algorithm), RsaPadding(row.rsa_padding),
                KeyState(row.state), row.rotate_every_days, row.max_signatures,
                bool(row.require_timestamp), bool(row.one_time), row.scan == "required", vid,
                row.version or 0, row.uri or "", row.created_at or row.key_created,
                (row.signature_count or 0) + self.counts.get(vid, 0), row.public_key_pem or "",
            )
            self.keys[ref] = state
        return state

    def sign(self, job: SignJob) -> SignResult:
        try:
            identity_id, actor = self.actor(job.caller)
        except SigngateError as exc:
            raise Refusal(ANONYMOUS, exc) from exc
        try:
            alg = DigestAlgorithm.parse(job.digest_algorithm)
            meta = check_request(job.artifact_name, job.metadata)
            # Grants first: a refusal must not tell whether the key exists, except to a
            # caller who may see the key (keys.refuse_signer).
            d = decide.may_sign_with(actor, job.project, job.key)
            if not d.allowed:
                if decide.may_see(actor, job.project, job.key):
                    self.key(job.project, job.key)  # NotFound for a missing key
                raise Denied(d.reason)
            if job.scan is not None:
                # Whatever the key's policy: what signgate scanned and found is never signed.
                job.scan.enforce(job.artifact_name)
            digest = parse_digest(alg, job.digest_hex)
            key = self.key(job.project, job.key)
            d = decide.may_sign(actor, key.snapshot(job.project, job.key))
            if not d.allowed:
                raise Denied(d.reason)
            if key.scan_required and job.scan is None:
                raise Denied(f"key {job.ref} signs only artifacts signgate has scanned: "
                             "upload the artifact (signgate sign does, for such keys)",
                             code=ErrorCode.SCAN_REQUIRED)
            now = self.ctx.clock.now()
            builder = formats.builder(job.format)
            request = FormatRequest(alg, digest, job.artifact_name, now,
                                    check_params(job.format, job.params),
                                    timestamp=job.timestamp or key.require_timestamp)
            # Before any key is touched (or a one-time key made): can this key make it?
            builder.check(key.signer(job.ref), request)
            certificate: str | None = None

            def make(signer: SignerKey) -> _Prepared:
                return _prepare(builder, signer, request)

            due = decide.rotation_due(key.snapshot(job.project, job.key), now)
            if key.one_time:
                key, prepared, signature, certificate = self._one_time(job, actor, key, make,
                                                                       now)
            elif due is None:
                prepared = make(key.signer(job.ref))
                signature = self._sign_with(key, prepared.hash_algorithm, prepared.payload)
            else:
                key, prepared, signature = self._rotate_then_sign(job, actor, due, now, make)
            # The key's policy is enforced here, not by the client: no signature of a
            # require_timestamp key leaves without its token.
            stamp = self._timestamp(signature, now) if request.timestamp else None
            chain = self.chain(key.version_id) if builder.needs_chain else None
            signature_value = signature
            signature = builder.assemble(
                prepared.signer, request, prepared.tbs, signature, chain,
                cms_format.token_of(stamp.der) if stamp else None)
        except SigngateError as exc:
            raise Refusal(actor.name, exc) from exc
        except Exception as exc:
            # A defect in one job (say, a format builder meeting input it did not expect)
            # refuses that job, recorded like any refusal; the rest of the batch goes on.
            log.exception("signing %s with %s failed", job.artifact_name, job.ref)
            raise Refusal(actor.name, SigngateError(
                "internal error while signing; nothing was signed", code=ErrorCode.INTERNAL_ERROR,
            )) from exc
        key.signatures += 1
        self.counts[key.version_id] = self.counts.get(key.version_id, 0) + 1
        signature_id = str(uuid.uuid4())
        sig_hash = hashlib.sha256(signature_value).hexdigest()
        details: dict[str, object] = {
            "signature_id": signature_id, "key_version": key.version,
            "digest_algorithm": alg.value, "digest": digest.hex(), "format": builder.name,
            "signature_sha256": sig_hash,
        }
        if job.caller.address:
            details["client"] = job.caller.address
        if meta:
            details["metadata"] = meta
        if certificate is not None:
            details["certificate_serial"] = self.one_time_serial
            details["certificate_sha256"] = self.one_time_sha256
        if stamp is not None:
            details["timestamp_serial"] = format(stamp.serial, "x")
            details["timestamp_time"] = stamp.gen_time.isoformat()
        scan_details = job.scan.details() if job.scan is not None else None
        if scan_details is not None:
            details["scan"] = scan_details
        seq = self.ctx.record(
            self.session,
            Record(actor.name, Action.SIGN, Outcome.ALLOWED, job.artifact_name, job.project,
                   job.ref, details),
            now,
        )
        self.signatures.append({
            "id": signature_id, "key_version_id": key.version_id, "identity_id": identity_id,
            "artifact_name": job.artifact_name, "digest_algorithm": alg.value,
            "digest": digest.hex(), "signature_sha256": sig_hash, "format": builder.name,
            "signed_at": now, "client_address": job.caller.address,
            "metadata_json": canonical_json(meta).decode(), "audit_seq": seq,
            "timestamp_token": stamp.der if stamp else None,
            "scan_json": canonical_json(scan_details).decode() if scan_details else None,
        })
        receipt = Receipt(
            signature_id=signature_id, key=job.ref, key_version=key.version,
            algorithm=key.algorithm.value,
            rsa_padding=key.rsa_padding.value if key.algorithm.is_rsa else None,
            digest_algorithm=alg.value, digest=digest.hex(), artifact_name=job.artifact_name,
            format=builder.name, identity=actor.name, signed_at=now, audit_seq=seq,
            timestamp_serial=format(stamp.serial, "x") if stamp else None,
            timestamp_time=stamp.gen_time if stamp else None, scan=scan_details,
        )
        return SignResult(base64.b64encode(signature).decode("ascii"), receipt,
                          base64.b64encode(stamp.der).decode("ascii") if stamp else None,
                          certificate)

    def chain(self, version_id: int) -> Chain:
        found = self.chains.get(version_id)
        if found is None:
            leaf, issuers = version_chain(self.session, version_id)
            found = self.chains[version_id] = Chain(leaf, tuple(issuers),
                                                    self._root_above(issuers))
        return found

    def _root_above(self, issuers: list[bytes]) -> bytes | None:
        """signgate's root, if it issued the top of ``issuers`` (not an imported chain's)."""
        anchor = root(self.session)
        if anchor is None or not issuers:
            return None
        root_der = authority_certificate(self.session, anchor).der
        top = certs.load_der(issuers[-1])
        if root_der in issuers or top.issuer != certs.load_der(root_der).subject:
            return None
        return root_der

    def _timestamp(self, signature: bytes, now: datetime) -> rfc3161.Issued:
        """An RFC 3161 token over the signature value from signgate's own TSA, as
        ``openssl ts -verify -data FILE.sig`` checks it (certReq: the TSA certificate is
        in the token). With ``tsa_urls`` configured, from the first external TSA that
        answers instead; that waits on the network inside the batch, which is the price of
        a public TSA."""
        if self.ctx.settings.tsa_urls:
            token = external_tsa.fetch(self.ctx.settings.tsa_urls, signature)
            return rfc3161.Issued(token.der, token.serial, token.gen_time)
        if self.tsa is None:
            authority = tsa_authority(self.session)
            if authority is None:
                raise KeyStoreError("the time-stamp authority is not set up "
                                    "(restart 'signgate serve')", code=ErrorCode.TSA_UNAVAILABLE)
            certificate = certs.load_der(authority_certificate(self.session, authority).der)
            settings = self.ctx.settings
            self.tsa = rfc3161.Authority(
                authority_signer(self.ctx, authority),
                certificate, settings.tsa_policy_oid, settings.tsa_accuracy_seconds)
        imprint = hashlib.sha256(signature).digest()
        request = rfc3161.TimeStampRequest(
            DigestAlgorithm.SHA256, imprint, None, True, None,
            tsp.MessageImprint({"hash_algorithm": {"algorithm": "sha256"},
                                "hashed_message": imprint}))
        return rfc3161.grant(request, self.tsa, now)

    def _sign_with(self, key: _KeyState, alg: DigestAlgorithm, digest: bytes) -> bytes:
        ref = KeyRef(key.uri, key.algorithm, key.rsa_padding)
        return self.ctx.keystores.sign(ref, alg, digest)

    def _one_time(self, job: SignJob, actor: Actor, key: _KeyState,
                  make: Callable[[SignerKey], _Prepared], now: datetime,
                  ) -> tuple[_KeyState, _Prepared, bytes, str]:
        """A fresh key pair, a certificate valid for minutes, one signature, and the private
        key destroyed before anything is returned. Only the public key and certificate are
        kept (a key version that never signs again); the private key lives only in the
        one-time key store (memory) until it is destroyed."""
        keystores = self.ctx.keystores
        generated = keystores.generate(key.algorithm, one_time=True)
        ref = KeyRef(generated.uri, key.algorithm, key.rsa_padding)
        try:
            with self._atomically(job):
                orm_key = get_key(self.session, job.project, job.key)
                number = orm_key.current_version + 1
                version = KeyVersion(key_id=orm_key.id, version=number, uri=generated.uri,
                                     public_key_pem=generated.public_key_pem, created_at=now,
                                     retired_at=now, signature_count=0)
                self.session.add(version)
                self.session.flush()
                orm_key.current_version = number
                lifetime = timedelta(minutes=self.ctx.settings.one_time_cert_minutes)
                cert = issue_version_certificate(self.ctx, self.session, orm_key, version, now,
                                                 actor.name, lifetime)
                issuer = authority_certificate(self.session,
                                               ensure_issuing_ca(self.ctx, self.session,
                                                                 orm_key.project))
                self.session.flush()
                prepared = make(SignerKey(job.ref, number, key.algorithm, key.rsa_padding,
                                          generated.public_key_pem, now, one_time=True))
                signature = keystores.sign(ref, prepared.hash_algorithm, prepared.payload)
        finally:
            keystores.destroy(ref)  # the key can never sign again
        self.one_time_serial, self.one_time_sha256 = cert.serial, cert.sha256
        state = self.key(job.project, job.key)
        return state, prepared, signature, certs.to_pem(cert.der) + certs.to_pem(issuer.der)

    @contextlib.contextmanager
    def _atomically(self, job: SignJob) -> Iterator[None]:
        """A savepoint around work that changes keys mid-batch: if it fails, its rows,
        its audit entries and the cached key go with it."""
        self.flush_counts()
        writer = self.ctx.audit_writer(self.session)
        mark = writer.mark()
        savepoint = self.session.begin_nested()
        try:
            yield
        except BaseException:
            savepoint.rollback()
            writer.reset(mark)
            self.keys.pop(job.ref, None)
            raise
        savepoint.commit()
        self.keys.pop(job.ref, None)

    def _rotate_then_sign(
        self, job: SignJob, actor: Actor, reason: str, now: datetime,
        make: Callable[[SignerKey], _Prepared],
    ) -> tuple[_KeyState, _Prepared, bytes]:
        """Policy rotation before signing (rare), all or nothing: if the signing with the new
        version fails, the rotation is undone with it (savepoint, audit entries, cache)."""
        stale: Conflict | None = None
        with self._atomically(job):
            rotate_version(self.ctx, self.session, get_key(self.session, job.project, job.key),
                           actor.name, reason, now)
            self.session.flush()
            self.keys.pop(job.ref, None)
            key = self.key(job.project, job.key)
            try:
                prepared = make(key.signer(job.ref))
            except Conflict as exc:
                # The client prepared for the version this rotation retired (OpenPGP names
                # the key inside what it hashes): keep the rotation, which policy demanded
                # anyway, so that the client's retry meets the new version.
                if exc.code is not ErrorCode.KEY_ROTATED:
                    raise
                stale = exc
            else:
                signature = self._sign_with(key, prepared.hash_algorithm, prepared.payload)
        if stale is not None:
            raise stale
        return key, prepared, signature

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


@dataclass(frozen=True)
class _Prepared:
    signer: SignerKey
    tbs: ToBeSigned
    payload: bytes  # what the key store signs
    hash_algorithm: DigestAlgorithm  # what ``payload`` is a digest of


def _prepare(builder: Builder, signer: SignerKey, request: FormatRequest) -> _Prepared:
    """The bytes the key store signs for ``signer``: a digest, or for Ed25519 the message
    itself (see ToBeSigned)."""
    tbs = builder.prepare(signer, request)
    alg = tbs.hash_algorithm or request.digest_algorithm
    if tbs.prehashed or signer.algorithm is KeyAlgorithm.ED25519:
        payload = tbs.message
    else:
        payload = hashlib.new(alg.value, tbs.message).digest()
    return _Prepared(signer, tbs, payload, alg)


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
        # Failed authentications recorded in this batch's transaction: if it does not
        # commit, they are counted in their window's summary instead.
        first_failures: list[tuple[SignJob, AuthenticationFailed]] = []
        try:
            with self.ctx.transaction() as session:
                writer = self.ctx.audit_writer(session)
                self._cache.valid_at(writer.seq)
                batch = _Batch(self.ctx, session, self._cache)
                for job in jobs:
                    try:
                        outcomes.append(batch.sign(job))
                    except Refusal as refused:
                        if isinstance(refused.error, AuthenticationFailed):
                            verdict = self.ctx.auth_failures.failed(job.caller, job.target(),
                                                                    refused.error)
                            if verdict.record is not None:
                                self.ctx.record(session, verdict.record)
                                first_failures.append((job, refused.error))
                            outcomes.append(verdict.error)
                            continue
                        record = refusal_record(job.caller, job.target(), refused.actor,
                                                refused.error)
                        if job.scan is not None:  # the verdict, engines and digest with it
                            record.details["scan"] = job.scan.details()
                        self.ctx.record(session, record)
                        outcomes.append(refused.error)
                batch.flush()
                head_after = writer.seq
        except Exception as exc:  # the commit or the batch failed: nothing was recorded
            if not isinstance(exc, SigngateError):
                log.exception("signing batch failed")
            self._cache.clear()
            for job, failure in first_failures:
                self.ctx.auth_failures.lost(job.caller, job.target(), failure)
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
