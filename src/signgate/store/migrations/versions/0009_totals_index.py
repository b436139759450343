"""An index that holds exactly what the signature totals group and count (key version,
identity, time), so ``report signatures``' totals read no table rows.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_signatures_totals", "signatures",
                    ["key_version_id", "identity_id", "signed_at"])


def downgrade() -> None:
    op.drop_index("ix_signatures_totals", "signatures")
