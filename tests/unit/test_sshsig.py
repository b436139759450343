"""The SSHSIG encoding (formats/sshsig.py) against OpenSSH itself: signatures made by
``ssh-keygen -Y sign`` parse and verify here, and signatures this module assembles (from
the builder, signed by cryptography as a key store would) verify with ``ssh-keygen -Y
verify``; tampered ones fail on both sides."""

from __future__ import annotations

import hashlib
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm, RsaPadding
from signgate.errors import InvalidInput, VerificationFailed
from signgate.formats import sshsig
from signgate.formats.base import FormatRequest, SignerKey

MESSAGE = b"signgate ssh signatures\n" * 100
SSH_TYPES = {"ed25519": ["-t", "ed25519"], "ecdsa-p256": ["-t", "ecdsa", "-b", "256"],
             "ecdsa-p384": ["-t", "ecdsa", "-b", "384"], "rsa-3072": ["-t", "rsa", "-b", "3072"]}


def ssh_keygen(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ssh-keygen", *args], input=stdin.decode() if stdin else None,
                          capture_output=True, text=True, timeout=60)


def allowed_signers(tmp: Path, public_line: str) -> Path:
    path = tmp / "allowed_signers"
    path.write_text(f"signer@example {public_line}\n")
    return path


def ssh_verify(tmp: Path, public_line: str, signature: Path, message: bytes,
               namespace: str = "file") -> subprocess.CompletedProcess[str]:
    return ssh_keygen("-Y", "verify", "-f", str(allowed_signers(tmp, public_line)),
                      "-I", "signer@example", "-n", namespace, "-s", str(signature),
                      stdin=message)


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa-p256", "ecdsa-p384"])
def test_ssh_keygen_signatures_parse_and_verify(tmp_path: Path, kind: str) -> None:
    key = tmp_path / "id"
    ssh_keygen(*SSH_TYPES[kind], "-N", "", "-q", "-f", str(key)).check_returncode()
    data = tmp_path / "data.txt"
    data.write_bytes(MESSAGE)
    ssh_keygen("-Y", "sign", "-f", str(key), "-n", "file", str(data)).check_returncode()
    parsed = sshsig.read(tmp_path / "data.txt.sig")
    line = sshsig.parse_openssh_line((tmp_path / "id.pub").read_text())
    assert parsed.public_blob == line.blob
    assert (parsed.namespace, parsed.hash_algorithm) == ("file", "sha512")
    digest = hashlib.sha512(MESSAGE).digest()
    assert sshsig.verify(parsed, digest)
    assert sshsig.verify(parsed, digest, namespace="file")
    assert not sshsig.verify(parsed, digest, namespace="git")
    assert not sshsig.verify(parsed, hashlib.sha512(MESSAGE + b"x").digest())


def _private(kind: str) -> ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | \
        rsa.RSAPrivateKey:
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ecdsa-p384":
        return ec.generate_private_key(ec.SECP384R1())
    return rsa.generate_private_key(65537, 3072)


def _sign_as_keystore(private: object, algorithm: KeyAlgorithm, tbs: bytes,
                      hash_: DigestAlgorithm | None) -> bytes:
    """What the key stores do with a ToBeSigned that is not prehashed (see
    service/pipeline/strategies.py): Ed25519 signs the data, the others its hash."""
    if isinstance(private, ed25519.Ed25519PrivateKey):
        return private.sign(tbs)
    assert hash_ is not None
    if isinstance(private, ec.EllipticCurvePrivateKey):
        return private.sign(tbs, ec.ECDSA(hash_.hash_algorithm()))
    assert isinstance(private, rsa.RSAPrivateKey)
    return private.sign(tbs, padding.PKCS1v15(), hash_.hash_algorithm())


@pytest.mark.parametrize(("kind", "digest"), [("ed25519", "sha512"), ("ecdsa-p256", "sha512"),
                                              ("ecdsa-p384", "sha256"), ("rsa-3072", "sha512")])
def test_built_signatures_verify_with_ssh_keygen(tmp_path: Path, kind: str,
                                                 digest: str) -> None:
    private = _private(kind)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    algorithm = KeyAlgorithm(kind)
    signer = SignerKey("p/k", 1, algorithm, RsaPadding.PKCS1V15, public_pem,
                       datetime.now(UTC))
    alg = DigestAlgorithm(digest)
    request = FormatRequest(alg, hashlib.new(digest, MESSAGE).digest(), "data.txt",
                            datetime.now(UTC), {"namespace": "file"})
    builder = sshsig.BUILDER
    builder.check(signer, request)
    tbs = builder.prepare(signer, request)
    value = _sign_as_keystore(private, algorithm, tbs.message, tbs.hash_algorithm)
    armored = builder.assemble(signer, request, tbs, value, None, None)
    sig = tmp_path / "data.txt.sig"
    sig.write_bytes(armored)
    line = sshsig.openssh_line(public_pem, "p/k")
    assert line.endswith(" signgate:p/k")
    good = ssh_verify(tmp_path, line, sig, MESSAGE)
    assert good.returncode == 0, good.stderr
    assert 'Good "file" signature for signer@example' in good.stdout + good.stderr
    bad = ssh_verify(tmp_path, line, sig, MESSAGE + b"tampered")
    assert bad.returncode != 0
    assert "Good" not in bad.stdout + bad.stderr
    wrong_ns = ssh_verify(tmp_path, line, sig, MESSAGE, namespace="git")
    assert wrong_ns.returncode != 0
    # and our own reader agrees
    parsed = sshsig.read(sig)
    assert sshsig.verify(parsed, hashlib.new(digest, MESSAGE).digest(), "file")
    assert sshsig.keystore_value(parsed) == value
    # ssh-keygen reads the public key line we print, and fingerprints it as we do
    pub = tmp_path / "k.pub"
    pub.write_text(line + "\n")
    assert sshsig.fingerprint(parsed.public_blob) in ssh_keygen("-l", "-f", str(pub)).stdout


