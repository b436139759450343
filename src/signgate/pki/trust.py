"""The offline trust decision: is a proven signature's signer trusted, and since when?

A format's verifier proves that a signature value covers an artifact and names the
certificate whose key made it (``formats/*``: Evidence). What follows is the same for
every format, and it is decided here, as a pure function of its inputs (certificates,
CRLs and the time, all already loaded: no file, network or clock access):

1. the RFC 3161 timestamp, if any, covers the signature value and chains to a trust
   anchor as a time-stamping authority (RFC 3161 §2.3, timeStamping EKU);
2. the signer's certificate chains to a trust anchor with the codeSigning purpose, valid
   at the time the signature provably existed: the timestamp's genTime, else now. A claim
   that ``needs_timestamp`` (Sigstore bundles) is refused without a token unless the
   caller accepts the certificate's validity now (``allow_untimestamped``);
3. nothing in either chain was revoked at or before that time (RFC 5280 §5.3.2: from
   the invalidity date when a CRL gives one). A certificate without a current, validly
   signed CRL of its issuer fails closed;
4. every cosigner passes the same checks (a JAR's other signers), or the whole is invalid.

:func:`decide` returns a :class:`Verdict`; bad input (a malformed token or certificate)
is an invalid verdict with a one-line reason, never an exception. Fetching CRLs from
distribution points is the caller's job (``client/offline_verify.py``):
:func:`revocation_chains` tells it which certificates need one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.x509.oid import ExtendedKeyUsageOID

from signgate.errors import VerificationFailed
from signgate.pki import validate
from signgate.pki.signed_data import parser_message

# What signgate names its key-version certificates: "PROJECT/NAME vN".
_VERSION_CN = re.compile(r"^(?P<ref>[^/\s]+/[^/\s]+) v(?P<version>\d+)$")

# What parsers of untrusted bytes raise (asn1crypto: ValueError, TypeError, KeyError on
# lazily parsed fields; cryptography: ValueError, UnsupportedAlgorithm).
PARSER_ERRORS = (ValueError, TypeError, KeyError, UnsupportedAlgorithm)


@dataclass(frozen=True)
class Claim:
    """The trust-relevant part of what a format's verifier proved about one signature."""

    format: str
    signer: bytes  # DER certificate whose public key verified the signature
    certificates: tuple[bytes, ...] = ()  # DER: every other certificate the format carried
    signature_value: bytes = b""  # what an RFC 3161 token must cover
    timestamp_token: bytes | None = None  # DER TimeStampToken (CMS ContentInfo)
    needs_timestamp: bool = False  # only valid with a verified time (Sigstore)
    name: str = ""  # how the format names this signer in messages (a JAR's signer file)
    cosigners: tuple[Claim, ...] = ()  # each must pass too


@dataclass(frozen=True)
class Signer:
    """Who a certificate names: its subject, and for a signgate key-version certificate
    the key (PROJECT/NAME) and version."""

    subject: str
    key: str | None = None
    key_version: int | None = None


@dataclass(frozen=True)
class Verdict:
    """The answer: ``valid``, and ``reason`` in one line either way."""

    valid: bool
    reason: str
    signer: Signer | None = None  # None when the signer's certificate cannot be read
    chain: tuple[str, ...] = ()  # subjects, leaf first
    timestamped_at: datetime | None = None
    timestamp_authority: str | None = None
    crls: tuple[str, ...] = ()  # the CRLs used: "issuer #number"
    revoked_later: tuple[str, ...] = ()  # revoked after the proven time: still valid


def describe(signer: bytes) -> Signer:
    """The subject (and signgate key and version) of a DER certificate. Raises a parser
    error for bytes that are no certificate."""
    leaf = x509.load_der_x509_certificate(signer)
    cns = leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    cn = str(cns[0].value) if cns else ""
    match = _VERSION_CN.match(cn)
    return Signer(leaf.subject.rfc4514_string(),
                  key=match["ref"] if match else None,
                  key_version=int(match["version"]) if match else None)


@dataclass(frozen=True)
class _Proven:
    """Steps 1 and 2 done: the signer's chain at the proven time, and the timestamp."""

    chain: tuple[x509.Certificate, ...]
    stamp: validate.Timestamp | None
    proven_at: datetime


