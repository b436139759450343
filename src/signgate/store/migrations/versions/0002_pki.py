"""PKI: signgate's own CAs (root, one issuing CA per project), every certificate it
issued, and a per-key certificate validity.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "authorities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("algorithm", sa.String(length=16), nullable=False),
        sa.Column("key_uri", sa.String(length=255), nullable=False),
        sa.Column("public_key_pem", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_uri"),
        sa.UniqueConstraint("project_id"),
    )
    op.create_table(
        "certificates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("serial", sa.String(length=40), nullable=False),
        sa.Column("profile", sa.String(length=16), nullable=False),
        sa.Column("issuer_id", sa.Integer(), nullable=True),
        sa.Column("authority_id", sa.Integer(), nullable=True),
        sa.Column("key_version_id", sa.Integer(), nullable=True),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revocation_reason", sa.String(length=32), nullable=True),
        sa.Column("invalidity_date", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["authority_id"], ["authorities.id"]),
        sa.ForeignKeyConstraint(["issuer_id"], ["authorities.id"]),
        sa.ForeignKeyConstraint(["key_version_id"], ["key_versions.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("serial"),
        sa.UniqueConstraint("sha256"),
    )
    with op.batch_alter_table("certificates") as batch:
        batch.create_index("ix_certificates_authority_id", ["authority_id"])
        batch.create_index("ix_certificates_key_version_id", ["key_version_id"])
    with op.batch_alter_table("keys") as batch:
        batch.add_column(sa.Column("cert_validity_days", sa.Integer(), nullable=False,
                                   server_default="365"))


def downgrade() -> None:
    with op.batch_alter_table("keys") as batch:
        batch.drop_column("cert_validity_days")
    op.drop_table("certificates")
    op.drop_table("authorities")
