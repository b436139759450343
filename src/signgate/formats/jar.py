"""``jar``: a signed JAR, as ``jarsigner`` makes it and ``jarsigner -verify -strict`` checks it.

JAR File Specification, "Signed JAR File": ``META-INF/MANIFEST.MF`` holds a digest of every
entry; ``META-INF/NAME.SF`` holds digests of the manifest and of each of its sections; the
block ``META-INF/NAME.RSA`` (or ``.EC``) is a detached PKCS#7/CMS SignedData over the .SF
bytes. The client reads the JAR, builds the manifest and the .SF and sends only the .SF's
digest: on the server it becomes the CMS message-digest attribute (``cms.py`` builds the
SignedData, with the RFC 3161 token as the unsigned signatureTimeStampToken attribute, as
jarsigner's ``-tsa`` does). The client then writes the new JAR: manifest, .SF and block
first, then every other entry copied as it was compressed (never inflated and deflated
again: that is what makes a 100 MB JAR cheap to sign).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from asn1crypto import cms as asn1_cms
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from signgate import __version__
from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm
from signgate.crypto.digests import CHUNK
from signgate.errors import (
    CATALOGUE,
    ErrorCode,
    InvalidInput,
    PayloadTooLarge,
    Unavailable,
    VerificationFailed,
)
from signgate.formats import manifest as mf
from signgate.formats.base import (
    Chain,
    Evidence,
    FormatRequest,
    KeyLookup,
    Prepared,
    Progress,
    SignerKey,
    ToBeSigned,
)
from signgate.formats.cms import CmsBuilder, refuse_ed25519
from signgate.formats.cms_verify import unsigned_token
from signgate.formats.files import signed_copy
from signgate.pki import signed_data

CREATED_BY = f"signgate {__version__}"
MANIFEST = "META-INF/MANIFEST.MF"

# Zip-bomb limits, checked on the sizes an entry declares and on what it really inflates to.
MAX_ENTRY_SIZE = 2 << 30  # one entry, inflated
MAX_TOTAL_SIZE = 16 << 30  # all entries, inflated
MAX_RATIO = 200  # inflated / compressed, once an entry inflates past RATIO_FLOOR
RATIO_FLOOR = 4 << 20
MAX_MANIFEST = 64 << 20
# No ZIP64 writing (APPNOTE 4.5.3): what does not fit 32-bit fields is refused.
MAX_ZIP32 = 0xFFFFFFFF
MAX_ENTRIES = 0xFFFF

_BLOCK_SUFFIXES = (".SF", ".DSA", ".RSA", ".EC")


@dataclass(frozen=True)
class JarLimits:
    """How much work one JAR may ask for. The defaults are the format's own limits (the
    command line signs and verifies whatever signgate can write); a server passes its
    ``config.toml`` bounds (``jar_max_entries``, ``jar_max_manifest_bytes``), refused as
    413 problems, and ``cancelled``, polled between entries and chunks, which ends the work
    when the server shuts down."""

    max_entries: int = MAX_ENTRIES
    max_manifest_bytes: int = MAX_MANIFEST
    cancelled: Callable[[], bool] | None = None
    configured: bool = False  # the bounds come from the server's configuration

    def check(self) -> None:
        if self.cancelled is not None and self.cancelled():
            raise Unavailable("the server is shutting down; nothing was signed, send it "
                              "again", code=ErrorCode.SHUTTING_DOWN)


DEFAULT_LIMITS = JarLimits()


# --- what a JAR holds -------------------------------------------------------------------

@dataclass(frozen=True)
class Entry:
    """One entry as the central directory lists it, plus where its data starts."""

    info: zipfile.ZipInfo
    name: str  # as Java reads it: the raw bytes as UTF-8
    raw_name: bytes
    local_extra: bytes
    data_offset: int

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/")


def signing_related(name: str) -> bool:
    """The manifest and signature files, which no manifest digests: directly in META-INF,
    ``MANIFEST.MF``, ``*.SF|DSA|RSA|EC``, and ``SIG-*`` with no extension or one of 1 to 3
    letters or digits (JDK ``SignatureFileVerifier.isSigningRelated``; JAR spec, "Digital
    Signatures"). Anything else, ``META-INF/SIG-evil.class`` included, is content that must
    be signed."""
    upper = name.upper()  # Java: toUpperCase(Locale.ENGLISH)
    if not upper.startswith("META-INF/"):
        return False
    rest = upper[len("META-INF/"):]
    if "/" in rest:
        return False
    if rest == "MANIFEST.MF" or rest.endswith(_BLOCK_SUFFIXES):
        return True
    if not rest.startswith("SIG-"):
        return False
    _, dot, extension = rest.rpartition(".")
    return not dot or re.fullmatch(r"[A-Z0-9]{1,3}", extension) is not None


def signer_name(ref: str) -> str:
    """The signature file base name from PROJECT/NAME, as jarsigner derives it from an
    alias: A-Z 0-9 _ - (anything else becomes _), upper case, at most 8 characters."""
    name = ref.rpartition("/")[2][:8]
    return re.sub(r"[^A-Za-z0-9_-]", "_", name).upper() or "SIGNGATE"


@contextmanager
def _opened(path: Path, corrupt: ErrorCode) -> Iterator[tuple[zipfile.ZipFile, BinaryIO]]:
    """The JAR as a ZipFile and a raw handle; any zip or zlib failure becomes the error of
    code ``corrupt`` (``bad_jar`` when signing, ``malformed_jar`` when verifying) naming the
    file (the zipfile module raises half a dozen exception types)."""
    try:
        f = path.open("rb")
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc
    try:
        try:
            zf = zipfile.ZipFile(f)
        except zipfile.BadZipFile as exc:
            raise InvalidInput(f"{path.name} is not a JAR: not a zip archive ({exc})",
                               code=ErrorCode.BAD_JAR) from None
        with zf:
            yield zf, f
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, NotImplementedError,
            RuntimeError, struct.error) as exc:
        raise CATALOGUE[corrupt].cls(f"{path.name} is a corrupt JAR: {exc}",
                                     code=corrupt) from None
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc
    finally:
        f.close()


def _java_name(info: zipfile.ZipInfo, what: str) -> tuple[str, bytes]:
    """Java reads entry names as UTF-8 whatever the zip's language flag says."""
    raw = info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437")
    try:
        return raw.decode("utf-8"), raw
    except UnicodeDecodeError:
        raise InvalidInput(f"{what}: entry name {info.orig_filename!r} is not UTF-8",
                           code=ErrorCode.BAD_JAR) from None


def _entries(zf: zipfile.ZipFile, f: BinaryIO, what: str,
             limits: JarLimits = DEFAULT_LIMITS) -> list[Entry]:
    """Every entry, checked for what Java and this writer support, with its data offset
    read from its local header (APPNOTE 4.3.7)."""
    infos = zf.infolist()
    if len(infos) > MAX_ENTRIES:
        raise InvalidInput(f"{what} has {len(infos)} entries; at most {MAX_ENTRIES} are "
                           "supported (no ZIP64)", code=ErrorCode.BAD_JAR)
    if len(infos) > limits.max_entries:
        raise PayloadTooLarge(f"{what} has {len(infos)} entries; this server takes JARs of "
                              f"at most {limits.max_entries} (jar_max_entries)",
                              code=ErrorCode.TOO_MANY_ENTRIES)
    seen: set[str] = set()
    declared = 0
    out: list[Entry] = []
    for info in infos:
        name, raw = _java_name(info, what)
        if name in seen:
            raise InvalidInput(f"{what} has two entries named {name!r}; a JAR's entry "
                               "names must be unique", code=ErrorCode.BAD_JAR)
        seen.add(name)
        if info.flag_bits & 0x1:
            raise InvalidInput(f"{what}: entry {name!r} is encrypted", code=ErrorCode.BAD_JAR)
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise InvalidInput(f"{what}: entry {name!r} uses compression method "
                               f"{info.compress_type}; Java reads only stored and deflated",
                               code=ErrorCode.BAD_JAR)
        if max(info.file_size, info.compress_size, info.header_offset) >= MAX_ZIP32:
            raise InvalidInput(f"{what}: entry {name!r} needs ZIP64 (4 GiB or more), which "
                               "is not supported", code=ErrorCode.BAD_JAR)
        _check_bomb(what, name, info.file_size, info.compress_size, "declares")
        declared += info.file_size
        if declared > MAX_TOTAL_SIZE:
            raise InvalidInput(f"{what} declares more than {MAX_TOTAL_SIZE >> 30} GiB of "
                               "content once inflated: refused as a zip bomb",
                               code=ErrorCode.ZIP_BOMB)
        if len(out) % 1024 == 0:
            limits.check()
        f.seek(info.header_offset)
        header = f.read(30)
        if len(header) != 30 or header[:4] != b"PK\x03\x04":
            raise InvalidInput(f"{what} is a corrupt JAR: bad local header for {name!r}",
                               code=ErrorCode.BAD_JAR)
        name_len, extra_len = struct.unpack("<HH", header[26:30])
        f.seek(name_len, os.SEEK_CUR)
        local_extra = f.read(extra_len)
        out.append(Entry(info, name, raw, local_extra,
                         info.header_offset + 30 + name_len + extra_len))
    return out


def _check_bomb(what: str, name: str, size: int, compressed: int, verb: str) -> None:
    if size > MAX_ENTRY_SIZE:
        raise InvalidInput(f"{what}: entry {name!r} {verb} {size} bytes inflated, over the "
                           f"{MAX_ENTRY_SIZE >> 20} MiB limit: refused as a zip bomb",
                           code=ErrorCode.ZIP_BOMB)
    if size > RATIO_FLOOR and size > MAX_RATIO * max(compressed, 1):
        raise InvalidInput(f"{what}: entry {name!r} {verb} {size} bytes from {compressed} "
                           f"compressed (over {MAX_RATIO}:1): refused as a zip bomb",
                           code=ErrorCode.ZIP_BOMB)


def _hash_entry(zf: zipfile.ZipFile, entry: Entry, algorithms: list[str],
                what: str, limits: JarLimits = DEFAULT_LIMITS) -> dict[str, bytes]:
    """The entry's content digests, inflating it in chunks (zipfile checks the CRC at the
    end) and watching what it really inflates to."""
    hashers = [hashlib.new(a) for a in algorithms]
    total = 0
    with zf.open(entry.info) as stream:
        while chunk := stream.read(CHUNK):
            total += len(chunk)
            _check_bomb(what, entry.name, total, entry.info.compress_size, "inflates to")
            limits.check()
            for h in hashers:
                h.update(chunk)
    return {a: h.digest() for a, h in zip(algorithms, hashers, strict=True)}


def _read_small(zf: zipfile.ZipFile, entry: Entry, what: str,
                limits: JarLimits = DEFAULT_LIMITS) -> bytes:
    """A manifest or signature file, refused past ``limits.max_manifest_bytes`` whatever
    its entry declares."""
    limit = limits.max_manifest_bytes
    data = b""
    if entry.info.file_size <= limit:  # else refused on what it declares, unread
        with zf.open(entry.info) as stream:
            data = stream.read(limit + 1)
    if entry.info.file_size > limit or len(data) > limit:
        setting = " (jar_max_manifest_bytes)" if limits.configured else ""
        raise PayloadTooLarge(f"{what}: {entry.name} is over the limit of {limit} "
                              f"bytes{setting}", code=ErrorCode.MANIFEST_TOO_LARGE)
    return data


def _manifest_entry(entries: list[Entry]) -> Entry | None:
    return next((e for e in entries if e.name.upper() == MANIFEST), None)


# --- writing: APPNOTE.TXT 4.3 (local headers, central directory, end record) -------------

def _dos_time(when: tuple[int, int, int, int, int, int]) -> tuple[int, int]:
    """MS-DOS (time, date) fields (APPNOTE 4.4.6) from a ZipInfo.date_time."""
    year, month, day, hour, minute, second = when
    return (hour << 11) | (minute << 5) | (second // 2), \
        (max(year - 1980, 0) << 9) | (month << 5) | day


def _without_zip64(extra: bytes) -> bytes:
    """The extra field minus its ZIP64 record (APPNOTE 4.5.3), which this writer's 32-bit
    fields make meaningless; left alone if it is not a well-formed list of records."""
    out, i = bytearray(), 0
    while i + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, i)
        if i + 4 + size > len(extra):
            return extra
        if tag != 0x0001:
            out += extra[i:i + 4 + size]
        i += 4 + size
    return bytes(out) if i == len(extra) else extra


class _ZipWriter:
    """Writes entries (new, or copied compressed as they are) and the central directory."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.central: list[bytes] = []
        self.offset = 0

    def _write(self, data: bytes) -> None:
        self.out.write(data)
        self.offset += len(data)

    def _headers(self, info: zipfile.ZipInfo, raw_name: bytes, local_extra: bytes,
                 flags: int) -> None:
        if self.offset >= MAX_ZIP32:
            raise InvalidInput("the signed JAR would be over 4 GiB, which needs ZIP64 "
                               "(not supported)", code=ErrorCode.BAD_JAR)
        time, date = _dos_time(info.date_time)
        common = struct.pack("<HHHHLLLH", flags, info.compress_type, time, date, info.CRC,
                             info.compress_size, info.file_size, len(raw_name))
        central_extra = _without_zip64(info.extra)
        self.central.append(
            struct.pack("<LBB", 0x02014B50, info.create_version, info.create_system)
            + struct.pack("<H", info.extract_version) + common
            + struct.pack("<HHHHLL", len(central_extra), len(info.comment), 0,
                          info.internal_attr, info.external_attr, self.offset)
            + raw_name + central_extra + info.comment)
        self._write(struct.pack("<LH", 0x04034B50, info.extract_version) + common
                    + struct.pack("<H", len(local_extra)) + raw_name + local_extra)

    def add(self, name: str, data: bytes, when: datetime) -> None:
        """A new entry, deflated."""
        info = zipfile.ZipInfo(name, date_time=when.timetuple()[:6])
        packer = zlib.compressobj(9, zlib.DEFLATED, -15)
        body = packer.compress(data) + packer.flush()
        info.compress_type = zipfile.ZIP_DEFLATED
        info.CRC, info.compress_size, info.file_size = zlib.crc32(data), len(body), len(data)
        info.create_system, info.create_version, info.extract_version = 0, 20, 20
        self._headers(info, name.encode("utf-8"), b"", 0)
        self._write(body)

    def copy(self, src: BinaryIO, entry: Entry) -> None:
        """An entry copied from ``src`` without inflating it. The sizes go into the local
        header, so a data descriptor is not needed (flag bit 3 cleared, APPNOTE 4.4.4)."""
        self._headers(entry.info, entry.raw_name, _without_zip64(entry.local_extra),
                      entry.info.flag_bits & ~0x08)
        src.seek(entry.data_offset)
        left = entry.info.compress_size
        while left:
            chunk = src.read(min(left, CHUNK))
            if not chunk:
                raise InvalidInput(f"the JAR ends inside entry {entry.name!r}",
                                   code=ErrorCode.BAD_JAR)
            self._write(chunk)
            left -= len(chunk)

    def close(self, comment: bytes) -> None:
        start = self.offset
        for record in self.central:
            self._write(record)
        if self.offset >= MAX_ZIP32:
            raise InvalidInput("the signed JAR would be over 4 GiB, which needs ZIP64 "
                               "(not supported)", code=ErrorCode.BAD_JAR)
        self._write(struct.pack("<LHHHHLLH", 0x06054B50, 0, 0, len(self.central),
                                len(self.central), self.offset - start, start, len(comment))
                    + comment)


# --- server half ---------------------------------------------------------------------------

class JarBuilder(CmsBuilder):
    """``jar``: the block is the detached CMS SignedData of ``cms`` over the .SF digest the
    client sends (id-data content type, as jarsigner signs it).

    What JDK 17's jarsigner verifies: RSA PKCS#1 v1.5 and RSASSA-PSS (signed JAR support
    since JDK 16), ECDSA P-256/P-384, with SHA-256/384/512. It verifies EdDSA too, but the
    RFC 8419 CMS is refused for every CMS-based format (``cms.refuse_ed25519``).
    """

    name = "jar"

    def check(self, key: SignerKey, request: FormatRequest) -> None:
        refuse_ed25519(key, "JAR")

    def assemble(self, key: SignerKey, request: FormatRequest, tbs: ToBeSigned,
                 signature: bytes, chain: Chain | None, timestamp_token: bytes | None) -> bytes:
        """The whole chain up to the root, as jarsigner writes it: ``jarsigner -verify
        -strict -keystore`` wants one certificate of the signer's chain in the keystore,
        and a truststore holding only signgate's root must do."""
        assert chain is not None
        if chain.root is not None:
            chain = Chain(chain.leaf, (*chain.issuers, chain.root))
        return super().assemble(key, request, tbs, signature, chain, timestamp_token)


