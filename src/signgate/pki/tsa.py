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
    message_imprint: bytes  # DER, as the request has it: the token repeats it


def own_request(digest_algorithm: DigestAlgorithm, imprint: bytes) -> TimeStampRequest:
    """The request signgate makes for its own signatures (no nonce, certReq)."""
    return TimeStampRequest(digest_algorithm, imprint, None, True, None,
                            _tlv(0x30, _DIGEST_ALGORITHM_DER[digest_algorithm]
                                 + _tlv(0x04, imprint)))


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

    @cached_property
    def template(self) -> _Template:
        return _Template.of(self)


@dataclass(frozen=True)
class Issued:
    """A granted response and what its token says, for the audit log."""

    der: bytes
    serial: int
    gen_time: datetime
    # The TimeStampToken inside ``der`` when the TSA assembled it here (no need to parse
    # the response again to embed it in a signature).
    token: bytes | None = None


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
    return TimeStampRequest(digest_algorithm, hashed, nonce, cert_req, policy,
                            imprint.dump())


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
    """A granted ``TimeStampResp`` for ``request``, time-stamped at ``now``.

    The token is assembled from DER: every part that is the same in every token of this
    TSA (its name, policy, accuracy, certificate, the signer's identifier and algorithms,
    the constant attributes) was encoded once by asn1crypto (:class:`_Template`); per token
    only the imprint, serial, time, nonce, the message digest and the signature are encoded
    and the parts wrapped in their tags and lengths (X.690 §8.1: INTEGER, OCTET STRING and
    the times are the only primitives encoded here). Building the structure
    with asn1crypto objects instead costs over a millisecond per token, 50 times the ECDSA
    signature in it; a test compares the bytes with asn1crypto's own encoding of the same
    token, field by field.
    """
    check_policy(request, tsa.policy)
    serial = certs.new_serial() if serial is None else serial
    gen_time = _gen_time(now)
    t = tsa.template
    tst_info = _tlv(0x30, b"".join((
        t.version_and_policy, request.message_imprint, _integer(serial),
        _tlv(0x18, gen_time.strftime("%Y%m%d%H%M%SZ").encode()), t.accuracy,
        b"" if request.nonce is None else _integer(request.nonce), t.tsa_name)))
    digest = hashlib.new(t.digest.value, tst_info).digest()
    # RFC 5652 §11.3 / RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime after.
    signing_time = (_tlv(0x17, gen_time.strftime("%y%m%d%H%M%SZ").encode())
                    if gen_time.year < 2050
                    else _tlv(0x18, gen_time.strftime("%Y%m%d%H%M%SZ").encode()))
    attributes = b"".join((
        t.content_type_attribute,
        _tlv(0x30, t.signing_time_type + _tlv(0x31, signing_time)),
        _tlv(0x30, t.message_digest_type + _tlv(0x31, _tlv(0x04, digest))),
        t.signing_certificate_attribute))
    # RFC 5652 §5.4: the signature is over the DER of the attributes as a SET OF (0x31);
    # the SignerInfo carries the same content as [0] IMPLICIT (0xA0).
    signed_attrs_digest = hashlib.new(t.digest.value, _tlv(0x31, attributes)).digest()
    signature = tsa.signer.sign_digest(t.digest, signed_attrs_digest)
    signer_info = _tlv(0x30, b"".join((
        t.signer_info_head, _tlv(0xA0, attributes), t.signature_algorithm,
        _tlv(0x04, signature))))
    signed_data = _tlv(0x30, b"".join((
        t.signed_data_head,
        _tlv(0x30, t.tst_info_type + _tlv(0xA0, _tlv(0x04, tst_info))),
        t.certificates if request.cert_req else b"",
        _tlv(0x31, signer_info))))
    token = _tlv(0x30, t.signed_data_type + _tlv(0xA0, signed_data))
    return Issued(_tlv(0x30, t.granted + token), serial, gen_time, token)


def _tlv(tag: int, content: bytes) -> bytes:
    """One DER element: identifier octet, definite length (X.690 §8.1.3), content."""
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    size = (n.bit_length() + 7) // 8
    return bytes((tag, 0x80 | size)) + n.to_bytes(size, "big") + content


def _integer(n: int) -> bytes:
    """A DER INTEGER: two's complement in the fewest octets (X.690 §8.3.2)."""
    return _tlv(0x02, n.to_bytes((n + (n < 0)).bit_length() // 8 + 1, "big", signed=True))


_DIGEST_ALGORITHM_DER = {
    algorithm: algos.DigestAlgorithm({"algorithm": algorithm.value}).dump()
    for algorithm, _ in ACCEPTED.values()}


@dataclass(frozen=True)
class _Template:
    """The DER parts every token of one TSA repeats, each encoded by asn1crypto once."""

    digest: DigestAlgorithm
    version_and_policy: bytes
    accuracy: bytes
    tsa_name: bytes
    content_type_attribute: bytes
    signing_time_type: bytes
    message_digest_type: bytes
    signing_certificate_attribute: bytes
    signer_info_head: bytes  # version, sid, digestAlgorithm
    signature_algorithm: bytes
    signed_data_head: bytes  # version, digestAlgorithms
    tst_info_type: bytes
    certificates: bytes  # [0] IMPLICIT SET OF Certificate: the TSA's own
    signed_data_type: bytes
    granted: bytes  # the PKIStatusInfo

    @classmethod
    def of(cls, tsa: Authority) -> _Template:
        sig_name, digest = certs.signature_algorithm(tsa.signer.algorithm)
        digest_algorithm = algos.DigestAlgorithm({"algorithm": digest.value}).dump()
        signing_certificate = cms.CMSAttribute({"type": "signing_certificate_v2", "values": [
            tsp.SigningCertificateV2.load(tsa.signing_certificate_der)]})
        sid = cms.SignerIdentifier(name="issuer_and_serial_number", value={
            "issuer": x509.Name.load(tsa.issuer_der),
            "serial_number": tsa.certificate.serial_number})
        return cls(
            digest=digest,
            version_and_policy=(core.Integer(1).dump()
                                + core.ObjectIdentifier(tsa.policy).dump()),
            accuracy=tsp.Accuracy({"seconds": tsa.accuracy_seconds}).dump(),
            tsa_name=_tlv(0xA0, x509.GeneralName(
                name="directory_name", value=x509.Name.load(tsa.subject_der)).dump()),
            content_type_attribute=cms.CMSAttribute(
                {"type": "content_type", "values": ["tst_info"]}).dump(),
            signing_time_type=cms.CMSAttributeType("signing_time").dump(),
            message_digest_type=cms.CMSAttributeType("message_digest").dump(),
            signing_certificate_attribute=signing_certificate.dump(),
            signer_info_head=core.Integer(1).dump() + sid.dump() + digest_algorithm,
            signature_algorithm=algos.SignedDigestAlgorithm({"algorithm": sig_name}).dump(),
            signed_data_head=core.Integer(3).dump() + _tlv(0x31, digest_algorithm),
            tst_info_type=cms.ContentType("tst_info").dump(),
            certificates=_tlv(0xA0, tsa.certificate_der),
            signed_data_type=cms.ContentType("signed_data").dump(),
            granted=tsp.PKIStatusInfo({"status": "granted"}).dump(),
        )
