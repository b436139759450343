"""``signgate verify`` without the server's records: everything a relying party can check.

The format's own verifier proves that the signature covers the file and names the signer's
certificate (``formats/*``: Evidence). Then, the same for every format:

1. the RFC 3161 timestamp, if any (inside the signature, or the ``.tsr`` beside it), covers
   the signature value and chains to the trust anchor as a time-stamping authority;
2. the signer's certificate chains to the trust anchor with the codeSigning purpose, valid at
   the time the signature provably existed (the timestamp's, else now);
3. nothing in either chain was revoked before that time, per current CRLs (given as files,
   or fetched from the certificates' distribution points).
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from signgate.errors import InvalidInput, VerificationFailed
from signgate.formats import registry
from signgate.formats.base import Evidence
from signgate.pki import validate

# What signgate names its key-version certificates: "PROJECT/NAME vN".
_VERSION_CN = re.compile(r"^(?P<ref>[^/\s]+/[^/\s]+) v(?P<version>\d+)$")

Fetch = Callable[[str], bytes]
# With several signatures beside a file, the ones that name their signer come first.
DETECTION_ORDER = ("cms", "sigstore", "openpgp", "dsse", "raw")


@dataclass(frozen=True)
class Report:
    valid: bool
    format: str
    reason: str
    signer: str = ""
    key: str | None = None
    key_version: int | None = None
    chain: list[str] = field(default_factory=list)
    signing_time: datetime | None = None  # claimed by the signer
    timestamped_at: datetime | None = None
    timestamp_authority: str | None = None
    crls: list[str] = field(default_factory=list)
    revoked_later: list[str] = field(default_factory=list)
    details: dict[str, str] = field(default_factory=dict)


def detect_format(path: Path, signature: Path | None) -> str:
    """The format from the signature file's name, or from FILE itself for embedded ones."""
    if signature is not None:
        name = signature.name
        for fmt in registry.NAMES:
            side = registry.client(fmt)
            if not side.embedded and name.endswith(side.suffix):
                return fmt
        raise InvalidInput(f"cannot tell the format of {name}; give --format")
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc
    if magic[:2] == b"MZ":
        return "authenticode"
    if magic == b"PK\x03\x04":
        return "jar"
    for fmt in DETECTION_ORDER:  # a detached signature lying next to FILE
        side = registry.client(fmt)
        if path.with_name(path.name + side.suffix).exists():
            return fmt
    raise InvalidInput(f"no signature found for {path.name}; give --signature")


def default_signature(path: Path, fmt: str) -> Path | None:
    side = registry.client(fmt)
    return None if side.embedded else path.with_name(path.name + side.suffix)


def _distribution_points(cert: x509.Certificate) -> list[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints)
    except x509.ExtensionNotFound:
        return []
    return [name.value for point in ext.value for name in point.full_name or []
            if isinstance(name, x509.UniformResourceIdentifier)]


def sigstore_trust(data: bytes) -> tuple[list[bytes], list[bytes]]:
    """Anchors (self-signed) and intermediates (DER) from a Sigstore ``trusted_root.json``
    (as ``signgate ca trusted-root`` prints it): its CA and TSA certificate chains."""
    try:
        document = json.loads(data)
        chains = [entry["certChain"]["certificates"]
                  for group in ("certificateAuthorities", "timestampAuthorities")
                  for entry in document.get(group, [])]
        ders = [base64.b64decode(c["rawBytes"]) for chain in chains for c in chain]
        certs = [x509.load_der_x509_certificate(d) for d in ders]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise InvalidInput("not a Sigstore trusted root (trusted_root.json)") from None
    anchors: list[bytes] = []
    intermediates: list[bytes] = []
    for der, cert in zip(ders, certs, strict=True):
        bucket = anchors if cert.issuer == cert.subject else intermediates
        if der not in bucket:
            bucket.append(der)
    return anchors, intermediates


def load_crl(data: bytes) -> x509.CertificateRevocationList:
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError:
        raise InvalidInput("not a CRL (DER or PEM)") from None


