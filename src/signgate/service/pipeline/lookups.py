"""What one batch reads: the caller's actor, the key's current state, certificate chains,
and the rule that lets a batch trust what the previous one read.

The statements are Core SQL built once (the ORM costs more than the queries here), and
the results are cached across batches for as long as :meth:`Cache.valid_at` says the
database cannot have changed them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from signgate.crypto.algorithms import KeyAlgorithm, RsaPadding
from signgate.crypto.tokens import token_hash
from signgate.errors import AuthenticationFailed, NotFound
from signgate.formats.base import Chain, SignerKey
from signgate.pki import certs
from signgate.pki import tsa as rfc3161
from signgate.policy.model import Actor, KeySnapshot, KeyState, ScanPolicy
from signgate.service.actors import load_actor
from signgate.service.caller import Caller
from signgate.service.context import check_expiry
from signgate.service.records.authorities import authority_certificate, root, version_chain
from signgate.service.ui_session_auth import load_session_actor
from signgate.store.models import Key, KeyVersion, Project, table

_keys, _versions, _projects = table(Key), table(KeyVersion), table(Project)
CURRENT_KEY = (
    select(_keys.c.id, _keys.c.algorithm, _keys.c.rsa_padding, _keys.c.state,
           _keys.c.rotate_every_days, _keys.c.max_signatures, _keys.c.require_timestamp,
           _keys.c.one_time, _keys.c.scan, _keys.c.created_at.label("key_created"),
           _keys.c.approvals, _keys.c.approver_scope, _keys.c.require_builders,
           _keys.c.offline, _keys.c.max_per_identity_per_day,
           _versions.c.id.label("vid"),
           _versions.c.version, _versions.c.uri, _versions.c.created_at,
           _versions.c.signature_count, _versions.c.public_key_pem)
    .join(_projects, _keys.c.project_id == _projects.c.id)
    # Outer: a one-time key has no version until its first signing.
    .outerjoin(_versions, (_versions.c.key_id == _keys.c.id)
               & (_versions.c.version == _keys.c.current_version))
    .where(_projects.c.name == bindparam("project"), _keys.c.name == bindparam("key"))
)

MAX_CACHED = 4096


@dataclass
class CurrentKey:
    """A key and its current version as seen inside one batch transaction."""

    project: str
    name: str
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
    approvals: int = 0  # quorum approvals required before it signs (0: none)
    approver_scope: str | None = None
    require_builders: int = 0  # independent builders that must agree (0: none)
    offline: bool = False  # signs only inside an open release window
    max_per_identity_per_day: int = 0  # quota per identity per UTC day (0: none)

    @property
    def ref(self) -> str:
        return f"{self.project}/{self.name}"

    def signer(self) -> SignerKey:
        return SignerKey(self.ref, self.version, self.algorithm, self.rsa_padding,
                         self.public_key_pem, self.created_at, self.one_time)

    def snapshot(self) -> KeySnapshot:
        return KeySnapshot(
            project=self.project, name=self.name, state=self.state,
            rotate_every=timedelta(days=self.rotate_every_days)
            if self.rotate_every_days else None,
            max_signatures=self.max_signatures, current_version=self.version,
            current_version_created=self.created_at,
            current_version_signatures=self.signatures, scan_required=self.scan_required,
        )


@dataclass
class Cache:
    """Look-ups that stay valid while nobody else writes.

    Every change to identities, grants or keys appends to the audit log, and every writer
    holds the audit head lock for its whole transaction. So if the head is still where
    this process's last batch left it, nothing has changed since, and the identities,
    grants and keys read then are still what the database holds.
    """

    head_seq: int = -1
    actors: dict[str, tuple[int, Actor]] = field(default_factory=dict)  # by token hash
    keys: dict[str, CurrentKey] = field(default_factory=dict)  # by ref
    chains: dict[int, Chain] = field(default_factory=dict)  # by key version id
    # signgate's own TSA, its token template encoded, by key URI and certificate: keyed
    # by what defines it, so valid whoever wrote since (not emptied by ``clear``).
    tsas: dict[tuple[str, bytes, str, int], rfc3161.Authority] = field(default_factory=dict)

    def valid_at(self, head_seq: int) -> bool:
        """Keep the cache if the audit head is where the last batch left it, else empty it.
        Only what exists is cached, and only so much of it: unknown tokens or key names
        sent in bulk cannot grow the cache."""
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


class Lookups:
    """One batch's reads, through the cache."""

    def __init__(self, session: Session, conn: Connection, cache: Cache,
                 pending: dict[int, int]) -> None:
        self.session = session
        self.conn = conn
        self.cache = cache
        self.pending = pending  # signatures per key version made in this batch, unwritten

    def actor(self, caller: Caller, now: datetime) -> tuple[int, Actor]:
        """The enabled identity holding the caller's token, answered like ``authenticate``
        (service/context.py): no token, an unknown one and a disabled one fail alike."""
        if caller.session is not None:  # a web console session (an approval's signing)
            found = load_session_actor(self.conn, caller.session, now)
            if found is None:
                raise AuthenticationFailed()
        elif not caller.token:
            raise AuthenticationFailed()
        else:
            h = token_hash(caller.token)
            found = self.cache.actors.get(h)
            if found is None:
                found = load_actor(self.conn, h)
                if found is None:
                    raise AuthenticationFailed()
                self.cache.actors[h] = found
        if not found[1].enabled:
            raise AuthenticationFailed(identity=found[1].name)
        check_expiry(found[1], now)
        return found

    def key(self, project: str, name: str) -> CurrentKey:
        ref = f"{project}/{name}"
        state = self.cache.keys.get(ref)
        if state is None:
            row = self.conn.execute(CURRENT_KEY, {"project": project, "key": name}).first()
            if row is None:
                raise NotFound(f"no key {ref}")
            vid = -1 if row.vid is None else row.vid
            state = CurrentKey(
                project, name, row.id, KeyAlgorithm(row.algorithm),
                RsaPadding(row.rsa_padding), KeyState(row.state), row.rotate_every_days,
                row.max_signatures, bool(row.require_timestamp), bool(row.one_time),
                row.scan == ScanPolicy.REQUIRED.value, vid, row.version or 0, row.uri or "",
                row.created_at or row.key_created,
                (row.signature_count or 0) + self.pending.get(vid, 0),
                row.public_key_pem or "", row.approvals or 0, row.approver_scope,
                row.require_builders or 0,
                bool(row.offline), row.max_per_identity_per_day or 0,
            )
            self.cache.keys[ref] = state
        return state

    def forget(self, ref: str) -> None:
        """The key changed in this batch (rotated, a one-time version added): read it anew."""
        self.cache.keys.pop(ref, None)

    def chain(self, version_id: int) -> Chain:
        found = self.cache.chains.get(version_id)
        if found is None:
            leaf, issuers = version_chain(self.session, version_id)
            found = self.cache.chains[version_id] = Chain(leaf, tuple(issuers),
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
