"""The JAR format without a server: manifest and .SF text (72-byte lines, sections and the
exact bytes their digests cover), a local sign-and-verify round trip through the real
client, builder and verifier halves, and the bad archives the client must refuse without
touching the input."""

from __future__ import annotations

import base64
import hashlib
import os
import struct
import sys
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm, RsaPadding
from signgate.errors import InvalidInput, PayloadTooLarge, Unavailable, VerificationFailed
from signgate.formats import jar
from signgate.formats import manifest as mf
from signgate.formats.base import Chain, FormatRequest, PublicKeyInfo, SignerKey

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
KEY = ec.generate_private_key(ec.SECP256R1())
PEM = KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                    serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _certificate() -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "acme/release v1")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(KEY.public_key()).serial_number(7)
            .not_valid_before(NOW - timedelta(days=1)).not_valid_after(NOW + timedelta(days=9))
            .sign(KEY, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


CERT = _certificate()


def key_info(ref: str = "acme/release", algorithm: KeyAlgorithm = KeyAlgorithm.ECDSA_P256
             ) -> PublicKeyInfo:
    return PublicKeyInfo(ref, 1, algorithm, None, PEM, NOW)


def sign_locally(path: Path, out: Path, digest: DigestAlgorithm = DigestAlgorithm.SHA256,
                 ref: str = "acme/release") -> None:
    """The CLI's path with the server replaced by the builder and a local key."""
    prepared = jar.CLIENT.prepare(path, digest, None, lambda: key_info(ref))
    signer = SignerKey(ref, 1, KeyAlgorithm.ECDSA_P256, RsaPadding.PSS, PEM, NOW)
    request = FormatRequest(digest, prepared.digest, path.name, NOW)
    jar.BUILDER.check(signer, request)
    tbs = jar.BUILDER.prepare(signer, request)
    signature = KEY.sign(tbs.message, ec.ECDSA(digest.hash_algorithm()))
    block = jar.BUILDER.assemble(signer, request, tbs, signature, Chain(CERT, ()), None)
    jar.CLIENT.finish(path, prepared, block, out)


def make_jar(path: Path, entries: dict[str, bytes], manifest: bytes | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        if manifest is not None:
            z.writestr("META-INF/MANIFEST.MF", manifest)
        for name, data in entries.items():
            z.writestr(name, data)
    return path


ENTRIES = {"com/example/Main.class": b"\xca\xfe\xba\xbe" + bytes(range(256)) * 20,
           "com/example/": b"",
           "data/blob.bin": hashlib.sha512(b"x").digest() * 1000,
           "META-INF/services/x.Provider": b"com.example.Impl\n"}


# --- manifest text -------------------------------------------------------------------------

def test_long_lines_wrap_at_72_bytes_with_space_continuations() -> None:
    line = ("Name: " + "a" * 150).encode()
    out = mf.wrap(line)
    lines = out.split(b"\r\n")[:-1]
    assert [len(x) for x in lines] == [72, 72, 14]
    assert all(x.startswith(b" ") for x in lines[1:])
    assert b"".join([lines[0], *(x[1:] for x in lines[1:])]) == line


def test_wrapping_never_splits_a_utf8_character() -> None:
    line = ("Name: " + "é" * 80).encode()  # 2-byte characters straddle byte 72
    for part in mf.wrap(line).split(b"\r\n")[:-1]:
        assert len(part) <= 72
        part.lstrip(b" ").decode("utf-8")  # each line is whole characters


def test_parse_keeps_sections_bytes_and_line_ending() -> None:
    data = (b"Manifest-Version: 1.0\nCreated-By: test\n\n"
            b"Name: a/very/long/" + b"x" * 60 + b"\n y.class\nSHA-256-Digest: AAAA\n\n")
    parsed = mf.parse(data)
    assert parsed.newline == b"\n"
    assert parsed.encode() == data  # nothing changed: byte for byte
    assert [s.name for s in parsed.named()] == ["a/very/long/" + "x" * 60 + "y.class"]


def test_update_leaves_valid_sections_alone_and_fixes_stale_ones() -> None:
    good = hashlib.sha256(b"good").digest()
    existing = (b"Manifest-Version: 1.0\r\n\r\n"
                b"Name: keep\r\nSHA-256-Digest: " + base64.b64encode(good) + b"\r\n\r\n"
                b"Name: stale\r\nSHA1-Digest: AAAA\r\nX-Custom: yes\r\n\r\n"
                b"Name: pkg/\r\nSealed: true\r\n\r\n")
    manifest = mf.update(mf.parse(existing), {
        "keep": {"sha256": good, "sha384": hashlib.sha384(b"good").digest()},
        "stale": {"sha1": hashlib.sha1(b"new").digest(),  # noqa: S324
                  "sha384": hashlib.sha384(b"new").digest()},
        "new": {"sha384": hashlib.sha384(b"n").digest()},
    }, "sha384")
    out = manifest.encode()
    assert out.startswith(existing[:existing.index(b"Name: stale")])  # untouched bytes
    stale = manifest.entry("stale")
    assert stale is not None
    assert stale.attributes == [("Name", "stale"), ("X-Custom", "yes"),
                                ("SHA-384-Digest", mf.b64(hashlib.sha384(b"new").digest()))]
    assert b"Name: pkg/\r\nSealed: true\r\n\r\n" in out  # a package section survives
    new = b"SHA-384-Digest: " + base64.b64encode(hashlib.sha384(b"n").digest())
    # a 72-byte line and its continuation
    assert out.endswith(b"Name: new\r\n" + mf.wrap(new) + b"\r\n")
    assert mf.parse(out).named()[-1].attributes[-1][1] == mf.b64(hashlib.sha384(b"n").digest())


def test_signature_file_digests_the_exact_section_bytes() -> None:
    manifest = mf.update(mf.existing_manifest(None, "t"),
                         {"a": {"sha256": b"\1" * 32}, "b": {"sha256": b"\2" * 32}}, "sha256")
    data = manifest.encode()
    sf = mf.parse(mf.signature_file(manifest, "sha256", "t"), "SF")
    main_end = data.index(b"\r\n\r\n") + 4  # the main section and its blank line
    b_start = data.index(b"Name: b")

    def digest(chunk: bytes) -> str:
        return base64.b64encode(hashlib.sha256(chunk).digest()).decode()

    assert sf.main.get("SHA-256-Digest-Manifest") == digest(data)
    assert sf.main.get("SHA-256-Digest-Manifest-Main-Attributes") == digest(data[:main_end])
    a, b = sf.named()
    assert a.get("SHA-256-Digest") == digest(data[main_end:b_start])
    assert b.get("SHA-256-Digest") == digest(data[b_start:])


@pytest.mark.parametrize(("ref", "name"), [("acme/release", "RELEASE"),
                                           ("acme/build-server.2024", "BUILD-SE"),
                                           ("p/a.b c", "A_B_C"), ("p/k_1", "K_1")])
def test_signer_name_follows_jarsigner(ref: str, name: str) -> None:
    assert jar.signer_name(ref) == name


# --- round trip ----------------------------------------------------------------------------

def test_sign_and_verify_round_trip(tmp_path: Path) -> None:
    source = make_jar(tmp_path / "app.jar", ENTRIES,
                      b"Manifest-Version: 1.0\r\nMain-Class: com.example.Main\r\n\r\n")
    out = tmp_path / "signed.jar"
    sign_locally(source, out)
    with zipfile.ZipFile(out) as z:
        names = z.namelist()
        assert names[:3] == ["META-INF/MANIFEST.MF", "META-INF/RELEASE.SF",
                             "META-INF/RELEASE.EC"]
        assert z.read("META-INF/MANIFEST.MF").startswith(
            b"Manifest-Version: 1.0\r\nMain-Class: com.example.Main\r\n\r\n")
        assert z.testzip() is None
        for name, data in ENTRIES.items():
            assert z.read(name) == data
    with zipfile.ZipFile(source) as a, zipfile.ZipFile(out) as b:
        for name in ENTRIES:  # copied as compressed, not inflated and deflated again
            assert a.getinfo(name).compress_size == b.getinfo(name).compress_size
    evidence = jar.VERIFIER.verify(out, None, ())
    assert evidence.signer == CERT
    assert evidence.details["signers"] == "RELEASE"
    assert evidence.details["entries"] == "3"


def test_resigning_replaces_the_signers_files(tmp_path: Path) -> None:
    source = make_jar(tmp_path / "app.jar", ENTRIES)
    sign_locally(source, source)
    sign_locally(source, source, DigestAlgorithm.SHA512)
    sign_locally(source, source, ref="acme/other")
    with zipfile.ZipFile(source) as z:
        meta = sorted(n for n in z.namelist() if n.startswith("META-INF/") and "/" not in
                      n[9:])
    assert meta == ["META-INF/MANIFEST.MF", "META-INF/OTHER.EC",
                    "META-INF/OTHER.SF", "META-INF/RELEASE.EC", "META-INF/RELEASE.SF"]
    assert jar.VERIFIER.verify(source, None, ()).details["signers"] == "OTHER, RELEASE"


def rewrite(src: Path, dst: Path, change: dict[str, bytes]) -> None:
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as b:
        for info in a.infolist():
            b.writestr(info, change.pop(info.filename, a.read(info)))
        for name, data in change.items():
            b.writestr(name, data)


def test_verifier_rejects_tampering(tmp_path: Path) -> None:
    signed = tmp_path / "signed.jar"
    sign_locally(make_jar(tmp_path / "app.jar", ENTRIES), signed)
    cases = {
        "modified.jar": ({"data/blob.bin": b"evil"}, "modified after signing"),
        "added.jar": ({"com/example/Evil.class": b"evil"}, "is not signed"),
        "manifest.jar": ({"META-INF/MANIFEST.MF": b"Manifest-Version: 1.0\r\n\r\n"},
                         "does not match the manifest"),
    }
    for name, (change, message) in cases.items():
        rewrite(signed, tmp_path / name, dict(change))
        with pytest.raises(VerificationFailed, match=message):
            jar.VERIFIER.verify(tmp_path / name, None, ())
    with pytest.raises(VerificationFailed, match="not signed"):
        jar.VERIFIER.verify(make_jar(tmp_path / "plain.jar", ENTRIES), None, ())


def test_ed25519_keys_are_refused(tmp_path: Path) -> None:
    source = make_jar(tmp_path / "app.jar", ENTRIES)
    with pytest.raises(InvalidInput, match="ed25519"):
        jar.CLIENT.prepare(source, DigestAlgorithm.SHA256, None,
                           lambda: key_info(algorithm=KeyAlgorithm.ED25519))
    signer = SignerKey("p/k", 1, KeyAlgorithm.ED25519, RsaPadding.PSS, PEM, NOW)
    with pytest.raises(InvalidInput, match="ed25519"):
        jar.BUILDER.check(signer, FormatRequest(DigestAlgorithm.SHA256, b"\0" * 32, "a", NOW))


# --- bad archives --------------------------------------------------------------------------

def duplicate_names(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("a.class", b"one")
        with pytest.warns(UserWarning, match="Duplicate name"):
            z.writestr("a.class", b"two")


def bomb(path: Path) -> None:
    chunk = bytes(1 << 20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z, z.open("zeros.bin", "w") as f:
        for _ in range(64):
            f.write(chunk)


def lying_sizes(path: Path) -> None:
    """A central directory that declares less than the entry inflates to."""
    make_jar(path, {"a.txt": b"A" * 5000})
    data = bytearray(path.read_bytes())
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<L", data, central + 24, 10)  # uncompressed size
    path.write_bytes(bytes(data))


def truncated(path: Path) -> None:
    make_jar(path, ENTRIES)
    path.write_bytes(path.read_bytes()[:-40])


def flipped_bits(path: Path) -> None:
    make_jar(path, {"a.txt": bytes(range(256)) * 10})
    data = bytearray(path.read_bytes())
    data[60] ^= 0xFF  # inside the deflated data
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: p.write_bytes(b"not a zip at all" * 10), "not a zip archive"),
    (truncated, "not a zip archive"),
    (flipped_bits, "corrupt JAR"),
    (lying_sizes, "corrupt JAR"),
    (duplicate_names, "two entries named 'a.class'"),
    (bomb, "zip bomb"),
])
def test_bad_archives_are_refused_and_left_alone(tmp_path: Path, make: object,
                                                 message: str) -> None:
    path = tmp_path / "bad.jar"
    make(path)  # type: ignore[operator]
    before = path.read_bytes()
    with pytest.raises(InvalidInput, match=message):
        jar.CLIENT.prepare(path, DigestAlgorithm.SHA256, None, key_info)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["bad.jar"]


def test_the_inflated_size_is_watched_while_hashing(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the declared-size checks, what really comes out of zlib is counted chunk by
    chunk: an entry that inflates past the limit stops the hashing."""
    path = make_jar(tmp_path / "big.jar", {"big.bin": os.urandom(2 << 20)})
    with path.open("rb") as f, zipfile.ZipFile(f) as z:
        (entry,) = jar._entries(z, f, "big.jar")
        monkeypatch.setattr(jar, "MAX_ENTRY_SIZE", 1 << 20)
        with pytest.raises(InvalidInput, match=r"inflates to .* zip bomb"):
            jar._hash_entry(z, entry, ["sha256"], "big.jar")


# --- several signers, signature-related names, the work one JAR may ask for ---------------

def test_every_signer_is_evidence(tmp_path: Path) -> None:
    """Each signer comes back, the first by name and the others as cosigners, so that the
    trust checks (chain, timestamp, revocation) run on every one of them."""
    source = make_jar(tmp_path / "app.jar", ENTRIES)
    sign_locally(source, source)
    sign_locally(source, source, ref="acme/other")
    evidence = jar.VERIFIER.verify(source, None, ())
    assert evidence.details["signer"] == "OTHER"
    assert [c.details["signer"] for c in evidence.cosigners] == ["RELEASE"]
    assert all(c.signer == CERT for c in evidence.cosigners)


@pytest.mark.parametrize(("name", "related"), [
    ("META-INF/MANIFEST.MF", True), ("META-INF/A.SF", True), ("meta-inf/a.ec", True),
    ("META-INF/SIG-X", True), ("META-INF/SIG-x.p7s", True), ("META-INF/SIG-X.A1", True),
    ("META-INF/SIG-evil.class", False), ("META-INF/SIG-X.ABCD", False),
    ("META-INF/SIG-X.", False), ("META-INF/SIG-X.A_B", False), ("META-INF/SIG-X.é", False),
    ("META-INF/sub/SIG-X", False), ("META-INF/sub/A.SF", False), ("SIG-X", False),
    ("META-INF/MANIFEST.MF.bak", False)])
def test_signing_related_names_follow_the_jdk(name: str, related: bool) -> None:
    """SignatureFileVerifier.isSigningRelated: SIG-* only with no extension or 1-3 ASCII
    letters or digits after the last dot."""
    assert jar.signing_related(name) is related


def many_entries(path: Path, count: int) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(count):
            z.writestr(f"e/{i}", b"x")
    return path


def _calls(action: Callable[[], object]) -> int:
    """Function calls, Python and C, made while ``action`` runs: a measure of work that,
    unlike time, does not depend on the machine or its load."""
    calls = 0

    def count(_frame: object, event: str, _arg: object) -> None:
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1

    sys.setprofile(count)
    try:
        action()
    finally:
        sys.setprofile(None)
    return calls


def test_work_is_linear_in_the_entries(tmp_path: Path) -> None:
    """Signing (the client's prepare, which is also the server's recompute of a scanned
    JAR, and the write) and verifying are linear in the number of entries: they were
    quadratic (each entry scanned every manifest section; 37,064 entries took 221 s).
    Four times the entries may cost four times the calls, and a little more for the
    fixed work being spread thinner, never the sixteen times of a scan per entry. The
    timings are in bench/jar_entries.py --scaling."""
    work = []
    for count in (1000, 4000):
        source = many_entries(tmp_path / f"many{count}.jar", count)
        signed = tmp_path / f"signed{count}.jar"
        work.append(_calls(lambda s=source, o=signed: sign_locally(s, o))
                    + _calls(lambda o=signed: jar.VERIFIER.verify(o, None, ())))
        assert jar.VERIFIER.verify(signed, None, ()).details["entries"] == str(count)
    assert work[1] / work[0] < 4.4, work


def test_a_server_bounds_the_work(tmp_path: Path) -> None:
    source = many_entries(tmp_path / "many.jar", 11)
    sign_locally(source, source)  # a manifest of 11 sections
    bounded = jar.JarClient(jar.JarLimits(max_entries=10, configured=True))
    with pytest.raises(PayloadTooLarge, match=r"at most 10 .*jar_max_entries") as entries:
        bounded.prepare(source, DigestAlgorithm.SHA256, None, key_info)
    assert entries.value.code == "too_many_entries"
    small = jar.JarClient(jar.JarLimits(max_manifest_bytes=200, configured=True))
    with pytest.raises(PayloadTooLarge, match="MANIFEST.MF is over the limit of 200 bytes "
                                              r"\(jar_max_manifest_bytes\)") as manifest:
        small.prepare(source, DigestAlgorithm.SHA256, None, key_info)
    assert manifest.value.code == "manifest_too_large"
    assert jar.JarClient(jar.JarLimits(max_entries=14)).prepare(
        source, DigestAlgorithm.SHA256, None, key_info).digest


def test_stopping_ends_the_work(tmp_path: Path) -> None:
    """The server's shutdown flag is polled between entries: the work ends, nothing is
    signed, and the caller is told why."""
    source = many_entries(tmp_path / "many.jar", 3000)
    polls = 0

    def cancelled() -> bool:
        nonlocal polls
        polls += 1
        return polls > 100

    with pytest.raises(Unavailable, match="shutting down") as stopped:
        jar.JarClient(jar.JarLimits(cancelled=cancelled)).prepare(
            source, DigestAlgorithm.SHA256, None, key_info)
    assert stopped.value.code == "shutting_down"
    assert polls == 101
