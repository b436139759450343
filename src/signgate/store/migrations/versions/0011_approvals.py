"""Quorum approvals: a per-key approval policy, pending signing requests and the
approvals (or denial) each received.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("keys") as batch:
        # Existing keys keep signing at once.
        batch.add_column(sa.Column("approvals", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("approver_scope", sa.String(127), nullable=True))
    op.create_table(
        "approval_requests",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("key_id", sa.Integer(), sa.ForeignKey("keys.id"), nullable=False),
        sa.Column("requester_id", sa.Integer(), sa.ForeignKey("identities.id"),
                  nullable=False),
        sa.Column("artifact_name", sa.Text(), nullable=False),
        sa.Column("digest_algorithm", sa.String(16), nullable=False),
        sa.Column("digest", sa.String(128), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("params_json", sa.Text(), nullable=False),
        sa.Column("metadata_json", sa.Text(), nullable=False),
        sa.Column("timestamp", sa.Boolean(), nullable=False),
        sa.Column("scan_json", sa.Text(), nullable=True),
        sa.Column("client_address", sa.String(64), nullable=True),
        sa.Column("federation_json", sa.Text(), nullable=True),
        sa.Column("required", sa.Integer(), nullable=False),
        sa.Column("approver_scope", sa.String(127), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("audit_seq", sa.BigInteger(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("signature_id", sa.String(36), nullable=True),
        sa.Column("result_json", sa.Text(), nullable=True),
    )
    op.create_index("ix_approval_requests_key_id", "approval_requests", ["key_id"])
    op.create_index("ix_approval_requests_state", "approval_requests",
                    ["state", "expires_at"])
    op.create_index("ix_approval_requests_same", "approval_requests",
                    ["requester_id", "key_id", "digest"])
    op.create_table(
        "approvals",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("request_id", sa.String(36), sa.ForeignKey("approval_requests.id"),
                  nullable=False),
        sa.Column("identity_id", sa.Integer(), sa.ForeignKey("identities.id"),
                  nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("audit_seq", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("request_id", "identity_id"),
    )
    op.create_index("ix_approvals_request_id", "approvals", ["request_id"])


def downgrade() -> None:
    op.drop_index("ix_approvals_request_id", "approvals")
    op.drop_table("approvals")
    op.drop_index("ix_approval_requests_same", "approval_requests")
    op.drop_index("ix_approval_requests_state", "approval_requests")
    op.drop_index("ix_approval_requests_key_id", "approval_requests")
    op.drop_table("approval_requests")
    with op.batch_alter_table("keys") as batch:
        batch.drop_column("approver_scope")
        batch.drop_column("approvals")
