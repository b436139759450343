"""Timestamped signatures: a key policy that demands them, and the token kept with each
signature record. One-time keys: a fresh key pair and certificate for every signing.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("keys") as batch:
        batch.add_column(sa.Column("require_timestamp", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("one_time", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    with op.batch_alter_table("signatures") as batch:
        batch.add_column(sa.Column("timestamp_token", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("signatures") as batch:
        batch.drop_column("timestamp_token")
    with op.batch_alter_table("keys") as batch:
        batch.drop_column("one_time")
        batch.drop_column("require_timestamp")
