"""Web console sessions in the service (service/ui_sessions.py) on a clock the test
moves: the sliding end, the absolute 8 hours, sign-out, the audit entries, and only the
hash of the session id in the database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from signgate.errors import AuthenticationFailed
from signgate.service import identities, keys, ui_sessions
from signgate.service.context import Caller
from signgate.store.models import UiSession
from tests.integration.test_service import Env


def opened(env: Env) -> Caller:
    s = ui_sessions.open_session(env.ctx, env.admin)
    return Caller(None, "10.0.0.9", session=s.session_id)


def test_a_session_slides_with_use_and_ends_when_idle(env: Env) -> None:
    session = opened(env)
    for _ in range(15):  # 15 x 25 min: kept alive by use, far past the 30 min lifetime
        env.clock.advance(timedelta(minutes=25))
        assert ui_sessions.current(env.ctx, session).identity == "admin"
    env.clock.advance(timedelta(minutes=31))
    with pytest.raises(AuthenticationFailed):
        ui_sessions.current(env.ctx, session)
    with pytest.raises(AuthenticationFailed):  # and every use case refuses it alike
        keys.list_keys(env.ctx, session)


def test_a_session_ends_8_hours_after_sign_in_whatever_its_use(env: Env) -> None:
    session = opened(env)
    for _ in range(19):
        env.clock.advance(timedelta(minutes=25))
        ui_sessions.current(env.ctx, session)
    view = ui_sessions.current(env.ctx, session)
    assert view.expires_at <= env.clock.now() + timedelta(minutes=30)
    env.clock.advance(timedelta(hours=8) - timedelta(minutes=25 * 19))
    with pytest.raises(AuthenticationFailed):
        ui_sessions.current(env.ctx, session)


def test_only_the_hash_is_stored_and_sign_out_deletes_it(env: Env) -> None:
    s = ui_sessions.open_session(env.ctx, env.admin)
    with env.ctx.db.read() as db:
        stored = db.execute(select(UiSession.session_hash)).scalars().all()
    assert s.session_id not in stored
    assert len(stored) == 1
    caller = Caller(None, None, session=s.session_id)
    ui_sessions.close_session(env.ctx, caller)
    with pytest.raises(AuthenticationFailed):
        ui_sessions.current(env.ctx, caller)
    actions = [(e.action, e.outcome) for e in env.entries() if e.action.startswith("ui.")]
    assert actions == [("ui.session.create", "allowed"), ("ui.session.end", "allowed")]


def test_a_session_is_opened_only_with_a_valid_token(env: Env) -> None:
    with pytest.raises(AuthenticationFailed):
        ui_sessions.open_session(env.ctx, Caller("sgt_nope", "10.0.0.9"))
    token = identities.create(env.ctx, env.admin, "carol").token
    identities.set_enabled(env.ctx, env.admin, "carol", False)
    with pytest.raises(AuthenticationFailed):
        ui_sessions.open_session(env.ctx, Caller(token, "10.0.0.9"))
