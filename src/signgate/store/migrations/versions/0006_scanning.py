"""Scanning before signing: a per-key scan policy, the hash deny-list, and each scan's
verdict kept with the signature it allowed.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("keys") as batch:
        # Existing keys keep signing as before; new keys default to "required" once a
        # scanner is configured (service/keys.py).
        batch.add_column(sa.Column("scan", sa.String(16), nullable=False,
                                   server_default="off"))
    op.create_table(
        "deny_list",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(63), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("signatures") as batch:
        batch.add_column(sa.Column("scan_json", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("signatures") as batch:
        batch.drop_column("scan_json")
    op.drop_table("deny_list")
    with op.batch_alter_table("keys") as batch:
        batch.drop_column("scan")
