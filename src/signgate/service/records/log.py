"""The log key: made once (at ``init``, or by the first ``serve`` of an older database)."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from signgate.audit.model import Action, Outcome, Record
from signgate.audit.tree import LogTree
from signgate.crypto.algorithms import KeyAlgorithm
from signgate.errors import ErrorCode, Unavailable
from signgate.service.checkpoints import note_signer
from signgate.service.context import Context
from signgate.store.models import AuditHead, LogCheckpoint, LogKey


def origin_for(public_url: str) -> str:
    """The log's origin line: ``HOST[/PATH]/log`` of the public URL (C2SP recommends a
    schema-less URL), or a unique name when signgate has no public URL yet. It is fixed
    when the log key is made and never changes (it names the log in every checkpoint)."""
    parts = urlsplit(public_url)
    host = parts.hostname or ""
    if host and host not in ("127.0.0.1", "localhost", "::1"):
        port = f":{parts.port}" if parts.port else ""
        return f"{host}{port}{parts.path.rstrip('/')}/log"
    return f"signgate-{uuid.uuid4().hex[:16]}/log"


def ensure_log_key(ctx: Context, session: Session) -> bool:
    """Make the log key if there is none; True if it was made now."""
    if session.execute(select(LogKey.id)).first() is not None:
        return False
    generated = ctx.keystores.generate(KeyAlgorithm.ED25519)
    now = ctx.clock.now()
    key = LogKey(origin=origin_for(ctx.settings.public_url), key_uri=generated.uri,
                 public_key_pem=generated.public_key_pem, created_at=now)
    session.add(key)
    session.flush()
    verifier = note_signer(ctx.keystores, key).verifier.verifier_key
    ctx.record(session, Record("signgate", Action.LOG_CREATE, Outcome.ALLOWED, key.origin,
                               details={"verifier_key": verifier, "key_uri": key.key_uri}), now)
    return True


def log_key(session: Session) -> LogKey:
    key = session.execute(select(LogKey).order_by(LogKey.id)).scalars().first()
    if key is None:
        raise Unavailable("the log has no key yet (restart 'signgate serve')",
                          code=ErrorCode.LOG_NOT_READY)
    return key


def latest_checkpoint(session: Session) -> LogCheckpoint:
    row = session.execute(select(LogCheckpoint).order_by(LogCheckpoint.size.desc())
                          .limit(1)).scalars().first()
    if row is None:
        raise Unavailable("the log has no checkpoint yet", code=ErrorCode.LOG_NOT_READY)
    return row


def log_tree(ctx: Context, session: Session) -> LogTree:
    """The tree as ``session`` sees it (read it in a snapshot for proofs that must agree
    with a checkpoint read in the same session)."""
    size = session.execute(select(AuditHead.tree_size)).scalar_one()
    return LogTree(session.connection(), size, ctx.log_hashes)
