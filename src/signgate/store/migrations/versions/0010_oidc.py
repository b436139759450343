"""CI identities from OIDC: issuers, claim-bound grants, the short-lived tokens of
exchanges, the CI tokens' jti (each exchanged once), and the issuer and claims kept with
each signature made that way.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oidc_issuers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(63), nullable=False, unique=True),
        sa.Column("issuer", sa.String(512), nullable=False, unique=True),
        sa.Column("audience", sa.String(512), nullable=False),
        sa.Column("jwks_url", sa.String(1024), nullable=False),
        sa.Column("identity_id", sa.Integer(), sa.ForeignKey("identities.id"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(63), nullable=False),
    )
    op.create_table(
        "oidc_grants",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("issuer_id", sa.Integer(), sa.ForeignKey("oidc_issuers.id"), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("scope", sa.String(127), nullable=False),
        sa.Column("claims_json", sa.String(4096), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("issuer_id", "role", "scope", "claims_json"),
    )
    op.create_table(
        "oidc_sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("issuer_id", sa.Integer(), sa.ForeignKey("oidc_issuers.id"), nullable=False),
        sa.Column("identity_id", sa.Integer(), sa.ForeignKey("identities.id"), nullable=False),
        sa.Column("grants_json", sa.Text(), nullable=False),
        sa.Column("claims_json", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_oidc_sessions_expires_at", "oidc_sessions", ["expires_at"])
    op.create_table(
        "oidc_jtis",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("issuer_id", sa.Integer(), sa.ForeignKey("oidc_issuers.id"), nullable=False),
        sa.Column("jti", sa.String(255), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("issuer_id", "jti"),
    )
    op.create_index("ix_oidc_jtis_expires_at", "oidc_jtis", ["expires_at"])
    with op.batch_alter_table("signatures") as batch:
        batch.add_column(sa.Column("oidc_json", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("signatures") as batch:
        batch.drop_column("oidc_json")
    op.drop_index("ix_oidc_jtis_expires_at", "oidc_jtis")
    op.drop_table("oidc_jtis")
    op.drop_index("ix_oidc_sessions_expires_at", "oidc_sessions")
    op.drop_table("oidc_sessions")
    op.drop_table("oidc_grants")
    op.drop_table("oidc_issuers")
