"""Release windows of offline keys: open, close, list.

An offline key (``key policy --offline``) signs only inside an open release window: an
admin of the key opens one until a time, optionally for at most N signatures and only for
the identities it lists. Each opening and closing is an audit entry; the signing pipeline
counts the window's signatures in its transaction (``pipeline/release.py``), and
``policy/windows.py`` decides.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from signgate.audit.model import Action, Outcome, Record
from signgate.errors import CATALOGUE, Conflict, Denied, ErrorCode, InvalidInput, NotFound
from signgate.policy import decide
from signgate.policy import windows as policy
from signgate.policy.approvals import check_comment
from signgate.policy.model import Actor, Role
from signgate.service.context import Caller, Context, Target, require
from signgate.service.records.keys import get_key, split_ref, visible_key
from signgate.service.records.windows import approvals, window
from signgate.service.views import ReleaseWindowView
from signgate.store.models import Identity, Key, Project, ReleaseWindow

MAX_LISTED = 1000
MAX_WINDOW_ID = 36


def open_window(ctx: Context, caller: Caller, ref: str, until: datetime,
                max_signatures: int | None = None, signers: Sequence[str] = (),
                label: str | None = None) -> ReleaseWindowView:
    """Open a release window for ``ref`` (admins of the key; recorded)."""
    project, name = split_ref(ref)

    def run(session: Session, actor: Actor) -> ReleaseWindowView:
        now = ctx.clock.now()
        asked = policy.WindowRequest.parse(now, until, max_signatures, signers, label)
        d = decide.may_manage(actor, project, name)
        require(d.allowed, d.reason)
        key = get_key(session, project, name)
        if asked.signers:
            known = set(session.execute(select(Identity.name).where(
                Identity.name.in_(sorted(asked.signers)))).scalars())
            unknown = sorted(asked.signers - known)
            if unknown:
                raise InvalidInput(f"--signer names no identity: {', '.join(unknown)}",
                                   code=ErrorCode.BAD_RELEASE_POLICY)
        window_id = str(uuid.uuid4())
        signer_list = sorted(asked.signers) if asked.signers else None
        required = key.window_approvals or 0
        details: dict[str, object] = {
            "window": window_id, "label": asked.label, "until": asked.until.isoformat(),
            "max_signatures": asked.max_signatures, "signers": signer_list,
            "key_offline": bool(key.offline), "required_approvals": required}
        seq = ctx.record(session, Record(actor.name, Action.WINDOW_OPEN, Outcome.ALLOWED,
                                         ref, project, ref, details), now)
        row = ReleaseWindow(
            id=window_id, key_id=key.id, label=asked.label, opened_by=actor.name,
            opened_at=now, until=asked.until, max_signatures=asked.max_signatures,
            signers_json=json.dumps(signer_list) if signer_list else None, signatures=0,
            required_approvals=required, approvals_json=None, audit_seq=seq)
        session.add(row)
        session.flush()
        return _view(row, ref, now)

    return ctx.write(caller, Target(Action.WINDOW_OPEN, ref, project, ref), run)


def close_window(ctx: Context, caller: Caller, window_id: str) -> ReleaseWindowView:
    """Close an open window now (admins of its key; recorded)."""

    def run(session: Session, actor: Actor) -> ReleaseWindowView:
        now = ctx.clock.now()
        row, key = _find(session, actor, window_id)
        ref = f"{key.project.name}/{key.name}"
        d = decide.may_manage(actor, key.project.name, key.name)
        require(d.allowed, d.reason)
        state = window(row).state(now)
        if state not in (policy.WindowState.OPEN, policy.WindowState.PENDING):
            raise Conflict(f"release window {window_id} is already {state.value}",
                           code=ErrorCode.WINDOW_CLOSED)
        row.closed_at, row.closed_by = now, actor.name
        ctx.record(session, Record(actor.name, Action.WINDOW_CLOSE, Outcome.ALLOWED, ref,
                                   key.project.name, ref,
                                   {"window": window_id, "label": row.label,
                                    "signatures": row.signatures}), now)
        session.flush()
        return _view(row, ref, now)

    return ctx.write(caller, Target(Action.WINDOW_CLOSE, window_id), run)


def approve_window(ctx: Context, caller: Caller, window_id: str,
                   comment: str | None = None) -> ReleaseWindowView:
    """Approve a window that waits for approvals (``key policy --window-approvals M``):
    approvers of its key, never its opener, each once; the M-th approval opens it."""

    def run(session: Session, actor: Actor) -> ReleaseWindowView:
        now = ctx.clock.now()
        text = check_comment(comment, "--comment")
        row, key = _find(session, actor, window_id)
        ref = f"{key.project.name}/{key.name}"
        d = policy.may_approve_window(actor.name, actor.has(Role.APPROVER, key.project.name,
                                                            key.name), window(row), now)
        if not d.allowed:
            raise (CATALOGUE[d.code].cls if d.code else Denied)(d.reason, code=d.code)
        found = approvals(row)
        seq = ctx.record(session, Record(actor.name, Action.WINDOW_APPROVE, Outcome.ALLOWED,
                                         ref, key.project.name, ref,
                                         {"window": window_id, "comment": text,
                                          "approvals": len(found) + 1,
                                          "required": row.required_approvals}), now)
        found.append({"identity": actor.name, "at": now.isoformat(), "audit_seq": seq,
                      "comment": text})
        row.approvals_json = json.dumps(found)
        session.flush()
        return _view(row, ref, now)

    return ctx.write(caller, Target(Action.WINDOW_APPROVE, window_id), run)


def list_windows(ctx: Context, caller: Caller, ref: str | None = None,
                 open_only: bool = False) -> list[ReleaseWindowView]:
    """The release windows of ``ref`` (or of every key the caller may see), newest
    first."""
    where = split_ref(ref) if ref is not None else None

    def run(session: Session, actor: Actor) -> list[ReleaseWindowView]:
        now = ctx.clock.now()
        stmt = (select(ReleaseWindow, Key).join(Key, ReleaseWindow.key_id == Key.id)
                .join(Project, Key.project_id == Project.id)
                .order_by(ReleaseWindow.opened_at.desc(), ReleaseWindow.id))
        if where is not None:
            key = visible_key(session, actor, *where)
            stmt = stmt.where(Key.id == key.id)
        if open_only:
            stmt = stmt.where(ReleaseWindow.closed_at.is_(None), ReleaseWindow.until > now)
        out: list[ReleaseWindowView] = []
        for row, key in session.execute(stmt.limit(MAX_LISTED * 4)):
            if not decide.may_see(actor, key.project.name, key.name):
                continue
            view = _view(row, f"{key.project.name}/{key.name}", now)
            if open_only and view.state != policy.WindowState.OPEN.value:
                continue
            out.append(view)
            if len(out) >= MAX_LISTED:
                break
        return out

    return ctx.read(caller, Target(Action.READ, ref or "release windows"), run)


def _find(session: Session, actor: Actor, window_id: str) -> tuple[ReleaseWindow, Key]:
    """The window and its key, if ``actor`` may see the key; else NotFound as for a
    missing window."""
    if not window_id or len(window_id) > MAX_WINDOW_ID:
        raise NotFound(f"no release window {window_id!r}")
    found = session.execute(select(ReleaseWindow, Key)
                            .join(Key, ReleaseWindow.key_id == Key.id)
                            .where(ReleaseWindow.id == window_id)).first()
    if found is None or not decide.may_see(actor, found[1].project.name, found[1].name):
        raise NotFound(f"no release window {window_id!r}")
    return found[0], found[1]


def _view(row: ReleaseWindow, ref: str, now: datetime) -> ReleaseWindowView:
    w = window(row)
    return ReleaseWindowView(
        id=row.id, key=ref, label=row.label, state=w.state(now).value,
        opened_by=row.opened_by, opened_at=row.opened_at, until=row.until,
        max_signatures=row.max_signatures,
        signers=sorted(w.signers) if w.signers is not None else None,
        signatures=row.signatures or 0, closed_at=row.closed_at, closed_by=row.closed_by,
        required_approvals=row.required_approvals or 0, approvals=approvals(row))
