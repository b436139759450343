"""RFC 3161 requests and responses of the time-stamp authority, checked field by field with
asn1crypto and the signature with the ``cryptography`` library, the way a verifier would.

The TSA key is a real software key-store key; certificates come from ``pki.certs``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import cms, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from signgate.config import DEFAULT_TSA_POLICY_OID, load_settings, valid_oid
from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm, RsaPadding
from signgate.errors import ConfigError
from signgate.keystore.base import GeneratedKey, KeyRef
from signgate.keystore.blobs import InMemoryBlobs
from signgate.keystore.soft import SoftwareKeyStore
from signgate.pki import certs
from signgate.pki import tsa as rfc3161
from signgate.pki.tsa import FailureInfo, RequestRejected

NOW = datetime(2025, 6, 1, 12, 0, 0, 654321, tzinfo=UTC)
POLICY = "1.3.6.1.4.1.59544.1.1"
DATA = b"the artifact being time-stamped"


@dataclass
class Signer:
    store: SoftwareKeyStore
    key: GeneratedKey
    algorithm: KeyAlgorithm = KeyAlgorithm.ECDSA_P384
    rsa_padding: RsaPadding = RsaPadding.PKCS1V15

    def sign_digest(self, digest_algorithm: DigestAlgorithm, digest: bytes) -> bytes:
        ref = KeyRef(self.key.uri, self.algorithm, self.rsa_padding)
        return self.store.sign(ref, digest_algorithm, digest)


@pytest.fixture(scope="module")
def authority() -> rfc3161.Authority:
    store = SoftwareKeyStore(os.urandom(32), InMemoryBlobs())
    root_signer = Signer(store, store.generate(KeyAlgorithm.ECDSA_P384))
    tsa_signer = Signer(store, store.generate(KeyAlgorithm.ECDSA_P384))
    root = certs.issue(certs.CertificateSpec(
        certs.Profile.ROOT, certs.name("Example", "root"), root_signer.key.public_key_pem,
        NOW - timedelta(days=1), NOW + timedelta(days=3650)), certs.Issuer(root_signer))
    cert = certs.issue(certs.CertificateSpec(
        certs.Profile.TIMESTAMPING, certs.name("Example", "tsa"),
        tsa_signer.key.public_key_pem, NOW - timedelta(days=1), NOW + timedelta(days=365)),
        certs.Issuer(root_signer, root))
    return rfc3161.Authority(tsa_signer, cert, POLICY, accuracy_seconds=1)


def query(algorithm: str = "sha256", imprint: bytes | None = None, *, nonce: int | None = None,
          cert_req: bool = False, policy: str | None = None, version: int = 1,
          extensions: list[dict[str, Any]] | None = None) -> bytes:
    if imprint is None:
        imprint = hashlib.new(algorithm, DATA).digest()
    fields: dict[str, Any] = {
        "version": version,
        "message_imprint": {"hash_algorithm": {"algorithm": algorithm},
                            "hashed_message": imprint},
        "cert_req": cert_req,
    }
    if nonce is not None:
        fields["nonce"] = nonce
    if policy is not None:
        fields["req_policy"] = policy
    if extensions is not None:
        fields["extensions"] = extensions
    return bytes(tsp.TimeStampReq(fields).dump())


def rejected(der: bytes) -> RequestRejected:
    with pytest.raises(RequestRejected) as info:
        rfc3161.parse_request(der)
    return info.value


# -- requests ----------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["sha256", "sha384", "sha512"])
def test_accepted_algorithms_parse(algorithm: str) -> None:
    req = rfc3161.parse_request(query(algorithm, nonce=12345, cert_req=True, policy=POLICY))
    assert req.digest_algorithm.value == algorithm
    assert req.imprint == hashlib.new(algorithm, DATA).digest()
    assert req.nonce == 12345
    assert req.cert_req is True
    assert req.policy == POLICY


@pytest.mark.parametrize("body", [
    b"", b"\x00", b"not a time-stamp query", b"\x30\x03\x02\x01",  # truncated
    bytes(asn1_x509.Name.build({"common_name": "x"}).dump()),  # DER, but not a request
    query() + b"\x00",  # trailing bytes
    query()[:-1],
])
def test_undecodable_bodies_are_bad_data_format(body: bytes) -> None:
    exc = rejected(body)
    assert exc.failure is FailureInfo.BAD_DATA_FORMAT
    assert exc.decodable is False


@pytest.mark.parametrize("algorithm", ["md5", "sha1", "sha224", "sha3_256"])
def test_weak_or_unknown_algorithms_are_bad_alg(algorithm: str) -> None:
    exc = rejected(query(algorithm))
    assert exc.failure is FailureInfo.BAD_ALG
    assert exc.decodable is True
    assert algorithm in exc.text


def test_unknown_algorithm_oid_is_bad_alg() -> None:
    exc = rejected(query("1.2.3.4.5", b"\x00" * 32))
    assert exc.failure is FailureInfo.BAD_ALG


@pytest.mark.parametrize(("algorithm", "length"), [
    ("sha256", 20), ("sha256", 0), ("sha256", 48), ("sha384", 32), ("sha512", 65)])
def test_imprint_of_the_wrong_length_is_bad_data_format(algorithm: str, length: int) -> None:
    exc = rejected(query(algorithm, b"\x01" * length))
    assert exc.failure is FailureInfo.BAD_DATA_FORMAT
    assert exc.decodable is True


def test_other_versions_are_bad_request() -> None:
    exc = rejected(query(version=2))
    assert exc.failure is FailureInfo.BAD_REQUEST
    assert exc.decodable is True


def test_huge_nonce_is_bad_request() -> None:
    assert rfc3161.parse_request(query(nonce=2**511)).nonce == 2**511
    assert rejected(query(nonce=2**600)).failure is FailureInfo.BAD_REQUEST


def test_critical_extensions_are_refused_and_others_ignored() -> None:
    ext = {"extn_id": "1.2.3.4", "critical": True, "extn_value": b"\x05\x00"}
    assert rejected(query(extensions=[ext])).failure is FailureInfo.UNACCEPTED_EXTENSION
    ext["critical"] = False
    assert rfc3161.parse_request(query(extensions=[ext])).imprint == \
        hashlib.sha256(DATA).digest()


def test_another_policy_is_refused(authority: rfc3161.Authority) -> None:
    req = rfc3161.parse_request(query(policy="1.2.3.4"))
    with pytest.raises(RequestRejected) as info:
        rfc3161.check_policy(req, POLICY)
    assert info.value.failure is FailureInfo.UNACCEPTED_POLICY
    with pytest.raises(RequestRejected):
        rfc3161.grant(req, authority, NOW)
    rfc3161.check_policy(rfc3161.parse_request(query(policy=POLICY)), POLICY)


# -- rejections --------------------------------------------------------------------------


@pytest.mark.parametrize("failure", list(FailureInfo))
def test_rejection_response(failure: FailureInfo) -> None:
    resp = rfc3161.TimeStampResp.load(rfc3161.reject(failure, "no, because"), strict=True)
    status = resp["status"]
    assert status["status"].native == "rejection"
    assert status["fail_info"].native == {failure.value}
    assert status["status_string"].native == ["no, because"]
    assert resp["time_stamp_token"].native is None


# -- granted responses -------------------------------------------------------------------


@dataclass
class Token:
    resp: tsp.TimeStampResp
    signed_data: cms.SignedData
    info: tsp.TSTInfo
    info_der: bytes
    signer_info: cms.SignerInfo
    attrs: dict[str, Any]


def open_token(der: bytes) -> Token:
    resp = tsp.TimeStampResp.load(der, strict=True)
    assert resp["status"]["status"].native == "granted"
    content_info = resp["time_stamp_token"]
    assert content_info["content_type"].native == "signed_data"
    signed_data = content_info["content"]
    encap = signed_data["encap_content_info"]
    assert encap["content_type"].native == "tst_info"
    info_der = encap["content"].contents
    (signer_info,) = list(signed_data["signer_infos"])
    attrs = {a["type"].native: a["values"] for a in signer_info["signed_attrs"]}
    return Token(resp, signed_data, tsp.TSTInfo.load(info_der), info_der, signer_info, attrs)


def grant(authority: rfc3161.Authority, der: bytes, now: datetime = NOW) -> rfc3161.Issued:
    return rfc3161.grant(rfc3161.parse_request(der), authority, now)


def test_granted_token_contents(authority: rfc3161.Authority) -> None:
    request = query("sha512", nonce=2**70 + 5, cert_req=True)
    issued = grant(authority, request)
    token = open_token(issued.der)
    assert token.signed_data["version"].native == "v3"
    info = token.info
    assert info["version"].native == "v1"
    assert info["policy"].dotted == POLICY
    # The imprint is the request's, byte for byte.
    assert info["message_imprint"].dump() == \
        tsp.TimeStampReq.load(request)["message_imprint"].dump()
    assert info["serial_number"].native == issued.serial
    assert 0 < issued.serial < 2**127
    assert info["gen_time"].native == NOW.replace(microsecond=0) == issued.gen_time
    assert info["accuracy"].native == {"seconds": 1, "millis": None, "micros": None}
    assert info["ordering"].native is False
    assert info["nonce"].native == 2**70 + 5
    assert info["tsa"].chosen == authority.certificate.subject
    assert info["extensions"].native is None


def test_signed_attributes_and_signature_verify(authority: rfc3161.Authority) -> None:
    token = open_token(grant(authority, query(nonce=1)).der)
    si = token.signer_info
    assert si["version"].native == "v1"
    sid = si["sid"].chosen
    assert sid["issuer"] == authority.certificate.issuer
    assert sid["serial_number"].native == authority.certificate.serial_number
    assert si["digest_algorithm"]["algorithm"].native == "sha384"
    assert si["signature_algorithm"]["algorithm"].native == "sha384_ecdsa"
    assert [a["algorithm"].native for a in token.signed_data["digest_algorithms"]] == \
        ["sha384"]

    attrs = token.attrs
    assert set(attrs) == {"content_type", "message_digest", "signing_time",
                          "signing_certificate_v2"}
    assert attrs["content_type"].native == ["tst_info"]
    assert attrs["message_digest"].native == [hashlib.sha384(token.info_der).digest()]
    assert attrs["signing_time"].native == [NOW.replace(microsecond=0)]
    (signing_cert,) = list(attrs["signing_certificate_v2"])
    (ess,) = list(signing_cert["certs"])
    assert ess["hash_algorithm"]["algorithm"].native == "sha256"
    assert ess["cert_hash"].native == hashlib.sha256(authority.certificate.dump()).digest()
    assert ess["issuer_serial"]["serial_number"].native == \
        authority.certificate.serial_number
    # The default (SHA-256) is omitted in DER (X.690 §11.5).
    assert ess.dump()[2:4] == b"\x04\x20"

    # RFC 5652 §5.4: the signature is over the attributes' DER as a SET OF.
    field_der = si["signed_attrs"].dump()
    assert field_der[0] == 0xA0
    set_der = b"\x31" + field_der[1:]
    assert cms.CMSAttributes.load(set_der).dump(force=True) == set_der  # DER order
    public_key = x509.load_der_x509_certificate(authority.certificate.dump()).public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    signature = si["signature"].native
    public_key.verify(signature, set_der, ec.ECDSA(hashes.SHA384()))
    with pytest.raises(InvalidSignature):
        public_key.verify(signature, field_der, ec.ECDSA(hashes.SHA384()))
    with pytest.raises(InvalidSignature):
        public_key.verify(signature, token.info_der, ec.ECDSA(hashes.SHA384()))


def test_nonce_is_echoed_only_when_sent(authority: rfc3161.Authority) -> None:
    for nonce in (0, 1, 2**63 - 1, 2**64 + 7, -5):
        assert open_token(grant(authority, query(nonce=nonce)).der).info["nonce"].native \
            == nonce
    assert open_token(grant(authority, query()).der).info["nonce"].native is None


def test_certificate_included_only_on_cert_req(authority: rfc3161.Authority) -> None:
    with_cert = open_token(grant(authority, query(cert_req=True)).der).signed_data
    (choice,) = list(with_cert["certificates"])
    assert choice.chosen.dump() == authority.certificate.dump()
    without = open_token(grant(authority, query(cert_req=False)).der).signed_data
    assert without["certificates"].native is None


def test_accuracy_is_configurable(authority: rfc3161.Authority) -> None:
    loose = rfc3161.Authority(authority.signer, authority.certificate, "1.2.3", 7)
    info = open_token(grant(loose, query()).der).info
    assert info["accuracy"]["seconds"].native == 7
    assert info["policy"].dotted == "1.2.3"


def test_gen_time_is_utc_and_needs_a_zone(authority: rfc3161.Authority) -> None:
    other_zone = NOW.astimezone(timezone(timedelta(hours=-5)))
    assert grant(authority, query(), other_zone).gen_time == NOW.replace(microsecond=0)
    with pytest.raises(ValueError, match="time zone"):
        grant(authority, query(), NOW.replace(tzinfo=None))


def test_serials_are_unique(authority: rfc3161.Authority) -> None:
    request = rfc3161.parse_request(query())
    serials = {rfc3161.grant(request, authority, NOW).serial for _ in range(100)}
    assert len(serials) == 100
    assert all(0 < s < 2**127 for s in serials)


# -- settings ----------------------------------------------------------------------------


def test_policy_oid_syntax() -> None:
    assert valid_oid(DEFAULT_TSA_POLICY_OID)
    for good in ("2.999", "1.3.6.1.4.1.59544.1.1", "0.39"):
        assert valid_oid(good), good
    for bad in ("", "1", "3.1", "1.40", "1.3.", "1..3", "1.03", " 1.3", "1.3.x"):
        assert not valid_oid(bad), bad


def test_tsa_settings(tmp_path: Path) -> None:
    settings = load_settings(tmp_path)
    assert settings.tsa_policy_oid == DEFAULT_TSA_POLICY_OID
    assert settings.tsa_accuracy_seconds == 1
    (tmp_path / "config.toml").write_text(
        'tsa_policy_oid = "1.2.3.4"\ntsa_accuracy_seconds = 5\n')
    settings = load_settings(tmp_path)
    assert (settings.tsa_policy_oid, settings.tsa_accuracy_seconds) == ("1.2.3.4", 5)
    for text in ('tsa_policy_oid = "nope"', "tsa_policy_oid = 1", "tsa_accuracy_seconds = 0",
                 "tsa_accuracy_seconds = true", 'tsa_accuracy_seconds = "1"'):
        (tmp_path / "config.toml").write_text(text + "\n")
        with pytest.raises(ConfigError):
            load_settings(tmp_path)


# -- the DER assembly against asn1crypto's own encoding ----------------------------------


class FixedSigner:
    """A signer whose signature is a function of the digest: two assemblies of one token
    must then be equal byte for byte."""

    def __init__(self, inner: Signer) -> None:
        self.inner = inner
        self.algorithm = inner.algorithm

    def sign_digest(self, digest_algorithm: DigestAlgorithm, digest: bytes) -> bytes:
        return hashlib.sha512(digest).digest()[:71]


def asn1crypto_token(request: rfc3161.TimeStampRequest, tsa: rfc3161.Authority,
                     gen_time: datetime, serial: int) -> bytes:
    """The same token built from asn1crypto objects (how signgate built them before the
    DER assembly): the oracle the assembly is compared with."""
    from asn1crypto import algos, core

    from signgate.pki import cms as pki_cms

    info: dict[str, object] = {
        "version": "v1", "policy": tsa.policy,
        "message_imprint": tsp.MessageImprint.load(request.message_imprint),
        "serial_number": serial, "gen_time": gen_time,
        "accuracy": {"seconds": tsa.accuracy_seconds}, "ordering": False,
        "tsa": asn1_x509.GeneralName(name="directory_name", value=tsa.certificate.subject)}
    if request.nonce is not None:
        info["nonce"] = request.nonce
    content = tsp.TSTInfo(info).dump()
    sig_name, digest_alg = certs.signature_algorithm(tsa.signer.algorithm)
    attributes = pki_cms.signed_attributes(
        "tst_info", hashlib.new(digest_alg.value, content).digest(), gen_time,
        [cms.CMSAttribute({"type": "signing_certificate_v2", "values": [
            rfc3161.signing_certificate_v2(tsa.certificate)]})])
    signature = pki_cms.sign_attributes(tsa.signer, digest_alg, attributes)
    signer_info = pki_cms.signer_info(
        tsa.certificate.issuer, tsa.certificate.serial_number, digest_alg, attributes,
        algos.SignedDigestAlgorithm({"algorithm": sig_name}), signature)
    token = pki_cms.signed_data(
        [signer_info], digest_alg, [tsa.certificate.dump()] if request.cert_req else [],
        cms.EncapsulatedContentInfo({"content_type": "tst_info",
                                     "content": core.ParsableOctetString(content)}))
    return bytes(tsp.TimeStampResp({"status": {"status": "granted"},
                                    "time_stamp_token": token}).dump())


@pytest.mark.parametrize("algorithm", ["sha256", "sha384", "sha512"])
@pytest.mark.parametrize("nonce", [None, 1, 128, -129, 2**200 + 1])
@pytest.mark.parametrize("cert_req", [True, False])
def test_the_assembled_token_is_asn1cryptos_encoding(
        authority: rfc3161.Authority, algorithm: str, nonce: int | None,
        cert_req: bool) -> None:
    tsa = rfc3161.Authority(FixedSigner(authority.signer),  # type: ignore[arg-type]
                            authority.certificate, POLICY, accuracy_seconds=3)
    request = rfc3161.parse_request(query(algorithm, nonce=nonce, cert_req=cert_req))
    for now, serial in ((NOW, 1), (datetime(2051, 2, 3, 4, 5, 6, tzinfo=UTC), 2**126 + 5)):
        issued = rfc3161.grant(request, tsa, now, serial)
        assert issued.der == asn1crypto_token(request, tsa, issued.gen_time, serial)
        assert tsp.TimeStampResp.load(issued.der).dump(force=True) == issued.der
        # The token handed to formats that embed it is the one inside the response.
        assert issued.token == tsp.TimeStampResp.load(issued.der)["time_stamp_token"].dump()


@pytest.mark.parametrize("algorithm", list(DigestAlgorithm))
def test_signgates_own_request_has_asn1cryptos_imprint(algorithm: DigestAlgorithm) -> None:
    digest = hashlib.new(algorithm.value, DATA).digest()
    own = rfc3161.own_request(algorithm, digest)
    assert own.message_imprint == tsp.MessageImprint(
        {"hash_algorithm": {"algorithm": algorithm.value}, "hashed_message": digest}).dump()
    assert own.message_imprint == rfc3161.parse_request(
        query(algorithm.value, digest, cert_req=True)).message_imprint
