"""Indexes for the signature reports: by identity, and the audit entry order that pages
them (``signgate report signatures``).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_signatures_identity", "signatures", ["identity_id", "signed_at"])
    op.create_index("ix_signatures_audit_seq", "signatures", ["audit_seq"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_signatures_audit_seq", "signatures")
    op.drop_index("ix_signatures_identity", "signatures")
