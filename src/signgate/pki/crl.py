"""Certificate revocation lists (RFC 5280 §5), built as TBSCertList and signed through a
:class:`signgate.pki.cms.DigestSigner`, like certificates, with times from the one time
encoder of ``pki/cms.py``."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import core, crl

from signgate.errors import InvalidInput
from signgate.pki.certs import Issuer, signature_algorithm
from signgate.pki.cms import whole_second, x509_time


@dataclass(frozen=True)
class Revoked:
    serial: int
    revoked_at: datetime
    reason: str = "key_compromise"  # asn1crypto's CRLReason name
    invalidity_date: datetime | None = None


def build(issuer: Issuer, revoked: list[Revoked], number: int, this_update: datetime,
          next_update: datetime) -> crl.CertificateList:
    """A v2 CRL of ``issuer.certificate`` listing ``revoked``, numbered ``number``."""
    if issuer.certificate is None:
        raise InvalidInput("a CRL needs the issuing CA's certificate")
    if next_update <= this_update:
        raise InvalidInput("a CRL's nextUpdate must follow its thisUpdate")
    sig_name, digest_alg = signature_algorithm(issuer.signer.algorithm)
    entries = []
    for r in sorted(revoked, key=lambda r: r.serial):
        ext: list[dict[str, object]] = [{"extn_id": "crl_reason", "critical": False,
                                         "extn_value": r.reason}]
        if r.invalidity_date is not None:
            # §5.3.2: invalidityDate is a GeneralizedTime, whatever the year.
            when = whole_second(r.invalidity_date)  # UTC, whole seconds, like x509_time
            ext.append({"extn_id": "invalidity_date", "critical": False,
                        "extn_value": core.GeneralizedTime(when)})
        entries.append({"user_certificate": r.serial,
                        "revocation_date": x509_time(r.revoked_at),
                        "crl_entry_extensions": ext})
    tbs_fields: dict[str, object] = {
        "version": "v2",
        "signature": {"algorithm": sig_name},
        "issuer": issuer.certificate.subject,
        "this_update": x509_time(this_update),
        "next_update": x509_time(next_update),
        "crl_extensions": [
            {"extn_id": "crl_number", "critical": False, "extn_value": number},
            {"extn_id": "authority_key_identifier", "critical": False,
             "extn_value": {"key_identifier": issuer.certificate.key_identifier}},
        ],
    }
    if entries:  # §5.1.2.6: absent, not empty, when nothing is revoked
        tbs_fields["revoked_certificates"] = entries
    tbs = crl.TbsCertList(tbs_fields)
    digest = hashlib.new(digest_alg.value, tbs.dump()).digest()
    signature = issuer.signer.sign_digest(digest_alg, digest)
    return crl.CertificateList({
        "tbs_cert_list": tbs,
        "signature_algorithm": {"algorithm": sig_name},
        "signature": signature,
    })

