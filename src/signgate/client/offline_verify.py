"""``signgate verify`` without the server's records: everything a relying party can check.

The format's own verifier proves that the signature covers the file and names the signer's
certificate (``formats/*``: Evidence). Then ``pki/trust.decide`` judges it, the same for
every format (this module reads the files and fetches the CRLs it needs):

1. the RFC 3161 timestamp, if any (inside the signature, or the ``.tsr`` beside it), covers
   the signature value and chains to the trust anchor as a time-stamping authority;
2. the signer's certificate chains to the trust anchor with the codeSigning purpose, valid at
   the time the signature provably existed (the timestamp's, else now). Formats that need a
   verified time (Sigstore bundles) are refused without a timestamp, unless the caller asks
   to accept the certificate's validity now (``allow_untimestamped``);
3. nothing in either chain was revoked before that time, per current CRLs (given as files,
   or fetched from the certificates' distribution points).

Whatever the signature holds, the answer is a Report whose reason is one line: a parser
error that a format did not convert itself (a lazily parsed ASN.1 field, a certificate
cryptography cannot load) is a malformed signature, never a traceback.
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

from signgate.errors import InvalidInput, VerificationFailed
from signgate.formats import authenticode_files, registry
from signgate.formats.base import Evidence
from signgate.pki import trust
from signgate.pki.signed_data import parser_message

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
            magic = f.read(authenticode_files.HEAD)
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc
    kind = authenticode_files.kind_of(magic, path)  # PE, CAB, MSI, script
    if kind is not None and kind != "script":
        return "authenticode"
    if magic[:4] == b"PK\x03\x04":
        return "jar"
    for fmt in DETECTION_ORDER:  # a detached signature lying next to FILE
        side = registry.client(fmt)
        if path.with_name(path.name + side.suffix).exists():
            return fmt
    if kind == "script":  # told by its name: a detached signature beside it comes first
        return "authenticode"
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


_PEM_CRL = re.compile(rb"-----BEGIN X509 CRL-----\r?\n.*?-----END X509 CRL-----", re.DOTALL)


def _der_items(data: bytes) -> list[bytes]:
    """Concatenated DER SEQUENCEs, split by their lengths (X.690 §8.1.3: short form, or long
    form with up to 4 length octets); anything else is not a CRL file."""
    items: list[bytes] = []
    at = 0
    while at < len(data):
        if data[at] != 0x30 or at + 2 > len(data):
            raise InvalidInput("not a CRL (DER or PEM)")
        first = data[at + 1]
        if first < 0x80:
            start, length = at + 2, first
        elif 0x81 <= first <= 0x84 and at + 2 + (first & 0x7F) <= len(data):
            start = at + 2 + (first & 0x7F)
            length = int.from_bytes(data[at + 2:start], "big")
        else:
            raise InvalidInput("not a CRL (DER or PEM)")
        if start + length > len(data):
            raise InvalidInput("not a CRL (DER or PEM)")
        items.append(data[at:start + length])
        at = start + length
    return items


def load_crls(data: bytes) -> list[x509.CertificateRevocationList]:
    """Every CRL in a file: PEM blocks (e.g. the root's and a project CA's CRL in one file,
    as ``cat`` makes it), or one or more concatenated DER CRLs. One bad CRL refuses the
    file: a CRL that is silently skipped would leave a revocation unseen."""
    if data.lstrip().startswith(b"-----BEGIN"):
        blocks = _PEM_CRL.findall(data)
        if not blocks or data.count(b"-----BEGIN") != len(blocks):
            raise InvalidInput("not a CRL (DER or PEM)")
        return [load_crl(block) for block in blocks]
    items = _der_items(data)
    if not items:
        raise InvalidInput("not a CRL (DER or PEM)")
    return [load_crl(item) for item in items]


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
                now: datetime | None = None, allow_untimestamped: bool = False) -> Report:
    """Verify ``path`` fully; a Report with ``valid`` False says what failed.
    ``allow_untimestamped``: judge a format that needs a timestamp (Sigstore) by the
    certificate's validity at ``now`` when it has none (``--insecure-allow-untimestamped``)."""
    now = now or datetime.now(UTC)
    try:
        evidence = registry.verifier(fmt).verify(path, signature, certificates)
    except VerificationFailed as exc:
        return Report(False, fmt, _one_line(str(exc)))
    except trust.PARSER_ERRORS as exc:
        return Report(False, fmt, f"malformed signature: {parser_message(exc)}")
    claim = _claim(evidence)
    known = list(crls)
    if check_revocation and fetch is not None:
        # The one I/O of the decision: CRLs the given ones lack, for the chains it checks.
        for chain in trust.revocation_chains(claim, anchors, certificates, now,
                                             allow_untimestamped):
            known = _fetch_crls(chain, known, fetch)
    verdict = trust.decide(claim, anchors, known, now, certificates=certificates,
                           check_revocation=check_revocation,
                           allow_untimestamped=allow_untimestamped)
    signer = verdict.signer or trust.Signer("")
    if not verdict.valid:
        return Report(False, fmt, verdict.reason, signer=signer.subject, key=signer.key,
                      key_version=signer.key_version, signing_time=evidence.signing_time,
                      details=evidence.details)
    return Report(
        True, evidence.format, verdict.reason,
        signer=signer.subject, key=signer.key, key_version=signer.key_version,
        chain=list(verdict.chain), signing_time=evidence.signing_time,
        timestamped_at=verdict.timestamped_at,
        timestamp_authority=verdict.timestamp_authority,
        crls=list(verdict.crls), revoked_later=list(verdict.revoked_later),
        details=evidence.details,
    )


def _claim(evidence: Evidence) -> trust.Claim:
    """What ``pki/trust`` judges of a format's Evidence."""
    return trust.Claim(
        format=evidence.format, signer=evidence.signer, certificates=evidence.certificates,
        signature_value=evidence.signature_value, timestamp_token=evidence.timestamp_token,
        needs_timestamp=evidence.needs_timestamp, name=evidence.details.get("signer", ""),
        cosigners=tuple(_claim(other) for other in evidence.cosigners))


def _one_line(reason: str) -> str:
    return " ".join(reason.split())


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