def test_refusals() -> None:
    pem = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    now = datetime.now(UTC)
    ed = SignerKey("p/k", 1, KeyAlgorithm.ED25519, RsaPadding.PSS, pem, now)
    with pytest.raises(InvalidInput, match="needs a namespace"):
        sshsig.BUILDER.check(ed, FormatRequest(DigestAlgorithm.SHA512, b"\0" * 64, "f", now))
    with pytest.raises(InvalidInput, match="sha256 or sha512"):
        sshsig.BUILDER.check(ed, FormatRequest(DigestAlgorithm.SHA384, b"\0" * 48, "f", now,
                                               {"namespace": "file"}))
    pss = SignerKey("p/r", 1, KeyAlgorithm.RSA_3072, RsaPadding.PSS, pem, now)
    with pytest.raises(InvalidInput, match="PSS"):
        sshsig.BUILDER.check(pss, FormatRequest(DigestAlgorithm.SHA512, b"\0" * 64, "f", now,
                                                {"namespace": "file"}))
    with pytest.raises(VerificationFailed, match="not an SSH signature"):
        sshsig.dearmor(b"-----BEGIN PGP SIGNATURE-----\n")
    with pytest.raises(VerificationFailed, match="truncated"):
        sshsig.parse(b"SSHSIG\0\0\0\x01\0\0\0\x09abc")
    with pytest.raises(VerificationFailed, match="version 2"):
        sshsig.parse(b"SSHSIG\0\0\0\x02")
    with pytest.raises(InvalidInput, match="OpenSSH public key"):
        sshsig.parse_openssh_line("not a key")


def test_mpint_encoding() -> None:
    """RFC 4251 §5's own examples."""
    assert sshsig.ssh_mpint(0) == b"\0\0\0\0"
    assert sshsig.ssh_mpint(0x9a378f9b2e332a7) == bytes.fromhex("0000000809a378f9b2e332a7")
    assert sshsig.ssh_mpint(0x80) == bytes.fromhex("000000020080")


def test_ssh_keygen_sha256_signature(tmp_path: Path) -> None:
    key = tmp_path / "id"
    ssh_keygen("-t", "ed25519", "-N", "", "-q", "-f", str(key)).check_returncode()
    data = tmp_path / "d"
    data.write_bytes(MESSAGE)
    ssh_keygen("-Y", "sign", "-f", str(key), "-n", "ns", "-O", "hashalg=sha256",
               str(data)).check_returncode()
    parsed = sshsig.read(tmp_path / "d.sig")
    assert sshsig.message_hash(parsed) is DigestAlgorithm.SHA256
    assert sshsig.verify(parsed, hashlib.sha256(MESSAGE).digest(), "ns")


def test_ssh_keygen_shim_arguments() -> None:
    """signgate-ssh-keygen takes git's -Y sign line; anything else is ssh-keygen's."""
    from signgate.cli import ssh_keygen as shim

    git_line = ["-Y", "sign", "-n", "git", "-f", "/k.pub", "-U", "/tmp/buf"]
    assert shim._sign_args(git_line) == ({"-Y": "sign", "-n": "git", "-f": "/k.pub",
                                          "-U": ""}, [], ["/tmp/buf"])
    assert shim._sign_args(["-Y", "sign", "-O", "hashalg=sha256", "-f", "k", "-n", "x"]) == (
        {"-Y": "sign", "-f": "k", "-n": "x"}, ["hashalg=sha256"], [])
    for other in (["-Y", "verify", "-f", "a", "-I", "p", "-n", "git", "-s", "s"],
                  ["-Y", "find-principals", "-f", "a", "-s", "s"], ["-l", "-f", "k.pub"],
                  ["--bogus"], []):
        assert shim._sign_args(other) is None, other
    with pytest.raises(InvalidInput, match="takes no -N"):
        shim._sign_args(["-Y", "sign", "-N", "pass", "-f", "k", "-n", "x", "f"])
    assert shim._digest(["hashalg=sha256"]) == "sha256"
    assert shim._digest([]) == "sha512"
    with pytest.raises(InvalidInput, match="hashalg=sha512 or"):
        shim._digest(["print-pubkey"])


def test_ssh_keygen_shim_help(capsys: pytest.CaptureFixture[str]) -> None:
    from signgate.cli import ssh_keygen as shim

    shim.main(["--help"])
    out = capsys.readouterr().out
    assert "gpg.ssh.program" in out
    assert "runs the real\nssh-keygen" in out
