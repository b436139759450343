"""CRLs are re-issued before their nextUpdate, and at once on a revocation (injected clock)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from signgate.clock import FixedClock
from signgate.config import Settings
from signgate.service import certificates, keys, projects
from signgate.service.bootstrap import bootstrap_admin, ensure_all
from signgate.service.context import Caller, Context
from signgate.service.factory import build_context, key_stores
from signgate.service.records import authorities

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def ctx(database_url: str, tmp_path: Path) -> Iterator[tuple[Context, FixedClock, Caller]]:
    clock = FixedClock(START)
    c = build_context(Settings(tmp_path, database_url), clock,
                      lambda db: key_stores(os.urandom(32), db))
    c.db.upgrade()
    admin = Caller(bootstrap_admin(c))
    ensure_all(c)
    projects.create(c, admin, "p")
    keys.create(c, admin, "p/k")
    yield c, clock, admin
    c.close()


def _number(der: bytes) -> int:
    ext = x509.load_der_x509_crl(der).extensions.get_extension_for_class(x509.CRLNumber)
    return ext.value.crl_number


def test_crl_is_reissued_before_next_update(ctx: tuple[Context, FixedClock, Caller]) -> None:
    c, clock, _ = ctx
    first = certificates.current_crl(c, "p")
    crl = x509.load_der_x509_crl(first)
    assert crl.next_update_utc - crl.last_update_utc == authorities.CRL_LIFETIME
    clock.advance(authorities.CRL_LIFETIME - authorities.CRL_REFRESH - timedelta(minutes=1))
    assert certificates.current_crl(c, "p") == first  # still fresh: the same CRL
    clock.advance(timedelta(minutes=2))
    renewed = certificates.current_crl(c, "p")
    assert _number(renewed) == _number(first) + 1
    assert x509.load_der_x509_crl(renewed).last_update_utc == clock.now().replace(microsecond=0)


def test_revocation_publishes_at_once(ctx: tuple[Context, FixedClock, Caller]) -> None:
    c, clock, admin = ctx
    before = certificates.current_crl(c, "p")
    clock.advance(timedelta(hours=1))
    keys.revoke(c, admin, "p/k", clock.now() - timedelta(minutes=30), "leaked")
    after = certificates.current_crl(c, "p")
    assert _number(after) == _number(before) + 1
    revoked = list(x509.load_der_x509_crl(after))
    assert len(revoked) == 1
    reason = revoked[0].extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason is x509.ReasonFlags.key_compromise
    invalid = revoked[0].extensions.get_extension_for_class(x509.InvalidityDate).value
    assert invalid.invalidity_date_utc == (clock.now() - timedelta(minutes=30)).replace(
        microsecond=0)
