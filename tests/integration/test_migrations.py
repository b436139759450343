"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

import base64
import hashlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import select, text

from signgate.audit.model import Action, Outcome, Record
from signgate.clock import FixedClock
from signgate.config import Settings
from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm
from signgate.keystore.base import KeyRef
from signgate.keystore.registry import KeyStoreRegistry
from signgate.keystore.soft import SoftwareKeyStore
from signgate.service import audit, keys, projects, reports, signing
from signgate.service.bootstrap import bootstrap_admin
from signgate.service.context import Caller
from signgate.service.factory import build_context
from signgate.store.db import MIGRATIONS, Database
from signgate.store.models import Base, Identity, KeyVersion, SignatureRecord, signature_prefix
from signgate.store.vault import DatabaseBlobs

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    db = Database(database_url)
    try:
        assert db.upgrade() == "0015"
        with db.write_engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        db.dispose()
    assert diff == [], diff


def test_0014_keeps_signatures_from_before_it_readable(database_url: str,
                                                        tmp_path: Path) -> None:
    """Signatures recorded at 0013 (rows repeating their entries) are found, reported and
    verified after 0014 cut the rows down, and the chain over them still verifies."""
    clock = FixedClock(T0)
    ctx = build_context(Settings(data_dir=tmp_path, database_url=database_url), clock,
                        lambda db: KeyStoreRegistry(
                            SoftwareKeyStore(os.urandom(32), DatabaseBlobs(db))))
    try:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with ctx.db.write_engine.connect() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0013")
            conn.commit()
        admin = Caller(bootstrap_admin(ctx), "127.0.0.1")
        projects.create(ctx, admin, "app")
        keys.create(ctx, admin, "app/release")
        with ctx.db.read() as s:
            version = s.execute(select(KeyVersion)).scalar_one()
            admin_id = s.execute(select(Identity.id)).scalars().first()
        ref = KeyRef(version.uri, KeyAlgorithm.ECDSA_P256)
        signed: list[tuple[str, bytes, str]] = []
        for n in range(3):  # as 0013's signing wrote them: the entry, and a row repeating it
            digest = hashlib.sha256(b"build %d" % n).digest()
            signature = ctx.keystores.sign(ref, DigestAlgorithm.SHA256, digest)
            sid = f"00000000-0000-4000-8000-00000000000{n}"
            details = {"signature_id": sid, "key_version": 1, "digest_algorithm": "sha256",
                       "digest": digest.hex(), "format": "raw",
                       "signature_sha256": hashlib.sha256(signature).hexdigest(),
                       "client": "10.0.0.7"}
            now = clock.now()
            with ctx.transaction() as s:
                seq = ctx.record(s, Record("admin", Action.SIGN, Outcome.ALLOWED,
                                           f"build-{n}.tar.gz", "app", "app/release",
                                           details), now)
                s.execute(text(
                    "INSERT INTO signatures (id, key_version_id, identity_id, artifact_name,"
                    " digest_algorithm, digest, signature_sha256, format, signed_at,"
                    " client_address, metadata_json, audit_seq) VALUES (:id, :kv, :who,"
                    " :name, 'sha256', :digest, :sha, 'raw', :at, '10.0.0.7', '{}', :seq)"),
                    {"id": sid, "kv": version.id, "who": admin_id, "name": f"build-{n}.tar.gz",
                     "digest": digest.hex(), "sha": details["signature_sha256"],
                     "at": now.replace(tzinfo=None) if ctx.db.dialect == "sqlite" else now,
                     "seq": seq})
            signed.append((sid, digest, base64.b64encode(signature).decode()))
            clock.advance(timedelta(minutes=1))

        assert ctx.db.upgrade() == "0015"

        page = reports.signatures(ctx, admin, reports.SignatureQuery(key="app/release"))
        assert [(r.signature_id, r.artifact_name, r.digest, r.identity, r.key_version)
                for r in page.signatures] == [
            (sid, f"build-{n}.tar.gz", digest.hex(), "admin", 1)
            for n, (sid, digest, _) in enumerate(signed)]
        assert [r.signed_at for r in page.signatures] == [
            T0 + timedelta(minutes=n) for n in range(3)]
        sid, digest, signature = signed[1]
        found = signing.verify(ctx, admin, "app/release", "sha256", digest.hex(), signature)
        assert (found.valid, found.signature_id, found.signed_by, found.signed_at) == (
            True, sid, "admin", T0 + timedelta(minutes=1))
        assert audit.verify(ctx, admin).ok
        with ctx.db.read() as s:
            rows = s.execute(select(SignatureRecord).order_by(SignatureRecord.audit_seq)
                             ).scalars().all()
        assert [r.key_version_id for r in rows] == [version.id] * 3
        assert [r.signature_prefix for r in rows] == [
            signature_prefix(hashlib.sha256(base64.b64decode(s)).digest())
            for _, _, s in signed]
    finally:
        ctx.close()
