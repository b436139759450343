"""RFC 3161 time-stamp requests and responses, signed through the key store primitive.

Pure: no database, no HTTP. :func:`parse_request` turns a DER ``TimeStampReq`` into a
:class:`TimeStampRequest` or raises :class:`RequestRejected` with the ``PKIFailureInfo``
bit RFC 3161 §2.4.2 names for the problem; :func:`grant` builds a granted
``TimeStampResp`` whose token is a CMS ``SignedData`` (RFC 5652) over a ``TSTInfo``,
built by the one CMS assembler (``pki/cms.py``) and signed by a
:class:`signgate.pki.cms.DigestSigner` over the digest of the DER ``SET OF`` signed
attributes (RFC 5652 §5.4), with a ``signingCertificateV2`` attribute naming the TSA
certificate by its SHA-256 hash (RFC 5816); :func:`reject` builds a rejection.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property

from asn1crypto import algos, cms, core, tsp, x509

from signgate.crypto.algorithms import DigestAlgorithm
from signgate.pki import certs
from signgate.pki import cms as pki_cms

# Imprint algorithms accepted, with their digest lengths. MD5 and SHA-1 are refused:
# a time-stamp over a collidable digest vouches for every document with that digest.
ACCEPTED = {
    "sha256": (DigestAlgorithm.SHA256, 32),
    "sha384": (DigestAlgorithm.SHA384, 48),
    "sha512": (DigestAlgorithm.SHA512, 64),
}
# A nonce is a large random integer (RFC 3161 §2.4.1: 64 bits suffice); one this long is
# not a nonce, and it would be copied into the token and the audit log.
MAX_NONCE_BITS = 512


class TimeStampResp(core.Sequence):  # type: ignore[misc]
    """RFC 3161 §2.4.2 ``TimeStampResp``: asn1crypto's requires the token, which a
    rejection does not have."""

    _fields = [  # noqa: RUF012 -- asn1crypto's declaration style
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


class FailureInfo(enum.StrEnum):
    """The ``PKIFailureInfo`` bits of RFC 3161 §2.4.2 (asn1crypto's names)."""

    BAD_ALG = "bad_alg"
    BAD_REQUEST = "bad_request"
    BAD_DATA_FORMAT = "bad_data_format"
    TIME_NOT_AVAILABLE = "time_not_available"
    UNACCEPTED_POLICY = "unaccepted_policy"
    UNACCEPTED_EXTENSION = "unaccepted_extensions"
    ADD_INFO_NOT_AVAILABLE = "add_info_not_available"
    SYSTEM_FAILURE = "system_failure"


class RequestRejected(Exception):
    """A request the TSA will not time-stamp. ``decodable`` is False when the body was
    not a ``TimeStampReq`` at all (the HTTP layer answers those with 400)."""

    def __init__(self, failure: FailureInfo, text: str, *, decodable: bool = True) -> None:
        super().__init__(text)
        self.failure = failure
        self.text = text
        self.decodable = decodable


@dataclass(frozen=True)
class TimeStampRequest:
    """What a client asked to have time-stamped."""

    digest_algorithm: DigestAlgorithm
    imprint: bytes
    nonce: int | None
    cert_req: bool
    policy: str | None
    message_imprint: tsp.MessageImprint


@dataclass(frozen=True)
class Authority:
    """The TSA: its certificate, a signer over its key, the policy it stamps under and
    the accuracy (whole seconds) it claims for ``genTime``."""

    signer: pki_cms.DigestSigner
    certificate: x509.Certificate
    policy: str
    accuracy_seconds: int = 1

    # DER of the parts every token repeats, encoded once. asn1crypto re-encodes a parsed
    # structure that is placed into a new one (retagging copies it): loading these bytes
    # afresh for each token keeps that from costing milliseconds per response.
    @cached_property
    def certificate_der(self) -> bytes:
        return bytes(self.certificate.dump())

    @cached_property
    def subject_der(self) -> bytes:
        return bytes(self.certificate.subject.dump())

    @cached_property
    def issuer_der(self) -> bytes:
        return bytes(self.certificate.issuer.dump())

    @cached_property
    def signing_certificate_der(self) -> bytes:
        return bytes(signing_certificate_v2(self.certificate).dump())


@dataclass(frozen=True)
class Issued:
    """A granted response and what its token says, for the audit log."""

    der: bytes
    serial: int
    gen_time: datetime


def response_time(response: bytes | None) -> datetime | None:
    """genTime of a stored TimeStampResp (one signgate issued or fetched itself)."""
    if not response:
        return None
    parsed = TimeStampResp.load(response)
    info = parsed["time_stamp_token"]["content"]["encap_content_info"]["content"].parsed
    value = info["gen_time"].native
    return value if isinstance(value, datetime) else None


def parse_request(der: bytes) -> TimeStampRequest:
    """The ``TimeStampReq`` in ``der``, checked as RFC 3161 §2.4.1 requires."""
    try:
        req = tsp.TimeStampReq.load(der, strict=True)
        req.native  # noqa: B018 -- asn1crypto parses lazily: force every field now
        version = req["version"].native
        imprint = req["message_imprint"]
        algorithm = imprint["hash_algorithm"]["algorithm"].native
        parameters = imprint["hash_algorithm"]["parameters"]
        hashed = imprint["hashed_message"].native
        nonce = req["nonce"].native
        cert_req = bool(req["cert_req"].native)
        policy = req["req_policy"].dotted if req["req_policy"].native is not None else None
        extensions = list(req["extensions"]) if req["extensions"].native is not None else []
    except Exception as exc:  # asn1crypto raises ValueError, TypeError, KeyError, ...
        raise RequestRejected(FailureInfo.BAD_DATA_FORMAT,
                              f"not a DER TimeStampReq: {type(exc).__name__}",
                              decodable=False) from None
    if version != "v1":
        raise RequestRejected(FailureInfo.BAD_REQUEST, f"unsupported request version {version}")
    if algorithm not in ACCEPTED:
        raise RequestRejected(
            FailureInfo.BAD_ALG,
            f"message digest algorithm {algorithm} is not accepted; use sha256, sha384 or "
            "sha512")
    if parameters.native is not None:
        raise RequestRejected(FailureInfo.BAD_ALG, "superfluous message digest parameters")
    digest_algorithm, length = ACCEPTED[algorithm]
    if not isinstance(hashed, bytes) or len(hashed) != length:
        raise RequestRejected(
            FailureInfo.BAD_DATA_FORMAT,
            f"a {algorithm} message imprint is {length} bytes, not {len(hashed or b'')}")
    if nonce is not None and abs(nonce).bit_length() > MAX_NONCE_BITS:
        raise RequestRejected(FailureInfo.BAD_REQUEST,
                              f"the nonce is longer than {MAX_NONCE_BITS} bits")
    for extension in extensions:
        if extension["critical"].native:
            raise RequestRejected(
                FailureInfo.UNACCEPTED_EXTENSION,
                f"critical request extension {extension['extn_id'].dotted} is not supported")
    return TimeStampRequest(digest_algorithm, hashed, nonce, cert_req, policy, imprint)


def check_policy(request: TimeStampRequest, policy: str) -> None:
    """RFC 3161 §2.4.1: a requested policy other than the TSA's is refused."""
    if request.policy is not None and request.policy != policy:
        raise RequestRejected(FailureInfo.UNACCEPTED_POLICY,
                              f"policy {request.policy} is not supported; this TSA uses "
                              f"{policy}")


def reject(failure: FailureInfo, text: str) -> bytes:
    """A DER ``TimeStampResp`` with status rejection, ``failInfo`` and ``statusString``."""
    response = TimeStampResp({
        "status": {"status": "rejection", "status_string": [text],
                   "fail_info": {failure.value}},
    })
    return bytes(response.dump())


def _gen_time(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("genTime must carry a time zone")
    # Whole seconds: the accuracy claimed is whole seconds too, and covers the truncation.
    return now.astimezone(UTC).replace(microsecond=0)


def signing_certificate_v2(certificate: x509.Certificate) -> tsp.SigningCertificateV2:
    """RFC 5816 ``SigningCertificateV2``: one ``ESSCertIDv2`` (SHA-256, the default
    algorithm, so omitted in DER) with the certificate's issuer and serial."""
    return tsp.SigningCertificateV2({"certs": [{
        "cert_hash": hashlib.sha256(certificate.dump()).digest(),
        "issuer_serial": {
            "issuer": [x509.GeneralName(name="directory_name", value=certificate.issuer)],
            "serial_number": certificate.serial_number,
        },
    }]})


def grant(request: TimeStampRequest, tsa: Authority, now: datetime,
          serial: int | None = None) -> Issued:
    """A granted ``TimeStampResp`` for ``request``, time-stamped at ``now``."""
    check_policy(request, tsa.policy)
    serial = certs.new_serial() if serial is None else serial
    gen_time = _gen_time(now)
    info: dict[str, object] = {
        "version": "v1",
        "policy": tsa.policy,
        "message_imprint": request.message_imprint,
        "serial_number": serial,
        "gen_time": gen_time,
        "accuracy": {"seconds": tsa.accuracy_seconds},
        "ordering": False,
        "tsa": x509.GeneralName(name="directory_name", value=x509.Name.load(tsa.subject_der)),
    }
    if request.nonce is not None:
        info["nonce"] = request.nonce
    tst_info = tsp.TSTInfo(info)
    content = tst_info.dump()

    # The SignedData comes from the one CMS assembler. Its signatureAlgorithm is the X.509
    # one (sha256WithRSAEncryption, ecdsa-with-SHA384), as the TSA always wrote it.
    sig_name, digest_alg = certs.signature_algorithm(tsa.signer.algorithm)
    attributes = pki_cms.signed_attributes(
        "tst_info", hashlib.new(digest_alg.value, content).digest(), gen_time,
        [cms.CMSAttribute({"type": "signing_certificate_v2", "values": [
            tsp.SigningCertificateV2.load(tsa.signing_certificate_der)]})])
    signature = pki_cms.sign_attributes(tsa.signer, digest_alg, attributes)
    signer_info = pki_cms.signer_info(
        x509.Name.load(tsa.issuer_der), tsa.certificate.serial_number, digest_alg,
        attributes, algos.SignedDigestAlgorithm({"algorithm": sig_name}), signature)
    token = pki_cms.signed_data(
        [signer_info], digest_alg,
        [tsa.certificate_der] if request.cert_req else [],
        # RFC 5652 §5.1: version 3 because eContentType is not id-data.
        cms.EncapsulatedContentInfo({"content_type": "tst_info",
                                     "content": core.ParsableOctetString(content)}))
    response = tsp.TimeStampResp({"status": {"status": "granted"},
                                  "time_stamp_token": token})
    return Issued(response.dump(), serial, gen_time)

