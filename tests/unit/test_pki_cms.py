"""Every builder on top of ``pki/cms.py`` (certificate, CRL, TSA token, detached CMS,
Authenticode, JAR block) signs at a clock time in 2049 and after 2050, through the one
:class:`DigestSigner` protocol over the software key store. Each result carries the time
type RFC 5280 §4.1.2.5 / RFC 5652 §11.3 demand (UTCTime through 2049, GeneralizedTime
from 2050) and is verified by the ecosystem's own tool: openssl, osslsigncode, jarsigner.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import cms, core, crl, tsp, x509

from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm, RsaPadding
from signgate.formats import authenticode, jar
from signgate.formats import cms as cms_format
from signgate.formats.base import Builder, Chain, FormatRequest, PublicKeyInfo, SignerKey
from signgate.keystore.base import GeneratedKey, KeyRef
from signgate.keystore.blobs import InMemoryBlobs
from signgate.keystore.soft import SoftwareKeyStore
from signgate.pki import certs
from signgate.pki import cms as pki_cms
from signgate.pki import crl as crl_builder
from signgate.pki import tsa as rfc3161
from tests.support.pe import hello_exe

# Certificates valid from before today to after 2050, so that the verifiers, which check
# them at today's date, accept what was signed at a clock time in the future.
NOT_BEFORE = datetime(2020, 1, 1, tzinfo=UTC)
NOT_AFTER = datetime(2075, 1, 1, tzinfo=UTC)
PASS = "changeit"


@dataclass
class StoreSigner:
    """The one signer protocol over a key of the software key store."""

    store: SoftwareKeyStore
    key: GeneratedKey
    algorithm: KeyAlgorithm
    rsa_padding: RsaPadding = RsaPadding.PKCS1V15

    def sign_digest(self, digest_algorithm: DigestAlgorithm, digest: bytes) -> bytes:
        ref = KeyRef(self.key.uri, self.algorithm, self.rsa_padding)
        return self.store.sign(ref, digest_algorithm, digest)


@dataclass(frozen=True)
class Pki:
    ca: StoreSigner
    leaf: StoreSigner
    root: x509.Certificate
    issuing: x509.Certificate
    code_signing: x509.Certificate
    tsa: x509.Certificate
    root_pem: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    store = SoftwareKeyStore(os.urandom(32), InMemoryBlobs())
    ca = StoreSigner(store, store.generate(KeyAlgorithm.ECDSA_P384), KeyAlgorithm.ECDSA_P384)
    leaf = StoreSigner(store, store.generate(KeyAlgorithm.ECDSA_P256), KeyAlgorithm.ECDSA_P256)

    def issue(profile: certs.Profile, cn: str, pem: str,
              issuer: x509.Certificate | None) -> x509.Certificate:
        spec = certs.CertificateSpec(profile, certs.name("Example", cn), pem, NOT_BEFORE,
                                     NOT_AFTER)
        return certs.issue(spec, certs.Issuer(ca, issuer))

    root = issue(certs.Profile.ROOT, "root", ca.key.public_key_pem, None)
    issuing = issue(certs.Profile.ISSUING, "issuing", ca.key.public_key_pem, root)
    code_signing = issue(certs.Profile.CODE_SIGNING, "acme/release v1",
                         leaf.key.public_key_pem, issuing)
    tsa = issue(certs.Profile.TIMESTAMPING, "tsa", leaf.key.public_key_pem, root)
    root_pem = tmp_path_factory.mktemp("pki") / "root.pem"
    root_pem.write_text(certs.to_pem(root))
    return Pki(ca, leaf, root, issuing, code_signing, tsa, root_pem)


@pytest.fixture(params=[datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC),
                        datetime(2061, 3, 1, 12, 30, 5, 250_000, tzinfo=UTC)],
                ids=["2049", "2061"])
def now(request: pytest.FixtureRequest) -> datetime:
    value: datetime = request.param
    return value


def expected(now: datetime) -> tuple[str, str]:
    """The x509.Time and cms.Time alternatives ``now`` must be encoded as."""
    return ("utc_time", "utc_time") if now.year < 2050 else ("general_time",
                                                             "generalized_time")


def run(*args: str, cwd: Path | None = None, stdin: bytes | None = None) -> str:
    out = subprocess.run(list(args), capture_output=True, input=stdin, cwd=cwd,
                         timeout=120, check=False)
    return (out.stdout + out.stderr).decode(errors="replace")


def signing_time(signer_info: cms.SignerInfo) -> cms.Time:
    times = [a["values"][0] for a in signer_info["signed_attrs"]
             if a["type"].native == "signing_time"]
    assert len(times) == 1
    time: cms.Time = times[0]
    return time


# --- the time encoder -------------------------------------------------------------------------

def test_one_encoder_for_x509_and_cms_times() -> None:
    last = datetime(2049, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
    first = datetime(2050, 1, 1, tzinfo=UTC)
    assert pki_cms.x509_time(last).name == "utc_time"
    assert pki_cms.cms_time(last).name == "utc_time"
    assert pki_cms.x509_time(first).name == "general_time"
    assert pki_cms.cms_time(first).name == "generalized_time"
    # DER: GeneralizedTime (0x18) with whole seconds and "Z" (RFC 5280 §4.1.2.5.2)
    assert pki_cms.cms_time(first).dump() == b"\x18\x0f20500101000000Z"
    assert pki_cms.cms_time(last).dump() == b"\x17\x0d491231235959Z"


# --- X.509 ------------------------------------------------------------------------------------

def test_certificate_after_2050_verifies(pki: Pki, tmp_path: Path) -> None:
    validity = x509.Certificate.load(pki.code_signing.dump())["tbs_certificate"]["validity"]
    assert validity["not_before"].name == "utc_time"
    assert validity["not_after"].name == "general_time"
    assert validity["not_after"].native == NOT_AFTER
    leaf, chain = tmp_path / "leaf.pem", tmp_path / "chain.pem"
    leaf.write_text(certs.to_pem(pki.code_signing))
    chain.write_text(certs.to_pem(pki.issuing))
    printed = run("openssl", "verify", "-CAfile", str(pki.root_pem), "-untrusted", str(chain),
                  "-purpose", "any", "-attime", str(int(datetime(2061, 1, 1,
                                                                 tzinfo=UTC).timestamp())),
                  str(leaf))
    assert f"{leaf}: OK" in printed, printed


def test_crl(pki: Pki, now: datetime, tmp_path: Path) -> None:
    issuer = certs.Issuer(pki.ca, pki.root)
    built = crl_builder.build(issuer, [crl_builder.Revoked(7, now, invalidity_date=now)], 3,
                              now, now + timedelta(days=7))
    loaded = crl.CertificateList.load(built.dump())
    x509_choice, _ = expected(now)
    tbs = loaded["tbs_cert_list"]
    assert tbs["this_update"].name == x509_choice
    assert tbs["next_update"].name == "general_time"  # 2050-01-07 or later
    assert tbs["revoked_certificates"][0]["revocation_date"].name == x509_choice
    assert tbs["this_update"].native == now.replace(microsecond=0)
    der = tmp_path / "root.crl"
    der.write_bytes(built.dump())
    printed = run("openssl", "crl", "-inform", "DER", "-in", str(der), "-CAfile",
                  str(pki.root_pem), "-noout")
    assert "verify OK" in printed, printed


# --- RFC 3161 ---------------------------------------------------------------------------------

def test_tsa_token(pki: Pki, now: datetime, tmp_path: Path) -> None:
    imprint = hashlib.sha256(b"artifact").digest()
    query = tsp.TimeStampReq({"version": "v1", "message_imprint": {
        "hash_algorithm": {"algorithm": "sha256"}, "hashed_message": imprint},
        "nonce": 12345, "cert_req": True})
    authority = rfc3161.Authority(pki.leaf, pki.tsa, "1.3.6.1.4.1.4146.2.3")
    issued = rfc3161.grant(rfc3161.parse_request(query.dump()), authority, now)
    assert issued.gen_time == now.replace(microsecond=0)
    token = tsp.TimeStampResp.load(issued.der)["time_stamp_token"]
    signed = token["content"]
    assert signed["version"].native == "v3"
    assert signed["encap_content_info"]["content"].parsed["gen_time"].native == issued.gen_time
    _, cms_choice = expected(now)
    assert signing_time(signed["signer_infos"][0]).name == cms_choice
    tsr = tmp_path / "reply.tsr"
    tsr.write_bytes(issued.der)
    printed = run("openssl", "ts", "-verify", "-digest", imprint.hex(), "-in", str(tsr),
                  "-CAfile", str(pki.root_pem))
    assert "Verification: OK" in printed, printed


# --- formats ----------------------------------------------------------------------------------

def build(builder: Builder, pki: Pki, digest: bytes, name: str, now: datetime,
          chain: Chain) -> bytes:
    """What the signing batch does: prepare, sign through the key store, assemble."""
    key = SignerKey("acme/release", 1, KeyAlgorithm.ECDSA_P256, RsaPadding.PKCS1V15,
                    pki.leaf.key.public_key_pem, now)
    request = FormatRequest(DigestAlgorithm.SHA256, digest, name, now)
    builder.check(key, request)
    tbs = builder.prepare(key, request)
    signature = pki.leaf.sign_digest(DigestAlgorithm.SHA256,
                                     hashlib.sha256(tbs.message).digest())
    return builder.assemble(key, request, tbs, signature, chain, None)


def check_signed_data(der: bytes, now: datetime, version: str) -> None:
    signed = cms.ContentInfo.load(der)["content"]
    assert signed["version"].native == version
    _, cms_choice = expected(now)
    when = signing_time(signed["signer_infos"][0])
    assert when.name == cms_choice
    assert when.native == now.replace(microsecond=0)


def test_cms_detached(pki: Pki, now: datetime, tmp_path: Path) -> None:
    content = tmp_path / "artifact.bin"
    content.write_bytes(b"signed after 2050\n" * 100)
    p7s = tmp_path / "artifact.bin.p7s"
    p7s.write_bytes(build(cms_format.BUILDER, pki, hashlib.sha256(content.read_bytes())
                          .digest(), content.name, now,
                          Chain(pki.code_signing.dump(), (pki.issuing.dump(),))))
    check_signed_data(p7s.read_bytes(), now, "v1")
    printed = run("openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(p7s),
                  "-content", str(content), "-CAfile", str(pki.root_pem), "-purpose", "any",
                  "-out", "/dev/null")
    assert "Verification successful" in printed, printed


def test_authenticode(pki: Pki, now: datetime, tmp_path: Path) -> None:
    exe = hello_exe(tmp_path / "hello.exe")
    prepared = authenticode.CLIENT.prepare(exe, DigestAlgorithm.SHA256, None,
                                           lambda: pytest.fail("no key lookup needed"))
    result = build(authenticode.BUILDER, pki, prepared.digest, exe.name, now,
                   Chain(pki.code_signing.dump(), (pki.issuing.dump(),)))
    check_signed_data(result, now, "v1")
    signed = tmp_path / "signed.exe"
    authenticode.CLIENT.finish(exe, prepared, result, signed)
    printed = run("osslsigncode", "verify", "-in", str(signed), "-CAfile", str(pki.root_pem))
    assert "Signature verification: ok" in printed, printed
    assert "Succeeded" in printed, printed  # osslsigncode exits 0 on some failures


def test_jar_block(pki: Pki, now: datetime, tmp_path: Path) -> None:
    source = tmp_path / "app.jar"
    with zipfile.ZipFile(source, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\n\r\n")
        z.writestr("res.txt", "signed after 2050\n")
    prepared = jar.CLIENT.prepare(source, DigestAlgorithm.SHA256, None, lambda: PublicKeyInfo(
        "acme/release", 1, KeyAlgorithm.ECDSA_P256, None, pki.leaf.key.public_key_pem, now))
    block = build(jar.BUILDER, pki, prepared.digest, source.name, now,
                  Chain(pki.code_signing.dump(), (pki.issuing.dump(),), pki.root.dump()))
    check_signed_data(block, now, "v1")
    signed = tmp_path / "signed.jar"
    jar.CLIENT.finish(source, prepared, block, signed)
    run("keytool", "-importcert", "-alias", "root", "-file", str(pki.root_pem), "-keystore",
        "trust.p12", "-storetype", "PKCS12", "-storepass", PASS, "-noprompt", cwd=tmp_path)
    # -strict: any warning (an untrusted chain, a bad EKU) is an error exit.
    out = subprocess.run(["jarsigner", "-verify", "-strict", "-keystore", "trust.p12",
                          "-storepass", PASS, str(signed)], capture_output=True, text=True,
                         cwd=tmp_path, timeout=120, check=False)
    assert out.returncode == 0, out
    assert "jar verified." in out.stdout, out


def test_signed_data_for_another_content_type_is_v3(pki: Pki) -> None:
    """RFC 5652 §5.1: the version follows the encapsulated content type unless given."""
    content = cms.EncapsulatedContentInfo({"content_type": "tst_info",
                                           "content": core.ParsableOctetString(b"\x30\x00")})
    attributes = pki_cms.signed_attributes("tst_info", b"\0" * 32, NOT_BEFORE)
    info = pki_cms.signer_info(pki.root.issuer, pki.root.serial_number,
                               DigestAlgorithm.SHA256, attributes,
                               pki_cms.signer_info_algorithm(pki.ca, DigestAlgorithm.SHA256),
                               pki_cms.sign_attributes(pki.ca, DigestAlgorithm.SHA256,
                                                       attributes))
    assert pki_cms.signed_data([info], DigestAlgorithm.SHA256, (), content)[
        "content"]["version"].native == "v3"
    assert pki_cms.signed_data([info], DigestAlgorithm.SHA256)[
        "content"]["version"].native == "v1"