# --- client half ---------------------------------------------------------------------------

@dataclass(frozen=True)
class _Plan:
    """What ``prepare`` found, for ``finish`` to write."""

    signer: str
    manifest: bytes
    signature_file: bytes
    keep: tuple[Entry, ...]  # entries copied after the new signature files, in JAR order
    comment: bytes
    stamp: tuple[int, int]  # size and mtime of the input, to notice a change meanwhile


def _stamp(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc
    return st.st_size, st.st_mtime_ns


def _block_extension(block: bytes) -> str:
    """RSA or EC, from the signer certificate in the block (JAR spec: the block file's
    extension names the signature algorithm's key type)."""
    try:
        signed = asn1_cms.ContentInfo.load(block)["content"]
        sid = signed["signer_infos"][0]["sid"].chosen
        for choice in signed["certificates"]:
            cert = choice.chosen
            if (cert.serial_number == sid["serial_number"].native
                    and cert.issuer == sid["issuer"]):
                key = x509.load_der_x509_certificate(cert.dump()).public_key()
                if isinstance(key, rsa.RSAPublicKey):
                    return "RSA"
                if isinstance(key, ec.EllipticCurvePublicKey):
                    return "EC"
    except (ValueError, KeyError, TypeError, IndexError):
        pass
    raise InvalidInput("the server's answer is not a JAR signature block (CMS SignedData "
                       "with an RSA or EC signer)", code=ErrorCode.BAD_SIGNATURE)


class JarClient:
    name = "jar"
    embedded = True
    suffix = ".jar"

    def __init__(self, limits: JarLimits = DEFAULT_LIMITS) -> None:
        self.limits = limits

    def prepare(self, path: Path, algorithm: DigestAlgorithm, progress: Progress | None,
                key: KeyLookup) -> Prepared:
        """One pass over the entries; every look-up is by name in a dict (a JAR has up to
        65,535 entries: anything per entry that scans a list makes signing quadratic)."""
        limits = self.limits
        stamp = _stamp(path)
        with _opened(path, ErrorCode.BAD_JAR) as (zf, f):
            entries = _entries(zf, f, path.name, limits)
            info = key()  # after the cheap checks, before the long read
            if info.algorithm is KeyAlgorithm.ED25519:
                raise InvalidInput("JAR signatures with ed25519 keys are not supported; use "
                                   "an ECDSA or RSA key", code=ErrorCode.UNSUPPORTED_FORMAT)
            signer = signer_name(info.ref)
            found = _manifest_entry(entries)
            manifest = mf.existing_manifest(
                _read_small(zf, found, path.name, limits) if found else None, CREATED_BY)
            digests: dict[str, dict[str, bytes]] = {}
            for entry in entries:
                limits.check()
                if not entry.is_dir and not signing_related(entry.name):
                    wanted = {algorithm.value,
                              *mf.entry_digests(manifest.entry(entry.name)).values()}
                    digests[entry.name] = _hash_entry(zf, entry, sorted(wanted), path.name,
                                                      limits)
                if progress is not None:
                    progress(entry.info.compress_size)
            comment = zf.comment
        manifest = mf.update(manifest, digests, algorithm.value)
        manifest_bytes, sf = mf.signed_manifest(manifest, algorithm.value, CREATED_BY)
        ours = {MANIFEST, *(f"META-INF/{signer}{s}" for s in _BLOCK_SUFFIXES)}
        keep = tuple(e for e in entries if e.name.upper() not in ours)
        plan = _Plan(signer, manifest_bytes, sf, keep, comment, stamp)
        return Prepared(algorithm, hashlib.new(algorithm.value, sf).digest(), state=plan)

    def finish(self, path: Path, prepared: Prepared, result: bytes, output: Path) -> None:
        plan: _Plan = prepared.state
        extension = _block_extension(result)
        if _stamp(path) != plan.stamp:
            raise InvalidInput(f"{path} changed while it was being signed; sign it again",
                               code=ErrorCode.INPUT_CHANGED)
        with signed_copy(path, output) as tmp, path.open("rb") as src, \
                tmp.open("wb") as out:
            writer = _ZipWriter(out)
            now = datetime.now()  # zip times are local time, as Java writes them
            writer.add(MANIFEST, plan.manifest, now)
            writer.add(f"META-INF/{plan.signer}.SF", plan.signature_file, now)
            writer.add(f"META-INF/{plan.signer}.{extension}", result, now)
            for entry in plan.keep:
                writer.copy(src, entry)
            writer.close(plan.comment)

    def recompute(self, path: Path, algorithm: DigestAlgorithm, params: Mapping[str, str],
                  key: KeyLookup) -> bytes:
        """The .SF's digest, built again from the JAR: manifest and .SF are a function of
        the entries, their existing manifest and the signer name."""
        return self.prepare(path, algorithm, None, key).digest


# --- verifier ------------------------------------------------------------------------------

_SF_DIGESTS = {"SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512"}


@dataclass(frozen=True)
class _Signer:
    name: str
    evidence: Evidence
    covers: frozenset[str]


def _digest_attributes(section: mf.Section, suffix: str) -> dict[str, bytes]:
    """``SHA-256<suffix>: base64`` attributes of a section, by hashlib name (weaker or
    unknown algorithms are ignored: they prove nothing)."""
    out: dict[str, bytes] = {}
    for header, value in section.attributes:
        if header.upper().endswith(suffix.upper()):
            algorithm = _SF_DIGESTS.get(header[: -len(suffix)].upper())
            if algorithm is not None:
                try:
                    out[algorithm] = base64.b64decode(value, validate=True)
                except binascii.Error:
                    raise VerificationFailed(f"{header} is not base64") from None
    return out


def _check_signer(name: str, sf_bytes: bytes, block: bytes, manifest: mf.Manifest,
                  manifest_bytes: bytes, certificates: tuple[bytes, ...]) -> _Signer:
    """The block's signature over the .SF, then the .SF's digests of the manifest (the
    whole of it, else its main section and each section, as the JDK falls back to)."""
    signed = signed_data.load_signed_data(block)
    info = signed_data.only_signer(signed)
    carried = signed_data.certificates_of(signed)
    signer = signed_data.find_signer(info, (*carried, *certificates))
    algorithm = signed_data.digest_name(info["digest_algorithm"])
    signed_data.verify_signer_info(info, signer, hashlib.new(algorithm, sf_bytes).digest(),
                                   "data")
    try:
        sf = mf.parse(sf_bytes, f"META-INF/{name}.SF")
    except InvalidInput as exc:
        raise VerificationFailed(str(exc)) from None
    whole = _digest_attributes(sf.main, "-Digest-Manifest")
    if not whole:
        raise VerificationFailed(f"META-INF/{name}.SF has no SHA-256/384/512 digest of the "
                                 "manifest")
    if not all(hashlib.new(a, manifest_bytes).digest() == d for a, d in whole.items()):
        main = _digest_attributes(sf.main, "-Digest-Manifest-Main-Attributes")
        main_bytes = manifest.main.encode(manifest.newline)
        if not all(hashlib.new(a, main_bytes).digest() == d for a, d in main.items()):
            raise VerificationFailed(f"META-INF/{name}.SF does not match the manifest's "
                                     "main attributes")
        for section in sf.named():
            entry = manifest.entry(section.name or "")
            wanted = _digest_attributes(section, "-Digest")
            data = entry.encode(manifest.newline) if entry else None
            if data is None or not wanted or not all(
                    hashlib.new(a, data).digest() == d for a, d in wanted.items()):
                raise VerificationFailed(f"META-INF/{name}.SF does not match the manifest "
                                         f"section of {section.name!r}")
    when = signed_data.signed_attribute(info, "signing_time")
    evidence = Evidence(
        "jar", signer, tuple(c for c in carried if c != signer),
        signature_value=bytes(info["signature"].native),
        timestamp_token=unsigned_token(info),
        signing_time=when if isinstance(when, datetime) else None,
        details={"signer": name, "digest_algorithm": algorithm},
    )
    return _Signer(name, evidence, frozenset(s.name for s in sf.named() if s.name))


class JarVerifier:
    """What ``jarsigner -verify -strict`` checks of the signatures themselves: every
    signer's block and .SF, every entry's digest, and every entry signed.

    When signers disagree, the strict rule applies: every signer must be valid, not just
    one. The Evidence names the first signer (by name) and carries the others as
    ``cosigners``, so that ``signgate verify`` checks each one's chain, codeSigning EKU,
    timestamp and revocation; any that fails makes the whole JAR invalid, whatever the
    others say, as ``jarsigner -strict`` refuses a JAR any of whose entries has a signer
    with an invalid chain. So an entry counts as signed only by signers that pass, and a
    foreign, expired or revoked key can never add an entry to a JAR someone trusted
    signed.
    """

    name = "jar"

    def verify(self, path: Path, signature: Path | None,
               certificates: tuple[bytes, ...]) -> Evidence:
        with _opened(path, ErrorCode.MALFORMED_JAR) as (zf, f):
            entries = _entries(zf, f, path.name)
            found = _manifest_entry(entries)
            if found is None:
                raise VerificationFailed(f"{path.name} is not signed: no {MANIFEST}")
            manifest_bytes = _read_small(zf, found, path.name)
            try:
                manifest = mf.parse(manifest_bytes)
            except InvalidInput as exc:
                raise VerificationFailed(str(exc)) from None
            signers = [self._signer(zf, entries, e, manifest, manifest_bytes, certificates,
                                    path.name)
                       for e in entries if re.fullmatch(r"META-INF/[^/]+\.SF", e.name.upper())]
            if not signers:
                raise VerificationFailed(f"{path.name} is not signed: no signature file "
                                         "in META-INF")
            covered = frozenset().union(*(s.covers for s in signers))
            for entry in entries:
                if entry.is_dir or signing_related(entry.name):
                    continue
                self._check_entry(zf, entry, manifest, covered, path.name)
        # Every signer is evidence: signgate verify checks each one's chain, timestamp and
        # revocation, and one that fails makes the JAR invalid (see JarVerifier).
        signers.sort(key=lambda s: s.name)
        first = signers[0].evidence
        details = {**first.details, "signers": ", ".join(s.name for s in signers),
                   "entries": str(sum(1 for e in entries
                                      if not e.is_dir and not signing_related(e.name)))}
        return replace(first, details=details,
                       cosigners=tuple(s.evidence for s in signers[1:]))

    @staticmethod
    def _signer(zf: zipfile.ZipFile, entries: list[Entry], sf_entry: Entry,
                manifest: mf.Manifest, manifest_bytes: bytes,
                certificates: tuple[bytes, ...], what: str) -> _Signer:
        base = sf_entry.name[len("META-INF/"):-len(".SF")]
        blocks = [e for e in entries
                  if e.name.upper() in {f"META-INF/{base.upper()}{s}"
                                        for s in (".RSA", ".EC", ".DSA")}]
        if len(blocks) != 1:
            raise VerificationFailed(f"META-INF/{base}.SF has no signature block "
                                     f"(META-INF/{base}.RSA or .EC)")
        return _check_signer(base, _read_small(zf, sf_entry, what),
                             _read_small(zf, blocks[0], what), manifest, manifest_bytes,
                             certificates)

    @staticmethod
    def _check_entry(zf: zipfile.ZipFile, entry: Entry, manifest: mf.Manifest,
                     covered: frozenset[str], what: str) -> None:
        section = manifest.entry(entry.name)
        if section is None or entry.name not in covered:
            raise VerificationFailed(f"{entry.name} is not signed (an entry added after "
                                     "signing, or left out of the signature)")
        wanted = _digest_attributes(section, "-Digest")
        if not wanted:
            raise VerificationFailed(f"the manifest has no SHA-256/384/512 digest of "
                                     f"{entry.name}")
        try:
            got = _hash_entry(zf, entry, list(wanted), what)
        except InvalidInput as exc:
            raise VerificationFailed(str(exc)) from None
        if got != wanted:
            raise VerificationFailed(f"{entry.name} was modified after signing (its digest "
                                     "does not match the manifest)")


BUILDER = JarBuilder()
CLIENT = JarClient()
VERIFIER = JarVerifier()
