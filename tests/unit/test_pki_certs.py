"""The X.509 builders of signgate's PKI, checked by an independent parser and verifier.

Every certificate here is signed through a real software key store (the CA key never
leaves it) and then read back with the ``cryptography`` library, the way a relying party
would; DER details (UTCTime vs GeneralizedTime) are read with asn1crypto.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import TypeVar

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, SignatureAlgorithmOID

from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm, RsaPadding
from signgate.errors import InvalidInput
from signgate.keystore.base import GeneratedKey, KeyRef
from signgate.keystore.blobs import InMemoryBlobs
from signgate.keystore.soft import SoftwareKeyStore
from signgate.pki import certs
from signgate.pki.certs import CertificateSpec, Issuer, Profile

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
ROOT_END = NOW + timedelta(days=20 * 365)
CA_END = NOW + timedelta(days=10 * 365)
LEAF_END = NOW + timedelta(days=365)
ORG = "Example Org"


@pytest.fixture(scope="module")
def store() -> SoftwareKeyStore:
    return SoftwareKeyStore(os.urandom(32), InMemoryBlobs())


class Keys:
    """Keys generated once per module per algorithm (RSA generation is slow), plus fresh
    ones on request."""

    def __init__(self, store: SoftwareKeyStore) -> None:
        self.store = store
        self._shared: dict[tuple[KeyAlgorithm, str], GeneratedKey] = {}

    def get(self, algorithm: KeyAlgorithm, role: str = "default") -> GeneratedKey:
        if (algorithm, role) not in self._shared:
            self._shared[algorithm, role] = self.store.generate(algorithm)
        return self._shared[algorithm, role]


@pytest.fixture(scope="module")
def keys(store: SoftwareKeyStore) -> Keys:
    return Keys(store)


@dataclass
class StoreTbsSigner:
    """A :class:`certs.TbsSigner` backed by a key of the software key store; it remembers
    what it was asked to sign."""

    store: SoftwareKeyStore
    key: GeneratedKey
    algorithm: KeyAlgorithm
    rsa_padding: RsaPadding = RsaPadding.PKCS1V15
    calls: list[tuple[DigestAlgorithm, bytes]] = field(default_factory=list)

    def sign_digest(self, digest_algorithm: DigestAlgorithm, digest: bytes) -> bytes:
        self.calls.append((digest_algorithm, digest))
        ref = KeyRef(self.key.uri, self.algorithm, self.rsa_padding)
        return self.store.sign(ref, digest_algorithm, digest)


def signer(keys: Keys, algorithm: KeyAlgorithm, role: str) -> StoreTbsSigner:
    return StoreTbsSigner(keys.store, keys.get(algorithm, role), algorithm)


def load(cert: asn1_x509.Certificate) -> x509.Certificate:
    return x509.load_der_x509_certificate(cert.dump())


@dataclass
class Chain:
    root_signer: StoreTbsSigner
    ca_signer: StoreTbsSigner
    root: asn1_x509.Certificate
    ca: asn1_x509.Certificate
    leaf: asn1_x509.Certificate
    leaf_key: GeneratedKey

    @property
    def root_issuer(self) -> Issuer:
        return Issuer(self.root_signer, self.root)

    @property
    def ca_issuer(self) -> Issuer:
        return Issuer(self.ca_signer, self.ca)


def build_chain(keys: Keys, root_alg: KeyAlgorithm, ca_alg: KeyAlgorithm,
                leaf_alg: KeyAlgorithm, leaf_role: str = "leaf") -> Chain:
    root_signer = signer(keys, root_alg, "root")
    ca_signer = signer(keys, ca_alg, "issuing")
    leaf_key = keys.get(leaf_alg, leaf_role)
    root = certs.issue(CertificateSpec(
        Profile.ROOT, certs.name(ORG, "test root CA"), root_signer.key.public_key_pem,
        NOW, ROOT_END), Issuer(root_signer))
    ca = certs.issue(CertificateSpec(
        Profile.ISSUING, certs.name(ORG, "proj issuing CA", "proj"),
        ca_signer.key.public_key_pem, NOW, CA_END,
        crl_url="https://signgate.example/crl/root.crl"), Issuer(root_signer, root))
    leaf = certs.issue(CertificateSpec(
        Profile.CODE_SIGNING, certs.name(ORG, "proj/app v1", "proj"), leaf_key.public_key_pem,
        NOW, LEAF_END, crl_url="https://signgate.example/crl/proj.crl"),
        Issuer(ca_signer, ca))
    return Chain(root_signer, ca_signer, root, ca, leaf, leaf_key)


@pytest.fixture(scope="module")
def chain(keys: Keys) -> Chain:
    """A P-384 root, a P-256 issuing CA and a P-256 code-signing leaf."""
    return build_chain(keys, KeyAlgorithm.ECDSA_P384, KeyAlgorithm.ECDSA_P256,
                       KeyAlgorithm.ECDSA_P256)


E = TypeVar("E", bound=x509.ExtensionType)


def ext(cert: x509.Certificate, kind: type[E]) -> x509.Extension[E]:
    return cert.extensions.get_extension_for_class(kind)


def spki_der(pem: str) -> bytes:
    key = serialization.load_pem_public_key(pem.encode())
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def cert_spki_der(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)


# -- signatures ------------------------------------------------------------------------


def test_chain_signatures_verify(chain: Chain) -> None:
    root, ca, leaf = load(chain.root), load(chain.ca), load(chain.leaf)
    root.verify_directly_issued_by(root)
    ca.verify_directly_issued_by(root)
    leaf.verify_directly_issued_by(ca)
    assert root.version is x509.Version.v3
    assert ca.version is x509.Version.v3
    assert leaf.version is x509.Version.v3
    # Not issued by anyone else.
    with pytest.raises(ValueError, match="does not match certificate issuer"):
        leaf.verify_directly_issued_by(root)
    with pytest.raises(ValueError, match="does not match certificate issuer"):
        ca.verify_directly_issued_by(ca)


def test_signature_is_over_the_tbs_digest(chain: Chain, keys: Keys) -> None:
    """The signer is handed the digest of exactly the DER TBSCertificate."""
    ca_signer = signer(keys, KeyAlgorithm.ECDSA_P256, "issuing")
    leaf = certs.issue(CertificateSpec(
        Profile.CODE_SIGNING, certs.name(ORG, "digest check"),
        keys.get(KeyAlgorithm.ED25519).public_key_pem, NOW, LEAF_END),
        Issuer(ca_signer, chain.ca))
    assert len(ca_signer.calls) == 1
    digest_alg, digest = ca_signer.calls[0]
    assert digest_alg is DigestAlgorithm.SHA256
    tbs = load(leaf).tbs_certificate_bytes
    assert tbs == leaf["tbs_certificate"].dump()
    assert digest == hashlib.sha256(tbs).digest()


def test_signature_by_another_key_does_not_verify(chain: Chain, keys: Keys) -> None:
    """Claiming the issuing CA as issuer but signing with some other key is detected."""
    impostor = signer(keys, KeyAlgorithm.ECDSA_P256, "impostor")
    forged = certs.issue(CertificateSpec(
        Profile.CODE_SIGNING, certs.name(ORG, "forged"), chain.leaf_key.public_key_pem,
        NOW, LEAF_END), Issuer(impostor, chain.ca))
    with pytest.raises(InvalidSignature):
        load(forged).verify_directly_issued_by(load(chain.ca))


# -- extensions ------------------------------------------------------------------------


def test_basic_constraints(chain: Chain) -> None:
    root = ext(load(chain.root), x509.BasicConstraints)
    assert root.critical
    assert root.value.ca is True
    assert root.value.path_length is None
    ca = ext(load(chain.ca), x509.BasicConstraints)
    assert ca.critical
    assert ca.value.ca is True
    assert ca.value.path_length == 0
    leaf = ext(load(chain.leaf), x509.BasicConstraints)
    assert leaf.critical
    assert leaf.value.ca is False
    assert leaf.value.path_length is None


USAGES = ["digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
          "key_agreement", "key_cert_sign", "crl_sign"]


def usages(cert: x509.Certificate) -> set[str]:
    ku = ext(cert, x509.KeyUsage)
    assert ku.critical
    return {u for u in USAGES if getattr(ku.value, u)}


def test_key_usage(chain: Chain) -> None:
    assert usages(load(chain.leaf)) == {"digital_signature"}
    assert usages(load(chain.root)) == {"key_cert_sign", "crl_sign"}
    assert usages(load(chain.ca)) == {"key_cert_sign", "crl_sign"}


def test_extended_key_usage(chain: Chain, keys: Keys) -> None:
    leaf = ext(load(chain.leaf), x509.ExtendedKeyUsage)
    assert list(leaf.value) == [ExtendedKeyUsageOID.CODE_SIGNING]
    assert not leaf.critical
    ca = ext(load(chain.ca), x509.ExtendedKeyUsage)
    assert list(ca.value) == [ExtendedKeyUsageOID.CODE_SIGNING]
    with pytest.raises(x509.ExtensionNotFound):
        ext(load(chain.root), x509.ExtendedKeyUsage)

    tsa = load(certs.issue(CertificateSpec(
        Profile.TIMESTAMPING, certs.name(ORG, "proj TSA", "proj"),
        keys.get(KeyAlgorithm.ECDSA_P256, "tsa").public_key_pem, NOW, LEAF_END),
        chain.ca_issuer))
    tsa.verify_directly_issued_by(load(chain.ca))
    eku = ext(tsa, x509.ExtendedKeyUsage)
    assert eku.critical  # RFC 3161 §2.3
    assert list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
    assert usages(tsa) == {"digital_signature"}
    assert ext(tsa, x509.BasicConstraints).value.ca is False


def test_key_identifiers_chain(chain: Chain) -> None:
    root, ca, leaf = load(chain.root), load(chain.ca), load(chain.leaf)
    for cert in (root, ca, leaf):
        ski = ext(cert, x509.SubjectKeyIdentifier)
        assert not ski.critical
        # RFC 5280 §4.2.1.2 method (1), as computed independently by cryptography.
        assert ski.value.digest == x509.SubjectKeyIdentifier.from_public_key(
            cert.public_key()).digest
    with pytest.raises(x509.ExtensionNotFound):
        ext(root, x509.AuthorityKeyIdentifier)
    ca_aki = ext(ca, x509.AuthorityKeyIdentifier)
    assert not ca_aki.critical
    assert ca_aki.value.key_identifier == ext(root, x509.SubjectKeyIdentifier).value.digest
    leaf_aki = ext(leaf, x509.AuthorityKeyIdentifier)
    assert leaf_aki.value.key_identifier == ext(ca, x509.SubjectKeyIdentifier).value.digest
    assert leaf_aki.value.key_identifier != ca_aki.value.key_identifier
    assert certs.key_identifier(certs.public_key_info(chain.leaf_key.public_key_pem)) == (
        ext(leaf, x509.SubjectKeyIdentifier).value.digest)


def test_crl_distribution_points(chain: Chain) -> None:
    points = ext(load(chain.leaf), x509.CRLDistributionPoints)
    assert not points.critical
    assert [p.full_name for p in points.value] == [
        [x509.UniformResourceIdentifier("https://signgate.example/crl/proj.crl")]]
    with pytest.raises(x509.ExtensionNotFound):
        ext(load(chain.root), x509.CRLDistributionPoints)


def test_names(chain: Chain) -> None:
    root, ca, leaf = load(chain.root), load(chain.ca), load(chain.leaf)
    assert root.issuer == root.subject
    assert ca.issuer == root.subject
    assert leaf.issuer == ca.subject
    assert leaf.subject.rfc4514_string() == f"CN=proj/app v1,OU=proj,O={ORG}"
    assert [a.oid for a in leaf.subject] == [NameOID.ORGANIZATION_NAME,
                                             NameOID.ORGANIZATIONAL_UNIT_NAME,
                                             NameOID.COMMON_NAME]
    assert root.subject.rfc4514_string() == f"CN=test root CA,O={ORG}"


def test_public_key_is_the_subjects(chain: Chain) -> None:
    assert cert_spki_der(load(chain.leaf)) == spki_der(chain.leaf_key.public_key_pem)
    assert cert_spki_der(load(chain.ca)) == spki_der(chain.ca_signer.key.public_key_pem)
    assert cert_spki_der(load(chain.root)) == spki_der(chain.root_signer.key.public_key_pem)


# -- serials ---------------------------------------------------------------------------


def test_serials_positive_and_distinct(chain: Chain) -> None:
    serials = [load(c).serial_number for c in (chain.root, chain.ca, chain.leaf)]
    assert all(s > 0 for s in serials)
    assert all(s.bit_length() <= 159 for s in serials)  # at most 20 octets, positive
    assert len(set(serials)) == 3
    many = [certs.new_serial() for _ in range(2000)]
    assert len(set(many)) == len(many)
    assert all(0 < s < 2**127 for s in many)


def test_explicit_serial_is_used(chain: Chain, keys: Keys) -> None:
    serial = 0x1234_5678_9ABC
    cert = certs.issue(CertificateSpec(
        Profile.CODE_SIGNING, certs.name(ORG, "serial"), chain.leaf_key.public_key_pem,
        NOW, LEAF_END, serial=serial), chain.ca_issuer)
    assert load(cert).serial_number == serial


# -- validity --------------------------------------------------------------------------


def test_validity_times(chain: Chain) -> None:
    leaf = load(chain.leaf)
    assert leaf.not_valid_before_utc == NOW
    assert leaf.not_valid_after_utc == LEAF_END
    assert load(chain.root).not_valid_after_utc == ROOT_END
    validity = asn1_x509.Certificate.load(chain.leaf.dump())["tbs_certificate"]["validity"]
    assert validity["not_before"].name == "utc_time"
    assert validity["not_after"].name == "utc_time"


def test_generalized_time_from_2050(keys: Keys) -> None:
    root_signer = signer(keys, KeyAlgorithm.ECDSA_P256, "root-2051")
    begin = datetime(2049, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
    end = datetime(2051, 3, 4, 5, 6, 7, 890_000, tzinfo=UTC)
    root = certs.issue(CertificateSpec(
        Profile.ROOT, certs.name(ORG, "long root"), root_signer.key.public_key_pem, begin, end),
        Issuer(root_signer))
    der = root.dump()
    validity = asn1_x509.Certificate.load(der)["tbs_certificate"]["validity"]
    assert validity["not_before"].name == "utc_time"
    assert validity["not_after"].name == "general_time"
    # DER tags: UTCTime 0x17 with YYMMDDHHMMSSZ, GeneralizedTime 0x18 with YYYYMMDDHHMMSSZ.
    assert b"\x17\x0d491231235959Z" in der
    assert b"\x18\x0f20510304050607Z" in der
    parsed = load(root)
    assert parsed.not_valid_before_utc == begin.replace(microsecond=0)
    assert parsed.not_valid_after_utc == end.replace(microsecond=0)
    parsed.verify_directly_issued_by(parsed)


def test_x509_time_boundary() -> None:
    last_utc = certs.x509_time(datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC))
    first_general = certs.x509_time(datetime(2050, 1, 1, tzinfo=UTC))
    assert last_utc.name == "utc_time"
    assert first_general.name == "general_time"
    assert first_general.native == datetime(2050, 1, 1, tzinfo=UTC)
    # Other time zones are converted to UTC first.
    plus2 = datetime(2050, 1, 1, 1, 30, tzinfo=UTC).astimezone(timezone(timedelta(hours=2)))
    assert certs.x509_time(plus2).native == datetime(2050, 1, 1, 1, 30, tzinfo=UTC)
    # 2049-12-31 23:30 at -01:00 is already 2050 in UTC.
    west = datetime(2050, 1, 1, 0, 30, tzinfo=UTC).astimezone(timezone(timedelta(hours=-1)))
    assert west.year == 2049
    assert certs.x509_time(west).name == "general_time"


# -- refusals --------------------------------------------------------------------------


def test_leaf_cannot_outlive_its_ca(chain: Chain) -> None:
    ca_end = load(chain.ca).not_valid_after_utc
    spec = CertificateSpec(Profile.CODE_SIGNING, certs.name(ORG, "too long"),
                           chain.leaf_key.public_key_pem, NOW, ca_end + timedelta(seconds=1))
    calls = len(chain.ca_signer.calls)
    with pytest.raises(InvalidInput, match="outlive"):
        certs.issue(spec, chain.ca_issuer)
    assert len(chain.ca_signer.calls) == calls  # nothing was signed
    # Ending together with the CA is fine.
    same = CertificateSpec(Profile.CODE_SIGNING, certs.name(ORG, "as long"),
                           chain.leaf_key.public_key_pem, NOW, ca_end)
    assert load(certs.issue(same, chain.ca_issuer)).not_valid_after_utc == ca_end
    # An issuing CA cannot outlive the root either.
    root_end = load(chain.root).not_valid_after_utc
    with pytest.raises(InvalidInput, match="outlive"):
        certs.issue(CertificateSpec(Profile.ISSUING, certs.name(ORG, "long CA"),
                                    chain.leaf_key.public_key_pem, NOW,
                                    root_end + timedelta(days=1)), chain.root_issuer)


@pytest.mark.parametrize("end_offset", [timedelta(0), timedelta(seconds=-1),
                                        timedelta(days=-30)], ids=["equal", "1s", "30d"])
def test_must_end_after_it_begins(chain: Chain, end_offset: timedelta) -> None:
    spec = CertificateSpec(Profile.CODE_SIGNING, certs.name(ORG, "backwards"),
                           chain.leaf_key.public_key_pem, NOW, NOW + end_offset)
    with pytest.raises(InvalidInput, match="end after it begins"):
        certs.issue(spec, chain.ca_issuer)
    root_spec = CertificateSpec(Profile.ROOT, certs.name(ORG, "backwards root"),
                                chain.root_signer.key.public_key_pem, NOW, NOW + end_offset)
    with pytest.raises(InvalidInput, match="end after it begins"):
        certs.issue(root_spec, Issuer(chain.root_signer))


@pytest.mark.parametrize("profile", [Profile.ISSUING, Profile.CODE_SIGNING,
                                     Profile.TIMESTAMPING])
def test_only_a_root_is_self_signed(chain: Chain, profile: Profile) -> None:
    spec = CertificateSpec(profile, certs.name(ORG, "no issuer"),
                           chain.ca_signer.key.public_key_pem, NOW, LEAF_END)
    calls = len(chain.ca_signer.calls)
    with pytest.raises(InvalidInput, match="only a root"):
        certs.issue(spec, Issuer(chain.ca_signer))
    assert len(chain.ca_signer.calls) == calls


def test_ed25519_cannot_be_a_ca_key(chain: Chain, keys: Keys) -> None:
    ed = signer(keys, KeyAlgorithm.ED25519, "ed-ca")
    with pytest.raises(InvalidInput, match="ed25519 keys cannot sign certificates"):
        certs.issue(CertificateSpec(Profile.ROOT, certs.name(ORG, "ed root"),
                                    ed.key.public_key_pem, NOW, ROOT_END), Issuer(ed))
    # Nor as the key of an issuing CA whose certificate exists.
    with pytest.raises(InvalidInput, match="ed25519"):
        certs.issue(CertificateSpec(Profile.CODE_SIGNING, certs.name(ORG, "leaf"),
                                    chain.leaf_key.public_key_pem, NOW, LEAF_END),
                    Issuer(ed, chain.ca))
    assert ed.calls == []


def test_rsa_ca_signer_with_pss_padding_is_refused(chain: Chain, keys: Keys) -> None:
    """Certificates are labelled sha256WithRSAEncryption (PKCS#1 v1.5): an RSA signer that
    would produce a PSS signature must not yield a certificate no verifier accepts."""
    pss = signer(keys, KeyAlgorithm.RSA_3072, "root")
    pss.rsa_padding = RsaPadding.PSS
    spec = CertificateSpec(Profile.ROOT, certs.name(ORG, "pss root"), pss.key.public_key_pem,
                           NOW, ROOT_END)
    with pytest.raises(InvalidInput, match=r"PKCS#1 v1\.5"):
        certs.issue(spec, Issuer(pss))
    assert pss.calls == []


# -- algorithms ------------------------------------------------------------------------


@pytest.mark.parametrize(("algorithm", "expected"), [
    (KeyAlgorithm.ECDSA_P256, ("sha256_ecdsa", DigestAlgorithm.SHA256)),
    (KeyAlgorithm.ECDSA_P384, ("sha384_ecdsa", DigestAlgorithm.SHA384)),
    (KeyAlgorithm.RSA_3072, ("sha256_rsa", DigestAlgorithm.SHA256)),
    (KeyAlgorithm.RSA_4096, ("sha256_rsa", DigestAlgorithm.SHA256)),
])
def test_signature_algorithm(algorithm: KeyAlgorithm,
                             expected: tuple[str, DigestAlgorithm]) -> None:
    assert certs.signature_algorithm(algorithm) == expected


def test_signature_algorithm_ed25519_refused() -> None:
    with pytest.raises(InvalidInput, match="ed25519 keys cannot sign certificates"):
        certs.signature_algorithm(KeyAlgorithm.ED25519)
    assert {a for a in KeyAlgorithm if a is not KeyAlgorithm.ED25519} == {
        KeyAlgorithm.ECDSA_P256, KeyAlgorithm.ECDSA_P384, KeyAlgorithm.RSA_3072,
        KeyAlgorithm.RSA_4096}  # every other algorithm is covered above


CA_CASES = {
    KeyAlgorithm.ECDSA_P256: (SignatureAlgorithmOID.ECDSA_WITH_SHA256, hashes.SHA256),
    KeyAlgorithm.ECDSA_P384: (SignatureAlgorithmOID.ECDSA_WITH_SHA384, hashes.SHA384),
    KeyAlgorithm.RSA_3072: (SignatureAlgorithmOID.RSA_WITH_SHA256, hashes.SHA256),
}


@pytest.mark.parametrize("ca_alg", list(CA_CASES), ids=str)
def test_ca_key_algorithms(keys: Keys, ca_alg: KeyAlgorithm) -> None:
    """Root and issuing CA with ``ca_alg`` keys: the chain verifies and says how."""
    c = build_chain(keys, ca_alg, ca_alg, KeyAlgorithm.ECDSA_P256)
    root, ca, leaf = load(c.root), load(c.ca), load(c.leaf)
    root.verify_directly_issued_by(root)
    ca.verify_directly_issued_by(root)
    leaf.verify_directly_issued_by(ca)
    oid, hash_type = CA_CASES[ca_alg]
    for cert in (root, ca, leaf):
        assert cert.signature_algorithm_oid == oid
        assert isinstance(cert.signature_hash_algorithm, hash_type)
    assert [alg for alg, _ in c.ca_signer.calls] == [certs.signature_algorithm(ca_alg)[1]]


@pytest.mark.parametrize("leaf_alg", list(KeyAlgorithm), ids=str)
def test_leaf_key_algorithms(keys: Keys, chain: Chain, leaf_alg: KeyAlgorithm) -> None:
    """Code-signing leaves for keys of every algorithm (Ed25519 and RSA-4096 included)."""
    key = keys.get(leaf_alg, "leaf")
    leaf = load(certs.issue(CertificateSpec(
        Profile.CODE_SIGNING, certs.name(ORG, f"proj/{leaf_alg.value} v1", "proj"),
        key.public_key_pem, NOW, LEAF_END), chain.ca_issuer))
    leaf.verify_directly_issued_by(load(chain.ca))
    assert cert_spki_der(leaf) == spki_der(key.public_key_pem)
    assert ext(leaf, x509.SubjectKeyIdentifier).value.digest == (
        x509.SubjectKeyIdentifier.from_public_key(leaf.public_key()).digest)
    assert usages(leaf) == {"digital_signature"}
    assert leaf.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA256


# -- encodings -------------------------------------------------------------------------


def test_pem_der_and_fingerprint(chain: Chain) -> None:
    der = chain.leaf.dump()
    pem = certs.to_pem(chain.leaf)
    assert pem.startswith("-----BEGIN CERTIFICATE-----\n")
    assert pem.endswith("-----END CERTIFICATE-----\n")
    assert certs.to_pem(der) == pem
    parsed = x509.load_pem_x509_certificate(pem.encode())
    assert parsed.public_bytes(serialization.Encoding.DER) == der
    assert certs.load_der(der).dump() == der
    assert certs.fingerprint(der) == parsed.fingerprint(hashes.SHA256()).hex()
