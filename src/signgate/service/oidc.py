"""CI identities from OIDC: the issuers signgate trusts, and the exchange of a CI job's
OIDC token for a short-lived signgate token.

An issuer (``signgate oidc issuer add``) comes with an identity of its own, ``oidc-NAME``:
what its exchanged tokens act as, so that signatures, reports and the audit log name it
like any identity. What such a token may do is not that identity's grants but the claim
bindings (``grant add --oidc``) its CI token matched at the exchange (policy/claims.py),
frozen into the short-lived token with the matched claims. The token is stored only as a
hash, with its expiry, in the database: every node accepts it, none after it expired.

Every exchange is an audit entry, refusals included, each with one reason and code:
the issuer, the claims it was bound to (or, refused, why), the client address.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from signgate.audit.model import Action, Outcome, Record
from signgate.crypto.tokens import new_token, token_hash
from signgate.errors import (
    AuthenticationFailed,
    Conflict,
    ErrorCode,
    InvalidInput,
    SigngateError,
    Unavailable,
)
from signgate.policy import claims as claim_policy
from signgate.policy import decide
from signgate.policy.model import NAME_RE, Actor, IdentityKind, check_name
from signgate.service.context import ANONYMOUS, Caller, Context, Target, require
from signgate.service.jwks import check_url, discover_jwks_url
from signgate.service.oidc_verify import MAX_JTI, expiry, peek_issuer, verify
from signgate.service.records import oidc as records
from signgate.service.records.oidc import IDENTITY_PREFIX, identity_name
from signgate.service.views import OidcIssuerView, OidcTokenView
from signgate.store.models import (
    GrantRow,
    Identity,
    OidcGrant,
    OidcIssuer,
    OidcJti,
    OidcSession,
)

MAX_URL = 512


def _view(session: Session, row: OidcIssuer) -> OidcIssuerView:
    ident = session.get(Identity, row.identity_id)
    assert ident is not None
    return OidcIssuerView(row.name, row.issuer, row.audience, row.jwks_url, ident.name,
                          row.created_at, row.created_by)


def _check_text(what: str, value: str, limit: int = MAX_URL) -> str:
    if not value or len(value) > limit or any(ord(c) < 33 for c in value):
        raise InvalidInput(f"{what} must be 1 to {limit} printable characters without spaces")
    return value


def add_issuer(ctx: Context, caller: Caller, name: str, issuer: str, audience: str,
               jwks_url: str | None = None) -> OidcIssuerView:
    """Trust ``issuer`` (global admins); its JWKS URL comes from its discovery document
    unless given."""
    target = Target(Action.OIDC_ISSUER_ADD, name)
    check_name("OIDC issuer", name)
    if not NAME_RE.match(identity_name(name)):
        raise InvalidInput(f"OIDC issuer name {name!r} is too long (at most "
                           f"{63 - len(IDENTITY_PREFIX)} characters)", code=ErrorCode.BAD_NAME)
    check_url(_check_text("issuer", issuer), "issuer")
    _check_text("audience", audience)
    if jwks_url is not None:
        check_url(_check_text("JWKS URL", jwks_url, 1024), "JWKS URL")

    def authorize(session: Session, actor: Actor) -> None:
        d = decide.may_manage(actor, None)
        require(d.allowed, d.reason)

    # Admins only, before anything is fetched on their behalf.
    ctx.read(caller, target, authorize)
    url = jwks_url if jwks_url is not None else _discover(ctx, issuer)

    def run(session: Session, actor: Actor) -> OidcIssuerView:
        authorize(session, actor)
        if session.execute(select(OidcIssuer.id).where(OidcIssuer.name == name)).first():
            raise Conflict(f"OIDC issuer {name!r} already exists")
        if records.issuer_by_url(session, issuer) is not None:
            raise Conflict(f"issuer {issuer} is already configured")
        ident = _issuer_identity(session, name, ctx.clock.now())
        row = OidcIssuer(name=name, issuer=issuer, audience=audience, jwks_url=url,
                         identity_id=ident.id, created_at=ctx.clock.now(),
                         created_by=actor.name)
        session.add(row)
        session.flush()
        ctx.record(session, Record(actor.name, Action.OIDC_ISSUER_ADD, Outcome.ALLOWED, name,
                                   details={"issuer": issuer, "audience": audience,
                                            "jwks_url": url, "identity": ident.name}))
        return _view(session, row)

    return ctx.write(caller, target, run)


def _discover(ctx: Context, issuer: str) -> str:
    """The issuer's JWKS URL from its discovery document. Failing here is the admin's to
    fix (a wrong URL, an issuer that is not OIDC, no route to it): 400, not an outage."""
    try:
        return discover_jwks_url(issuer, ctx.jwks.transport)
    except Unavailable as exc:
        raise InvalidInput(f"cannot add OIDC issuer {issuer}: {exc} (check the URL, or give "
                           "--jwks-url)", code=ErrorCode.OIDC_DISCOVERY_FAILED) from exc


def _issuer_identity(session: Session, name: str, now: datetime) -> Identity:
    """The identity the issuer's exchanged tokens act as: new, or the one of a removed
    issuer of the same name (disabled when it was removed; its signatures stay its own)."""
    ident_name = identity_name(name)
    ident = session.execute(select(Identity).where(Identity.name == ident_name)
                            ).scalar_one_or_none()
    if ident is None:
        # A token no one is given: the identity is reached only through exchanges.
        ident = Identity(name=ident_name, kind=IdentityKind.SERVICE.value, enabled=True,
                         token_hash=token_hash(new_token()), created_at=now)
        session.add(ident)
        session.flush()
        return ident
    reused = session.execute(select(OidcIssuer.id).where(OidcIssuer.identity_id == ident.id)
                             ).first()
    has_grants = session.execute(select(GrantRow.id).where(GrantRow.identity_id == ident.id)
                                 ).first()
    if reused or ident.enabled or has_grants:
        raise Conflict(f"identity {ident_name} already exists: name the issuer otherwise")
    ident.enabled = True
    ident.token_hash = token_hash(new_token())
    return ident


def list_issuers(ctx: Context, caller: Caller) -> list[OidcIssuerView]:
    def run(session: Session, actor: Actor) -> list[OidcIssuerView]:
        d = decide.may_manage(actor, None)
        require(d.allowed, d.reason)
        rows = session.execute(select(OidcIssuer).order_by(OidcIssuer.name)).scalars().all()
        return [_view(session, r) for r in rows]

    return ctx.read(caller, Target(Action.READ, "oidc issuers"), run)


def remove_issuer(ctx: Context, caller: Caller, name: str) -> OidcIssuerView:
    """Stop trusting the issuer: its bindings and unexpired tokens go at once, its identity
    is disabled (kept: the signatures it made still name it)."""

    def run(session: Session, actor: Actor) -> OidcIssuerView:
        d = decide.may_manage(actor, None)
        require(d.allowed, d.reason)
        row = records.get_issuer(session, name)
        view = _view(session, row)
        for model in (OidcGrant, OidcSession, OidcJti):
            session.execute(delete(model).where(model.issuer_id == row.id))
        ident = session.get(Identity, row.identity_id)
        assert ident is not None
        ident.enabled = False
        session.delete(row)
        ctx.record(session, Record(actor.name, Action.OIDC_ISSUER_REMOVE, Outcome.ALLOWED,
                                   name, details={"issuer": view.issuer,
                                                  "identity": view.identity}))
        return view

    return ctx.write(caller, Target(Action.OIDC_ISSUER_REMOVE, name), run)


def exchange(ctx: Context, token: str, address: str | None) -> OidcTokenView:
    """A short-lived signgate token for a CI job's OIDC ``token``, bound to the grants its
    claims match; every refusal is recorded with its reason, then raised (401, or 503
    when the issuer's keys cannot be fetched)."""
    seen: dict[str, Any] = {}  # what the audit entry of a refusal can say
    try:
        return _exchange(ctx, token, address, seen)
    except (AuthenticationFailed, Unavailable) as exc:
        # Counted with the failed authentications of the address: past their limit, 429
        # and a place in the window's summary entry instead of an entry of its own.
        throttled = ctx.auth_failures.refused_elsewhere(
            Caller(None, address), Target(Action.OIDC_EXCHANGE, seen.get("issuer", "")))
        if throttled is not None:
            raise throttled from None
        _record_refusal(ctx, exc, address, seen)
        raise


def _exchange(ctx: Context, token: str, address: str | None,
              seen: dict[str, Any]) -> OidcTokenView:
    iss = peek_issuer(token)
    seen["iss"] = iss[:200]
    with ctx.db.read() as session:
        row = records.issuer_by_url(session, iss)
        if row is None:
            raise AuthenticationFailed(f"OIDC token refused: issuer {iss[:200]!r} is not "
                                       "configured (signgate oidc issuer add)",
                                       code=ErrorCode.OIDC_UNKNOWN_ISSUER)
        cfg = records.config(row)
    seen["issuer"] = cfg.name
    claims = verify(token, cfg, ctx.jwks, ctx.clock.now())
    seen["claims"] = {k: v for k, v in claim_policy.match(cfg.name, (), claims).claims}

    with ctx.transaction() as session:
        now = ctx.clock.now()
        row = records.get_issuer(session, cfg.name)  # still there, and still the same
        if row.issuer != cfg.issuer or row.jwks_url != cfg.jwks_url:
            raise Conflict("the OIDC issuer changed during the exchange: retry")
        session.execute(delete(OidcJti).where(OidcJti.expires_at < now))
        session.execute(delete(OidcSession).where(OidcSession.expires_at < now))
        jti = str(claims["jti"])[:MAX_JTI]
        _consume_jti(session, row, jti, expiry(claims))
        m = claim_policy.match(cfg.name, records.bindings(session, row), claims)
        seen["claims"] = dict(m.claims)
        if not m.allowed:
            raise AuthenticationFailed(f"OIDC token refused: {m.reason}",
                                       code=ErrorCode.OIDC_NO_GRANT)
        ident = session.get(Identity, row.identity_id)
        assert ident is not None
        if not ident.enabled:  # an admin stopped the issuer's jobs ('identity disable')
            raise AuthenticationFailed(f"OIDC token refused: identity {ident.name} is "
                                       "disabled", code=ErrorCode.OIDC_NO_GRANT)
        secret = new_token()
        ends = now + timedelta(minutes=ctx.settings.oidc_token_minutes)
        grants = [[g.role.value, str(g.scope)] for g in m.grants]
        session.add(OidcSession(token_hash=token_hash(secret), issuer_id=row.id,
                                identity_id=ident.id, grants_json=json.dumps(grants),
                                claims_json=json.dumps(dict(m.claims), sort_keys=True),
                                created_at=now, expires_at=ends))
        details: dict[str, object] = {"issuer": cfg.name, "claims": dict(m.claims),
                                      "grants": [f"{r}:{s}" for r, s in grants],
                                      "expires_at": ends.isoformat()}
        if address:
            details["client"] = address
        ctx.record(session, Record(ident.name, Action.OIDC_EXCHANGE, Outcome.ALLOWED,
                                   cfg.name, details=details), now)
        return OidcTokenView(secret, ends, ident.name, cfg.name,
                             [f"{r}:{s}" for r, s in grants], dict(m.claims))


def _consume_jti(session: Session, issuer: OidcIssuer, jti: str, until: datetime) -> None:
    """Each CI token is exchanged once. The audit head lock serialises exchanges; the
    unique key stops a second one anyway."""
    taken = session.execute(select(OidcJti.id).where(OidcJti.issuer_id == issuer.id,
                                                     OidcJti.jti == jti)).first()
    replayed = AuthenticationFailed(f"OIDC token refused: jti {jti[:80]!r} was exchanged "
                                    "before (a replayed token)", code=ErrorCode.OIDC_REPLAYED)
    if taken:
        raise replayed
    try:
        with session.begin_nested():
            session.add(OidcJti(issuer_id=issuer.id, jti=jti, expires_at=until))
    except IntegrityError:
        raise replayed from None


def _record_refusal(ctx: Context, exc: SigngateError, address: str | None,
                    seen: dict[str, Any]) -> None:
    details: dict[str, object] = {"reason": str(exc), "code": exc.code, **seen}
    if address:
        details["client"] = address
    actor = identity_name(seen["issuer"]) if "issuer" in seen else ANONYMOUS
    with ctx.transaction() as session:
        ctx.record(session, Record(actor, Action.OIDC_EXCHANGE, Outcome.REFUSED,
                                   str(seen.get("issuer", "unknown issuer")),
                                   details=details))
