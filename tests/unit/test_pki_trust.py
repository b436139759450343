"""pki/trust: the offline trust decision (timestamp, chain at the proven time, CRLs,
cosigners) as a pure function, on a test PKI generated in-process (tests/support/pki_world)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from signgate.pki import trust
from tests.support.pki_world import LEAF_DAYS, T0, World, issue, timestamp_token, world

VALUE = b"the signature value a format's verifier proved"
DURING = T0 + timedelta(days=10)  # inside the leaf's validity
AFTER = T0 + timedelta(days=LEAF_DAYS + 30)  # the leaf has expired


@pytest.fixture(scope="module")
def w() -> World:
    return world()


def claim(w: World, **changes: object) -> trust.Claim:
    base = trust.Claim(format="cms", signer=w.leaf.der, certificates=(w.ca.der,),
                       signature_value=VALUE)
    return replace(base, **changes)  # type: ignore[arg-type]


def token(w: World, at: object = DURING, value: bytes = VALUE) -> bytes:
    return timestamp_token(w.tsa, value, at)  # type: ignore[arg-type]


def test_valid_without_timestamp(w: World) -> None:
    verdict = trust.decide(claim(w), w.anchors, w.crls(), DURING)
    assert verdict.valid, verdict.reason
    assert verdict.reason == ("valid: signed by acme/release version 1, not timestamped: "
                              "valid only while the certificate is")
    assert verdict.signer == trust.Signer(w.leaf.cert.subject.rfc4514_string(),
                                          "acme/release", 1)
    assert verdict.chain == tuple(p.cert.subject.rfc4514_string()
                                  for p in (w.leaf, w.ca, w.root))
    assert len(verdict.crls) == 2
    assert all(c.endswith("#1") for c in verdict.crls)
    assert verdict.timestamped_at is None


def test_expired_leaf_without_timestamp_is_invalid(w: World) -> None:
    verdict = trust.decide(claim(w), w.anchors, w.crls(), AFTER)
    assert not verdict.valid
    assert "the certificate chain is not trusted" in verdict.reason
    assert verdict.signer is not None
    assert verdict.signer.key == "acme/release"


def test_expired_leaf_with_timestamp_before_expiry_is_valid(w: World) -> None:
    verdict = trust.decide(claim(w, timestamp_token=token(w)), w.anchors, w.crls(), AFTER)
    assert verdict.valid, verdict.reason
    assert verdict.timestamped_at == DURING
    assert verdict.timestamp_authority == w.tsa.cert.subject.rfc4514_string()
    assert f"timestamped {DURING.isoformat()}" in verdict.reason
    # The TSA's chain is checked for revocation too: its issuer is the root.
    assert len(verdict.crls) == 2


def test_timestamp_after_expiry_does_not_help(w: World) -> None:
    verdict = trust.decide(claim(w, timestamp_token=token(w, at=AFTER)), w.anchors,
                           w.crls(), AFTER)
    assert not verdict.valid
    assert "not trusted" in verdict.reason


def test_timestamp_over_another_value_is_refused(w: World) -> None:
    verdict = trust.decide(claim(w, timestamp_token=token(w, value=b"other")), w.anchors,
                           w.crls(), AFTER)
    assert not verdict.valid
    assert verdict.reason == "the timestamp does not cover this signature"


def test_malformed_timestamp_is_a_one_line_verdict(w: World) -> None:
    verdict = trust.decide(claim(w, timestamp_token=b"\x30\x03\x02\x01"), w.anchors,
                           w.crls(), DURING)
    assert not verdict.valid
    assert verdict.reason.startswith("malformed")
    assert "\n" not in verdict.reason


def test_revoked_before_the_proven_time_is_invalid(w: World) -> None:
    compromised = DURING - timedelta(days=1)
    crls = w.crls(revoked_by_ca={w.leaf.cert.serial_number: compromised},
                  revoked_at=DURING + timedelta(days=1))
    verdict = trust.decide(claim(w, timestamp_token=token(w)), w.anchors, crls,
                           DURING + timedelta(days=2))
    assert not verdict.valid
    assert f"is revoked as of {compromised.isoformat()}" in verdict.reason


def test_revoked_after_the_proven_time_stays_valid(w: World) -> None:
    compromised = DURING + timedelta(days=1)
    crls = w.crls(revoked_by_ca={w.leaf.cert.serial_number: compromised},
                  revoked_at=DURING + timedelta(days=2))
    verdict = trust.decide(claim(w, timestamp_token=token(w)), w.anchors, crls,
                           DURING + timedelta(days=3))
    assert verdict.valid, verdict.reason
    assert verdict.revoked_later == (
        f"{w.leaf.cert.subject.rfc4514_string()} (revoked as of {compromised.isoformat()})",)
    # Without the timestamp the proven time is now, after the compromise: invalid.
    untimestamped = trust.decide(claim(w), w.anchors, crls, DURING + timedelta(days=3))
    assert not untimestamped.valid
    assert "is revoked" in untimestamped.reason


def test_revoked_tsa_before_its_token_is_invalid(w: World) -> None:
    crls = w.crls(revoked_by_root={w.tsa.cert.serial_number: T0})
    verdict = trust.decide(claim(w, timestamp_token=token(w)), w.anchors, crls, DURING)
    assert not verdict.valid
    assert "Test TSA" in verdict.reason
    assert "is revoked" in verdict.reason


def test_missing_crl_fails_closed(w: World) -> None:
    root_only = w.crls()[:1]
    verdict = trust.decide(claim(w), w.anchors, root_only, DURING)
    assert not verdict.valid
    assert verdict.reason.startswith("no CRL from ")
    assert "Test Issuing CA" in verdict.reason


def test_crl_by_an_impostor_is_no_crl(w: World) -> None:
    # A CRL naming the issuing CA but signed by another key proves nothing.
    impostor = issue("Test Issuing CA", w.root, ca=True)
    crls = [w.crls()[0], World(w.root, impostor, w.leaf, w.tsa).crls()[1]]
    verdict = trust.decide(claim(w), w.anchors, crls, DURING)
    assert not verdict.valid
    assert verdict.reason.startswith("no CRL from ")


def test_no_revocation_check_says_so(w: World) -> None:
    verdict = trust.decide(claim(w), w.anchors, [], DURING, check_revocation=False)
    assert verdict.valid, verdict.reason
    assert verdict.crls == ("revocation not checked (--no-revocation-check)",)


def test_wrong_eku_is_refused(w: World) -> None:
    server = issue("web server", w.ca, eku=ExtendedKeyUsageOID.SERVER_AUTH)
    verdict = trust.decide(claim(w, signer=server.der), w.anchors, w.crls(), DURING)
    assert not verdict.valid
    assert "extended key usage does not include 1.3.6.1.5.5.7.3.3" in verdict.reason


def test_unknown_anchor_is_refused(w: World) -> None:
    other = world()
    verdict = trust.decide(claim(w), other.anchors, w.crls(), DURING)
    assert not verdict.valid
    assert "not trusted" in verdict.reason


def test_a_failing_cosigner_fails_the_whole(w: World) -> None:
    expired = claim(w, name="OTHER.SF")
    good = claim(w, timestamp_token=token(w), cosigners=(expired,))
    verdict = trust.decide(good, w.anchors, w.crls(), AFTER)
    assert not verdict.valid
    assert verdict.reason.startswith("signer OTHER.SF: the certificate chain is not trusted")
    # The same cosigner, timestamped, passes: then the whole is valid.
    fine = claim(w, timestamp_token=token(w),
                 cosigners=(claim(w, timestamp_token=token(w)),))
    assert trust.decide(fine, w.anchors, w.crls(), AFTER).valid


def test_needs_timestamp_without_token_is_refused(w: World) -> None:
    sigstore = claim(w, format="sigstore", needs_timestamp=True)
    verdict = trust.decide(sigstore, w.anchors, w.crls(), DURING)
    assert not verdict.valid
    assert verdict.reason.startswith("the sigstore signature has no RFC 3161 timestamp")
    allowed = trust.decide(sigstore, w.anchors, w.crls(), DURING, allow_untimestamped=True)
    assert allowed.valid
    assert "NOT TIMESTAMPED" in allowed.reason
    stamped = trust.decide(replace(sigstore, timestamp_token=token(w)), w.anchors,
                           w.crls(), AFTER)
    assert stamped.valid, stamped.reason


def test_garbage_signer_certificate_is_a_verdict(w: World) -> None:
    verdict = trust.decide(claim(w, signer=b"not a certificate"), w.anchors, w.crls(), DURING)
    assert not verdict.valid
    assert verdict.signer is None
    assert "\n" not in verdict.reason


def test_revocation_chains_name_what_needs_a_crl(w: World) -> None:
    chains = trust.revocation_chains(claim(w, timestamp_token=token(w)), w.anchors, (),
                                     DURING)
    subjects = [[c.subject.rfc4514_string() for c in chain] for chain in chains]
    names = [p.cert.subject.rfc4514_string() for p in (w.leaf, w.ca, w.root, w.tsa)]
    assert subjects == [names[:3], [names[3], names[2]]]
    # A claim that cannot be proven needs nothing fetched.
    assert trust.revocation_chains(claim(w), w.anchors, (), AFTER) == []
