"""Release windows and quotas: offline keys, a per-identity daily quota per key, and the
release windows in which offline keys sign.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("keys") as batch:
        # Existing keys keep signing as they did: online, no quota.
        batch.add_column(sa.Column("offline", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("max_per_identity_per_day", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("window_approvals", sa.Integer(), nullable=False,
                                   server_default="0"))
    op.create_table(
        "release_windows",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("key_id", sa.Integer(), sa.ForeignKey("keys.id"), nullable=False),
        sa.Column("label", sa.String(127), nullable=True),
        sa.Column("opened_by", sa.String(255), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("max_signatures", sa.Integer(), nullable=True),
        sa.Column("signers_json", sa.Text(), nullable=True),
        sa.Column("signatures", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("required_approvals", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("approvals_json", sa.Text(), nullable=True),
        sa.Column("audit_seq", sa.BigInteger(), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.String(255), nullable=True),
    )
    op.create_index("ix_release_windows_key", "release_windows", ["key_id", "until"])
    # The quota counts one identity's signatures with one key since midnight UTC:
    # ix_signatures_totals (key_version_id, identity_id, signed_at) of 0009 answers it.


def downgrade() -> None:
    op.drop_index("ix_release_windows_key", "release_windows")
    op.drop_table("release_windows")
    with op.batch_alter_table("keys") as batch:
        batch.drop_column("window_approvals")
        batch.drop_column("max_per_identity_per_day")
        batch.drop_column("offline")