def _fetch_crls(chain: Sequence[x509.Certificate], have: list[x509.CertificateRevocationList],
                fetch: Fetch) -> list[x509.CertificateRevocationList]:
    """CRLs for the certificates in ``chain`` that ``have`` lacks, from their distribution
    points (``fetch`` may fall back to the configured server for the same path)."""
    found = list(have)
    for cert in chain[:-1]:
        if any(crl.issuer == cert.issuer for crl in found):
            continue
        for url in _distribution_points(cert):
            try:
                found.append(load_crl(fetch(url)))
                break
            except (InvalidInput, OSError):
                continue
    return found


def verify_file(path: Path, signature: Path | None, fmt: str, anchors: Sequence[bytes],
                certificates: tuple[bytes, ...] = (),
                crls: Sequence[x509.CertificateRevocationList] = (),
                fetch: Fetch | None = None, check_revocation: bool = True,
                now: datetime | None = None) -> Report:
    """Verify ``path`` fully; a Report with ``valid`` False says what failed."""
    now = now or datetime.now(UTC)
    try:
        evidence = registry.verifier(fmt).verify(path, signature, certificates)
    except VerificationFailed as exc:
        return Report(False, fmt, str(exc))
    try:
        for other in evidence.cosigners:  # every signer must pass, not just the first
            try:
                _trust(other, anchors, certificates, list(crls), fetch, check_revocation, now)
            except VerificationFailed as exc:
                who = other.details.get("signer") or _describe(other, fmt).signer
                raise VerificationFailed(f"signer {who}: {exc}") from None
        return _trust(evidence, anchors, certificates, list(crls), fetch,
                      check_revocation, now)
    except VerificationFailed as exc:
        report = _describe(evidence, fmt)
        return Report(False, fmt, str(exc), signer=report.signer, key=report.key,
                      key_version=report.key_version, signing_time=evidence.signing_time,
                      details=evidence.details)


def _describe(evidence: Evidence, fmt: str) -> Report:
    leaf = x509.load_der_x509_certificate(evidence.signer)
    cns = leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    cn = str(cns[0].value) if cns else ""
    match = _VERSION_CN.match(cn)
    return Report(False, fmt, "", signer=leaf.subject.rfc4514_string(),
                  key=match["ref"] if match else None,
                  key_version=int(match["version"]) if match else None)


def _trust(evidence: Evidence, anchors: Sequence[bytes],
           certificates: tuple[bytes, ...], crls: list[x509.CertificateRevocationList],
           fetch: Fetch | None, check_revocation: bool, now: datetime) -> Report:
    token = evidence.timestamp_token
    stamp = (validate.verify_timestamp(token, evidence.signature_value, anchors)
             if token is not None else None)
    proven_at = stamp.time if stamp else now
    others = [c for c in (*evidence.certificates, *certificates) if c != evidence.signer]
    chain = validate.validate_chain(evidence.signer, others, anchors, proven_at,
                                    ExtendedKeyUsageOID.CODE_SIGNING)
    used: list[str] = []
    later: list[str] = []
    if check_revocation:
        chains = [chain] + ([list(stamp.chain)] if stamp else [])
        for one in chains:
            if fetch is not None:
                crls = _fetch_crls(one, crls, fetch)
            status = validate.check_revocation(one, crls, proven_at, now)
            used += [c for c in status.checked if c not in used]
            later += status.revoked_later
    described = _describe(evidence, evidence.format)
    who = (f"{described.key} version {described.key_version}" if described.key
           else described.signer)
    when = (f"timestamped {stamp.time.isoformat()}" if stamp
            else "not timestamped: valid only while the certificate is")
    return Report(
        True, evidence.format, f"valid: signed by {who}, {when}",
        signer=described.signer, key=described.key, key_version=described.key_version,
        chain=[c.subject.rfc4514_string() for c in chain],
        signing_time=evidence.signing_time,
        timestamped_at=stamp.time if stamp else None,
        timestamp_authority=stamp.tsa.subject.rfc4514_string() if stamp else None,
        crls=used if check_revocation else ["revocation not checked (--no-revocation-check)"],
        revoked_later=later, details=evidence.details,
    )


def server_fallback(base_url: str | None, get: Fetch) -> Fetch:
    """Fetch a URL; if that fails and a signgate server is configured, the same path from it
    (a certificate's distribution point names the server's public URL, which a client
    inside the network may not reach under that name)."""
    def fetch(url: str) -> bytes:
        try:
            return get(url)
        except OSError:
            if not base_url:
                raise
            path = urllib.parse.urlsplit(url).path
            return get(base_url.rstrip("/") + path)
    return fetch
