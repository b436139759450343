"""Verify one signed file: find its signature, load the trust material, judge it offline.

What ``signgate verify`` and :meth:`SigngateClient.verify_file` share: the format and the
signature file are found from the names beside the file, trust anchors, extra certificates
and CRLs are read from files (PEM or DER; a Sigstore ``trusted_root.json`` supplies anchors
and intermediates), and the decision itself is :func:`offline_verify.verify_file`'s. CRLs
that are not given are fetched from the certificates' distribution points, falling back to
the signgate server the client talks to.

A raw signature names no signer: :func:`verify_raw_file` checks it online against a key's
versions and revocation state, or locally against a bare public key.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from signgate.client.offline_verify import (
    Report,
    default_signature,
    detect_format,
    load_crls,
    server_fallback,
    sigstore_trust,
)
from signgate.client.offline_verify import verify_file as judge
from signgate.client.sign_file import ProgressFactory, no_progress
from signgate.crypto.algorithms import DigestAlgorithm
from signgate.crypto.signatures import load_public_key, verify_digest
from signgate.errors import InvalidInput
from signgate.formats import sshsig
from signgate.formats.files import hash_path


class VerifyingApi(Protocol):
    """The call of :class:`~signgate.client.client.SigngateClient` that verifying a raw
    signature online makes (a protocol: this module does not import the client)."""

    def verify_digest(self, ref: str, digest_algorithm: str, digest_hex: str,
                      signature_b64: str) -> Any: ...

# The server's root certificate (DER), when no trust anchor is given.
RootFetch = Callable[[], bytes]


def load_certificates(paths: Sequence[Path]) -> tuple[bytes, ...]:
    """Certificates (DER) from PEM or DER files."""
    out: list[bytes] = []
    for path in paths:
        try:
            data = path.read_bytes()
            certs = (x509.load_pem_x509_certificates(data) if b"-----BEGIN" in data
                     else [x509.load_der_x509_certificate(data)])
        except OSError as exc:
            raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc
        except ValueError:
            raise InvalidInput(f"{path} holds no certificate (PEM or DER)") from None
        out += [c.public_bytes(Encoding.DER) for c in certs]
    return tuple(out)


def load_anchors(paths: Sequence[Path]) -> tuple[list[bytes], list[bytes]]:
    """Trust anchors, and intermediates that came with them (a Sigstore trusted root)."""
    anchors: list[bytes] = []
    intermediates: list[bytes] = []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc
        if data.lstrip().startswith(b"{"):
            more, between = sigstore_trust(data)
            anchors += more
            intermediates += between
        else:
            anchors += load_certificates((path,))
    return anchors, intermediates


def load_crl_files(paths: Sequence[Path]) -> list[x509.CertificateRevocationList]:
    crls: list[x509.CertificateRevocationList] = []
    for path in paths:
        try:
            crls += load_crls(path.read_bytes())
        except OSError as exc:
            raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc
        except InvalidInput:
            raise InvalidInput(f"{path} is not a CRL (DER or PEM)") from None
    return crls


def http_getter(transport: httpx.BaseTransport | None = None) -> Callable[[str], bytes]:
    """GET a URL without credentials (a CRL's distribution point may be anyone's); an
    injected transport (tests, in-process use) carries these requests too."""
    def get(url: str) -> bytes:
        try:
            with httpx.Client(transport=transport, timeout=10,
                              follow_redirects=False) as http:
                response = http.get(url)
        except httpx.HTTPError as exc:
            raise OSError(str(exc)) from exc
        if response.status_code != 200:
            raise OSError(f"{url}: HTTP {response.status_code}")
        return response.content
    return get


def verify_signed_file(path: Path, signature: Path | None = None, fmt: str | None = None,
                       *, ca_files: Sequence[Path] = (), root: RootFetch | None = None,
                       certificate_files: Sequence[Path] = (),
                       crl_files: Sequence[Path] = (), server_url: str | None = None,
                       get: Callable[[str], bytes] | None = None,
                       check_revocation: bool = True,
                       allow_untimestamped: bool = False) -> Report:
    """Verify ``path`` (its signature beside it, or ``signature``) and return the Report.

    The anchors are ``ca_files``, else the certificate ``root()`` returns (signgate's root).
    Bad input (no signature, an unreadable file, no anchor) raises InvalidInput; a signature
    that does not verify is a Report with ``valid`` False."""
    fmt = fmt or detect_format(path, signature)
    signature = signature or default_signature(path, fmt)
    if signature is not None and not signature.exists():
        raise InvalidInput(f"no signature {signature}; give --signature")
    crls = load_crl_files(crl_files)
    if ca_files:
        anchors, intermediates = load_anchors(ca_files)
    elif root is not None:
        anchors, intermediates = [root()], []
    else:
        raise InvalidInput("no trust anchor: give --ca ROOT.pem (from 'signgate ca cert')")
    return judge(path, signature, fmt, anchors,
                 (*load_certificates(certificate_files), *intermediates), crls,
                 server_fallback(server_url, get or http_getter()),
                 check_revocation=check_revocation, allow_untimestamped=allow_untimestamped)


@dataclass(frozen=True)
class RawVerdict:
    """Whether a raw signature holds, why, and the whole answer (``verify --json``)."""

    valid: bool
    reason: str
    answer: Mapping[str, Any]


def verify_raw_file(path: Path, signature: Path, digest: DigestAlgorithm, *,
                    key: str | None = None,
                    connect: Callable[[], AbstractContextManager[VerifyingApi]] | None = None,
                    public_key: Path | None = None,
                    progress: ProgressFactory | None = None) -> RawVerdict:
    """Check the raw ``signature`` of ``path``: online against ``key`` (PROJECT/NAME, through
    the client ``connect()`` gives; says which version signed and whether the key was
    compromised first), else with the PEM ``public_key``. The file is hashed first, so that
    nothing is asked of the server before the local work is done."""
    with (progress or no_progress)("hashing", path) as bar:
        value = hash_path(path, digest, bar)
    signed = signature.read_bytes()
    if key is not None:
        if connect is None:
            raise InvalidInput("checking a raw signature against a key needs a server")
        with connect() as client:
            result = client.verify_digest(key, digest.value, value.hex(),
                                          base64.b64encode(signed).decode())
        return RawVerdict(bool(result["valid"]), str(result["reason"]), result)
    if public_key is None:
        raise InvalidInput("give a key (PROJECT/NAME) or a public key (PEM)")
    valid = verify_digest(load_public_key(public_key.read_bytes()), None, digest, value, signed)
    reason = (f"valid: signed by the holder of {public_key.name}" if valid
              else f"the signature does not match {public_key.name} for this file")
    return RawVerdict(valid, reason,
                      {"valid": valid, "reason": reason, "public_key": str(public_key)})


def load_ssh_or_pem_key(path: Path) -> bytes:
    """The SSH wire blob of the public key in ``path``: an OpenSSH line (``key public
    --ssh``, an ``id_*.pub``) or a PEM public key (``key public``)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc
    if b"-----BEGIN" in data:
        return sshsig.public_key_blob(load_public_key(data))
    return sshsig.parse_openssh_line(data.decode("utf-8", "replace")).blob


def verify_ssh_file(path: Path, signature: Path, public_key: Path,
                    namespace: str | None = None,
                    progress: ProgressFactory | None = None) -> RawVerdict:
    """Check the SSH signature (sshsig) of ``path`` with a bare public key: that key made
    it over this file (and under ``namespace``, if given), as ``ssh-keygen -Y verify``
    checks it, without a certificate chain."""
    expected = load_ssh_or_pem_key(public_key)
    parsed = sshsig.read(signature)
    algorithm = sshsig.message_hash(parsed)
    with (progress or no_progress)("hashing", path) as bar:
        value = hash_path(path, algorithm, bar)
    answer: dict[str, Any] = {"public_key": str(public_key), **sshsig.describe(parsed)}
    if parsed.public_blob != expected:
        reason = (f"the signature was made by another key ({answer['ssh_key']}), not "
                  f"{public_key.name}'s ({sshsig.fingerprint(expected)})")
    elif namespace is not None and parsed.namespace != namespace:
        reason = f"the signature is for namespace {parsed.namespace!r}, not {namespace!r}"
    elif not sshsig.verify(parsed, value):
        reason = f"the signature does not match {public_key.name} for this file"
    else:
        reason = (f"valid: {parsed.namespace!r} signature by the holder of {public_key.name} "
                  f"({answer['ssh_key']})")
        return RawVerdict(True, reason, {"valid": True, "reason": reason, **answer})
    return RawVerdict(False, reason, {"valid": False, "reason": reason, **answer})
