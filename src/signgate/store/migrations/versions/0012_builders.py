"""Independent-build agreement: a per-key number of builders that must agree, the release
label a held signing belongs to, and each builder's submission.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("keys") as batch:
        # Existing keys sign without builders.
        batch.add_column(sa.Column("require_builders", sa.Integer(), nullable=False,
                                   server_default="0"))
    with op.batch_alter_table("approval_requests") as batch:
        # "awaiting_builders" is longer than the states of 0011.
        batch.alter_column("state", type_=sa.String(24), existing_type=sa.String(16),
                           existing_nullable=False)
        batch.add_column(sa.Column("release", sa.String(128), nullable=True))
        # SHA-256 of (artifact name, release label): one request per release of an
        # artifact and key (NULL for requests without builders, never equal to another).
        batch.add_column(sa.Column("release_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("builders_required", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.create_unique_constraint("uq_approval_requests_release",
                                       ["key_id", "release_id"])
    op.create_table(
        "builder_submissions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("request_id", sa.String(36), sa.ForeignKey("approval_requests.id"),
                  nullable=False),
        sa.Column("identity_id", sa.Integer(), sa.ForeignKey("identities.id"),
                  nullable=False),
        sa.Column("digest", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("audit_seq", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("request_id", "identity_id"),
    )
    op.create_index("ix_builder_submissions_request_id", "builder_submissions",
                    ["request_id"])


def downgrade() -> None:
    op.drop_index("ix_builder_submissions_request_id", "builder_submissions")
    op.drop_table("builder_submissions")
    with op.batch_alter_table("approval_requests") as batch:
        batch.drop_constraint("uq_approval_requests_release", type_="unique")
        batch.drop_column("builders_required")
        batch.drop_column("release_id")
        batch.drop_column("release")
        batch.alter_column("state", type_=sa.String(16), existing_type=sa.String(24),
                           existing_nullable=False)
    with op.batch_alter_table("keys") as batch:
        batch.drop_column("require_builders")