def _prove(claim: Claim, anchors: Sequence[bytes], certificates: Sequence[bytes],
           now: datetime, allow_untimestamped: bool) -> _Proven:
    token = claim.timestamp_token
    if token is None and claim.needs_timestamp and not allow_untimestamped:
        raise VerificationFailed(
            f"the {claim.format} signature has no RFC 3161 timestamp: nothing proves when "
            "its certificate was used, so it is refused (as Sigstore verifiers refuse it); "
            "--insecure-allow-untimestamped judges it by the certificate's validity now")
    stamp = (validate.verify_timestamp(token, claim.signature_value, anchors)
             if token is not None else None)
    proven_at = stamp.time if stamp else now
    others = [c for c in (*claim.certificates, *certificates) if c != claim.signer]
    chain = validate.validate_chain(claim.signer, others, anchors, proven_at,
                                    ExtendedKeyUsageOID.CODE_SIGNING)
    return _Proven(tuple(chain), stamp, proven_at)


def _chains(proven: _Proven) -> list[tuple[x509.Certificate, ...]]:
    return [proven.chain] + ([proven.stamp.chain] if proven.stamp else [])


def revocation_chains(claim: Claim, anchors: Sequence[bytes],
                      certificates: Sequence[bytes], now: datetime,
                      allow_untimestamped: bool = False
                      ) -> list[tuple[x509.Certificate, ...]]:
    """The validated chains (the signer's, the TSA's) of ``claim`` and its cosigners whose
    certificates need a CRL: what a caller fetches before :func:`decide`. A claim that
    does not get that far contributes nothing (``decide`` will say why it fails)."""
    out: list[tuple[x509.Certificate, ...]] = []
    for one, allow in [*((c, False) for c in claim.cosigners), (claim, allow_untimestamped)]:
        try:
            out += _chains(_prove(one, anchors, certificates, now, allow))
        except (VerificationFailed, *PARSER_ERRORS):
            continue
    return out


def _judge(claim: Claim, anchors: Sequence[bytes], certificates: Sequence[bytes],
           crls: Sequence[x509.CertificateRevocationList], now: datetime,
           check_revocation: bool, allow_untimestamped: bool) -> Verdict:
    """Steps 1 to 3 for one claim: a valid Verdict, or VerificationFailed."""
    proven = _prove(claim, anchors, certificates, now, allow_untimestamped)
    stamp = proven.stamp
    used: list[str] = []
    later: list[str] = []
    if check_revocation:
        for one in _chains(proven):
            status = validate.check_revocation(one, crls, proven.proven_at, now)
            used += [c for c in status.checked if c not in used]
            later += status.revoked_later
    signer = describe(claim.signer)
    who = f"{signer.key} version {signer.key_version}" if signer.key else signer.subject
    if stamp:
        when = f"timestamped {stamp.time.isoformat()}"
    elif claim.needs_timestamp:  # only with allow_untimestamped
        when = ("NOT TIMESTAMPED: judged by the certificate's validity at the current time "
                "(--insecure-allow-untimestamped), not at a proven signing time")
    else:
        when = "not timestamped: valid only while the certificate is"
    return Verdict(
        True, f"valid: signed by {who}, {when}", signer=signer,
        chain=tuple(c.subject.rfc4514_string() for c in proven.chain),
        timestamped_at=stamp.time if stamp else None,
        timestamp_authority=stamp.tsa.subject.rfc4514_string() if stamp else None,
        crls=(tuple(used) if check_revocation
              else ("revocation not checked (--no-revocation-check)",)),
        revoked_later=tuple(later))


def decide(claim: Claim, anchors: Sequence[bytes],
           crls: Sequence[x509.CertificateRevocationList], now: datetime, *,
           certificates: Sequence[bytes] = (), check_revocation: bool = True,
           allow_untimestamped: bool = False) -> Verdict:
    """The verdict on ``claim`` and its cosigners.

    ``anchors``: DER trust anchors (for signers and TSAs); ``certificates``: further DER
    certificates the user supplied (intermediates); ``crls``: every CRL the caller has;
    ``now``: the current time (CRL freshness, and the proven time without a timestamp);
    ``check_revocation`` False skips step 3 (and says so in the verdict);
    ``allow_untimestamped``: judge a claim that needs a timestamp by ``now`` without one.
    """
    try:
        for other in claim.cosigners:  # every signer must pass, not just the first
            try:
                _judge(other, anchors, certificates, crls, now, check_revocation,
                       allow_untimestamped=False)
            except VerificationFailed as exc:
                who = other.name or describe(other.signer).subject
                raise VerificationFailed(f"signer {who}: {exc}") from None
        return _judge(claim, anchors, certificates, crls, now, check_revocation,
                      allow_untimestamped)
    except (VerificationFailed, *PARSER_ERRORS) as exc:
        reason = (str(exc) if isinstance(exc, VerificationFailed)
                  else f"malformed signature: {parser_message(exc)}")
        try:
            signer: Signer | None = describe(claim.signer)
        except PARSER_ERRORS:
            signer = None
        return Verdict(False, " ".join(reason.split()), signer=signer)
