"""The transparency log: the Merkle tree's stored hashes, the log key, signed checkpoints,
and how many entries the tree covers (built by the next writer, from the entries).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_head") as batch:
        batch.add_column(sa.Column("tree_size", sa.BigInteger(), nullable=False,
                                   server_default="0"))
    op.create_table(
        "log_hashes",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "log_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("origin", sa.String(255), nullable=False, unique=True),
        sa.Column("key_uri", sa.String(255), nullable=False, unique=True),
        sa.Column("public_key_pem", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "log_checkpoints",
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root_hash", sa.LargeBinary(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cosignatures", sa.Integer(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("size"),
    )


def downgrade() -> None:
    op.drop_table("log_checkpoints")
    op.drop_table("log_keys")
    op.drop_table("log_hashes")
    with op.batch_alter_table("audit_head") as batch:
        batch.drop_column("tree_size")
