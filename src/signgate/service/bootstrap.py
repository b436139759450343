"""The first identity: created by 'signgate init', with admin and auditor on everything."""

from __future__ import annotations

from sqlalchemy import func, select

from signgate.audit.model import Action, Outcome, Record
from signgate.crypto.tokens import new_token, token_hash
from signgate.errors import Conflict
from signgate.policy.model import GLOBAL_SCOPE, IdentityKind, Role, check_name
from signgate.service.context import Context
from signgate.store.models import GrantRow, Identity


def bootstrap_admin(ctx: Context, name: str = "admin") -> str:
    """Create the bootstrap admin and return its token (shown once, never stored)."""
    check_name("identity", name)
    with ctx.transaction() as session:
        if session.execute(select(func.count()).select_from(Identity)).scalar_one():
            raise Conflict("signgate is already initialised: identities exist")
        token = new_token()
        now = ctx.clock.now()
        admin = Identity(name=name, kind=IdentityKind.USER.value, enabled=True,
                         token_hash=token_hash(token), created_at=now)
        session.add(admin)
        session.flush()
        for role in (Role.ADMIN, Role.AUDITOR):
            session.add(GrantRow(identity_id=admin.id, role=role.value, scope=GLOBAL_SCOPE,
                                 created_at=now))
        ctx.record(session, Record("signgate", Action.INIT, Outcome.ALLOWED, name,
                                   details={"grants": ["admin:*", "auditor:*"]}), now)
    return token
