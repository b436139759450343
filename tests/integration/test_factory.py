"""The composition root: build_context makes every part of the context at once, so that a
configuration error is raised there (before 'serve' listens), and close() stops them."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from signgate.config import Settings
from signgate.errors import ConfigError, Denied
from signgate.keystore.registry import KeyStoreRegistry
from signgate.service import identities, projects, signing
from signgate.service.auth_failures import AuthFailures
from signgate.service.bootstrap import bootstrap_admin
from signgate.service.context import Caller
from signgate.service.factory import build_context, key_stores
from signgate.service.lifecycle import Stopping
from signgate.service.pipeline.batch import Pipeline
from signgate.store.db import Database
from tests.support.signing import sign_request


def _keystores(db: Database) -> KeyStoreRegistry:
    return key_stores(os.urandom(32), db)


def test_every_part_is_built_with_the_context(database_url: str, tmp_path: Path) -> None:
    ctx = build_context(Settings(tmp_path, database_url), keystores=_keystores)
    try:
        assert isinstance(ctx.signing, Pipeline)
        assert isinstance(ctx.auth_failures, AuthFailures)
        assert isinstance(ctx.stopping, Stopping)
        assert not ctx.stopping.is_set()
        assert ctx.scanners.engines == []  # none configured: scanned signings refused
        assert not hasattr(ctx, "part")
    finally:
        ctx.close()


def test_rules_that_do_not_compile_stop_build_context(tmp_path: Path) -> None:
    rules = tmp_path / "yara"
    rules.mkdir()
    (rules / "broken.yar").write_text("rule Broken { condition: \n")
    settings = Settings(tmp_path, f"sqlite:///{tmp_path / 'signgate.db'}",
                        scan_yara_dir=str(rules))
    with pytest.raises(ConfigError, match=r"broken\.yar"):
        build_context(settings, keystores=_keystores)


def test_close_stops_the_pipeline_then_the_database(database_url: str,
                                                    tmp_path: Path) -> None:
    ctx = build_context(Settings(tmp_path, database_url), keystores=_keystores)
    ctx.db.upgrade()
    admin = Caller(bootstrap_admin(ctx))
    projects.create(ctx, admin, "p")
    token = identities.create(ctx, admin, "ci").token
    digest = hashlib.sha256(b"x").hexdigest()
    with pytest.raises(Denied, match="no signer grant"):  # the pipeline runs
        signing.sign(ctx, sign_request(Caller(token), "p/k", "sha256", digest, "a.bin"))
    ctx.close()
    with pytest.raises(RuntimeError, match="closed"):
        signing.sign(ctx, sign_request(Caller(token), "p/k", "sha256", digest, "a.bin"))
