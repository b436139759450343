"""OIDC issuers and their claim bindings inside a session. Session helpers only; the use
cases are service/oidc.py (issuers, the exchange) and service/grants.py (bindings)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from signgate.errors import NotFound
from signgate.policy.claims import ClaimBinding
from signgate.policy.model import Role, Scope
from signgate.service.oidc_verify import IssuerConfig
from signgate.store.models import OidcGrant, OidcIssuer

IDENTITY_PREFIX = "oidc-"


def identity_name(issuer: str) -> str:
    """The identity the issuer's exchanged tokens act as."""
    return IDENTITY_PREFIX + issuer


def get_issuer(session: Session, name: str) -> OidcIssuer:
    row = session.execute(select(OidcIssuer).where(OidcIssuer.name == name)
                          ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"no OIDC issuer named {name!r}")
    return row


def issuer_by_url(session: Session, issuer: str) -> OidcIssuer | None:
    return session.execute(select(OidcIssuer).where(OidcIssuer.issuer == issuer)
                           ).scalar_one_or_none()


def config(row: OidcIssuer) -> IssuerConfig:
    return IssuerConfig(row.name, row.issuer, row.audience, row.jwks_url)


def binding(issuer: OidcIssuer, row: OidcGrant) -> ClaimBinding:
    return ClaimBinding.from_json(issuer.name, Role(row.role), Scope.parse(row.scope),
                                  row.claims_json)


def bindings(session: Session, issuer: OidcIssuer) -> list[ClaimBinding]:
    rows = session.execute(select(OidcGrant).where(OidcGrant.issuer_id == issuer.id)
                           .order_by(OidcGrant.id)).scalars().all()
    return [binding(issuer, r) for r in rows]
