"""Storage per signature: the signature row points at its audit entry instead of repeating
it, and every log or report page has an index matching its filter and order.

The signature rows lose what their audit entries hold (id, artifact name, digest and its
algorithm, format, signature hash, client, metadata, scan, OIDC: the entries have held
all of it since the first version) and keep what queries select on: key version,
identity, time, and the first 8 bytes of the signature hash, keyed by the entry's seq.
Audit entries are not touched (their canonical bytes are what the chain and the log's
tree hash). The single-column audit indexes become (column, seq).

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_BATCH = 10_000


def _prefix(hex_hash: str) -> int:
    return int.from_bytes(bytes.fromhex(hex_hash[:16]), "big", signed=True)


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    op.create_table(
        "signatures_0014",
        # SQLite: INTEGER PRIMARY KEY is the rowid, so the key costs no second B-tree.
        sa.Column("audit_seq", sa.Integer() if sqlite else sa.BigInteger(), primary_key=True,
                  autoincrement=False),
        sa.Column("key_version_id", sa.Integer(), sa.ForeignKey("key_versions.id"),
                  nullable=False),
        sa.Column("identity_id", sa.Integer(), sa.ForeignKey("identities.id"),
                  nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("signature_prefix", sa.BigInteger(), nullable=False),
        sa.Column("timestamp_token", sa.LargeBinary(), nullable=True),
    )
    old = sa.table("signatures", sa.column("audit_seq"), sa.column("key_version_id"),
                   sa.column("identity_id"), sa.column("signed_at"),
                   sa.column("signature_sha256"), sa.column("timestamp_token"))
    new = sa.table("signatures_0014", sa.column("audit_seq"), sa.column("key_version_id"),
                   sa.column("identity_id"), sa.column("signed_at"),
                   sa.column("signature_prefix"), sa.column("timestamp_token"))
    after = -1
    while True:  # in batches by seq: a million rows never sit in memory at once
        rows = bind.execute(sa.select(old).where(old.c.audit_seq > after)
                            .order_by(old.c.audit_seq).limit(_BATCH)).all()
        if not rows:
            break
        batch: list[dict[str, Any]] = [
            {"audit_seq": r.audit_seq, "key_version_id": r.key_version_id,
             "identity_id": r.identity_id, "signed_at": r.signed_at,
             "signature_prefix": _prefix(r.signature_sha256),
             "timestamp_token": r.timestamp_token} for r in rows]
        bind.execute(sa.insert(new), batch)
        after = rows[-1].audit_seq
    op.drop_table("signatures")
    op.rename_table("signatures_0014", "signatures")
    if not sqlite:  # the names a table made as "signatures" has (SQLite's are unnamed)
        for old_name, new_name in (
                ("signatures_0014_pkey", "signatures_pkey"),
                ("signatures_0014_key_version_id_fkey", "signatures_key_version_id_fkey"),
                ("signatures_0014_identity_id_fkey", "signatures_identity_id_fkey")):
            op.execute(f"ALTER TABLE signatures RENAME CONSTRAINT {old_name} TO {new_name}")
    op.create_index("ix_signatures_prefix", "signatures", ["signature_prefix"])
    op.create_index("ix_signatures_totals", "signatures",
                    ["key_version_id", "identity_id", "signed_at"])

    for name, column in (("actor", "actor"), ("key", "key_ref"), ("project", "project")):
        op.drop_index(f"ix_audit_{name}", "audit_entries")
        op.create_index(f"ix_audit_{name}_seq", "audit_entries", [column, "seq"])


def downgrade() -> None:
    raise NotImplementedError("0014 drops the signature rows' copies of their audit entries; "
                              "restore a backup to go back")
