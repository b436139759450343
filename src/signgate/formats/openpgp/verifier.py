"""The offline verifier of ``openpgp``: the armored signature over FILE, by one of the
given certificates (files in, Evidence out; the trust decision is ``pki/trust``'s)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from signgate.crypto.algorithms import RsaPadding
from signgate.crypto.signatures import PublicKey, verify_digest
from signgate.errors import InvalidInput, VerificationFailed
from signgate.formats.base import Evidence
from signgate.formats.files import hash_file, sidecar_token
from signgate.formats.openpgp.codec import (
    PK_ECDSA,
    PK_EDDSA,
    PK_RSA,
    SIG_BINARY,
    ParsedSignature,
    dearmor,
    openpgp_key,
    parse_signature,
    trailer,
)

MAX_SIGNATURE_FILE = 64 * 1024


def _value_for(sig: ParsedSignature, public_key: PublicKey) -> bytes | None:
    """The signature as the key store output it (what a timestamp covers): DER for ECDSA,
    r || s for Ed25519, the modulus-sized integer for RSA. None when the key type does not
    match the signature's algorithm."""
    if sig.algorithm == PK_ECDSA and isinstance(public_key, ec.EllipticCurvePublicKey):
        return encode_dss_signature(sig.mpis[0], sig.mpis[1])
    if sig.algorithm == PK_EDDSA and isinstance(public_key, ed25519.Ed25519PublicKey):
        if max(sig.mpis).bit_length() > 256:
            return None
        return sig.mpis[0].to_bytes(32, "big") + sig.mpis[1].to_bytes(32, "big")
    if sig.algorithm == PK_RSA and isinstance(public_key, rsa.RSAPublicKey):
        size = (public_key.key_size + 7) // 8
        if sig.mpis[0].bit_length() > size * 8:
            return None
        return sig.mpis[0].to_bytes(size, "big")
    return None


def _certificate(der: bytes) -> tuple[x509.Certificate, PublicKey] | None:
    try:
        cert = x509.load_der_x509_certificate(der)
        key = cert.public_key()
    except ValueError:
        return None
    if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
                      | rsa.RSAPublicKey):
        return None
    return cert, key


# signgate issues a key version's certificate valid from 5 minutes before the version was
# made (service/records/authorities.py): from notBefore the OpenPGP key, and so its
# fingerprint, follows.
CERTIFICATE_BACKDATE = timedelta(minutes=5)


class OpenPgpVerifier:
    """Offline verifier: the armored signature over FILE, by one of the given certificates.

    The signer is found by the signature itself, not by key ID: a v4 fingerprint covers
    the key's creation time, which an X.509 certificate does not carry. Every certificate
    whose key type fits is tried, and the one whose public key verifies the signature over
    this file is the signer: that is the proof, and it needs nothing but the public key.
    The issuer fingerprint is then checked against the OpenPGP key the certificate's
    notBefore implies (signgate back-dates version certificates by 5 minutes) and
    reported as confirmed or not (not, for a certificate another CA issued).
    """

    name = "openpgp"

    def verify(self, path: Path, signature: Path | None,
               certificates: tuple[bytes, ...]) -> Evidence:
        if signature is None:
            raise InvalidInput("an OpenPGP signature is detached: give the .asc file")
        try:
            if signature.stat().st_size > MAX_SIGNATURE_FILE:
                raise InvalidInput(f"{signature} is too large for an OpenPGP signature")
            text = signature.read_text("ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"cannot read {signature} as an armored signature") from exc
        sig = parse_signature(dearmor(text, "SIGNATURE"))
        if sig.sig_type != SIG_BINARY:
            raise VerificationFailed(f"signature type 0x{sig.sig_type:02x} is not a binary "
                                     "document signature")
        h = hash_file(path, sig.digest, None)
        h.update(trailer(sig.hashed))
        hashed: bytes = h.digest()
        if hashed[:2] != sig.left16:
            raise VerificationFailed(f"the signature does not cover {path.name} (digest "
                                     "prefix differs: the file was changed or is another)")
        if not certificates:
            raise InvalidInput("give the signer's certificate (signgate key cert) to verify "
                               "an OpenPGP signature against")
        for der in certificates:
            found = _certificate(der)
            if found is None:
                continue
            cert, public_key = found
            value = _value_for(sig, public_key)
            # OpenPGP RSA signatures are PKCS#1 v1.5 (RFC 4880 §5.2.2).
            if value is None or not verify_digest(public_key, RsaPadding.PKCS1V15, sig.digest,
                                                  hashed, value):
                continue
            return Evidence(
                format=self.name, signer=der,
                certificates=tuple(c for c in certificates if c != der),
                signature_value=value, signing_time=sig.created,
                timestamp_token=sidecar_token(signature),
                details=self._details(sig, cert, public_key))
        raise VerificationFailed(f"the OpenPGP signature over {path.name} was not made by "
                                 "any of the given certificates' keys")

    @staticmethod
    def _details(sig: ParsedSignature, cert: x509.Certificate,
                 public_key: PublicKey) -> dict[str, str]:
        details = {"digest_algorithm": sig.digest.value}
        if sig.issuer_fingerprint is not None:
            details["fingerprint"] = sig.issuer_fingerprint.hex().upper()
        elif sig.issuer_key_id is not None:
            details["key_id"] = sig.issuer_key_id.hex().upper()
        implied = openpgp_key(public_key, cert.not_valid_before_utc + CERTIFICATE_BACKDATE)
        confirmed = (sig.issuer_fingerprint == implied.fingerprint
                     or (sig.issuer_fingerprint is None and sig.issuer_key_id == implied.key_id))
        details["fingerprint_matches_certificate"] = "yes" if confirmed else "unknown"
        return details

