"""The JAR manifest and signature-file text format (JAR File Specification, "Manifest
Specification" and "Signed JAR File"), pure: bytes in, bytes out.

A manifest is a main section followed by per-entry sections (``Name: path``), each ended
by a blank line. A line holds at most 72 bytes without its terminator; a longer value goes
on continuation lines that begin with one space. Verifiers digest a section's *bytes* (from
its first line through the blank line that ends it, as the JDK's ``ManifestDigester``
does), so sections this module did not change are written back byte for byte: another
signer's digests of them stay valid.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from signgate.errors import ErrorCode, InvalidInput

MAX_LINE = 72  # bytes per line, terminator excluded (JAR spec, "Line length")
CRLF = b"\r\n"
_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
_HEADER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,69}")


@dataclass
class Section:
    """One section: its attributes in order and, when read from a file and not changed
    since, its exact original bytes (blank line included)."""

    attributes: list[tuple[str, str]]
    raw: bytes | None = None

    @property
    def name(self) -> str | None:
        """The ``Name`` of a per-entry section (None for the main section or filler)."""
        if self.attributes and self.attributes[0][0].lower() == "name":
            return self.attributes[0][1]
        return None

    def get(self, header: str) -> str | None:
        wanted = header.lower()
        return next((v for k, v in self.attributes if k.lower() == wanted), None)

    def put(self, header: str, value: str) -> None:
        """Set ``header`` (replacing a value in place, else appending); a change drops the
        original bytes so the section is written anew."""
        wanted = header.lower()
        for i, (k, v) in enumerate(self.attributes):
            if k.lower() == wanted:
                if v != value:
                    self.attributes[i] = (k, value)
                    self.raw = None
                return
        self.attributes.append((header, value))
        self.raw = None

    def encode(self, newline: bytes) -> bytes:
        if self.raw is not None:
            return self.raw
        return b"".join(wrap(f"{k}: {v}".encode(), newline) for k, v in self.attributes) \
            + newline


@dataclass
class Manifest:
    """A parsed manifest (or .SF file): main section, per-entry sections in file order
    (blank-line filler kept as attribute-less sections), and the line terminator found.

    Sections are looked up by name through an index (a JAR has tens of thousands of
    entries: a scan per look-up made signing and verifying quadratic); add sections with
    :meth:`add` so that the index follows."""

    main: Section
    sections: list[Section] = field(default_factory=list)
    newline: bytes = CRLF
    _index: dict[str, Section] = field(default_factory=dict, init=False, repr=False,
                                       compare=False)

    def __post_init__(self) -> None:
        for section in self.sections:
            if section.name is not None:
                self._index.setdefault(section.name, section)

    def encode(self) -> bytes:
        return self.main.encode(self.newline) + b"".join(
            s.encode(self.newline) for s in self.sections)

    def entry(self, name: str) -> Section | None:
        return self._index.get(name)

    def add(self, section: Section) -> None:
        self.sections.append(section)
        if section.name is not None:
            self._index.setdefault(section.name, section)

    def named(self) -> list[Section]:
        return [s for s in self.sections if s.name is not None]


def wrap(line: bytes, newline: bytes = CRLF) -> bytes:
    """One header line, split into 72-byte lines with one-space continuations (JAR spec,
    "Line length"), never inside a UTF-8 sequence (JDK 11+ ``Manifest.println72``)."""
    if len(line) <= MAX_LINE:  # most lines: one per attribute of every entry's section
        return line + newline
    out: list[bytes] = []
    limit = MAX_LINE
    rest = line
    while len(rest) > limit:
        cut = limit
        while cut > 0 and (rest[cut] & 0xC0) == 0x80:  # a continuation byte: back off
            cut -= 1
        out.append(rest[:cut])
        rest = rest[cut:]
        limit = MAX_LINE - 1  # continuation lines start with a space
    out.append(rest)
    return out[0] + newline + b"".join(b" " + part + newline for part in out[1:])


def _lines(data: bytes) -> list[bytes]:
    """Lines with their terminators (\\r\\n, \\n or \\r, as java.util.jar reads them); a
    last line without one gets the file's own terminator."""
    lines: list[bytes] = _LINE.findall(data)
    if lines and not lines[-1].endswith((b"\n", b"\r")):
        lines[-1] += newline_of(data)
    return lines


def newline_of(data: bytes) -> bytes:
    """The first line terminator in ``data`` (CRLF when there is none)."""
    match = re.search(rb"\r\n|\r|\n", data)
    return match.group() if match else CRLF


def _attributes(lines: list[bytes], what: str) -> list[tuple[str, str]]:
    """Header lines (continuations joined, bytes first, then decoded) to (name, value)."""
    joined: list[bytearray] = []
    for line in lines:
        body = line.rstrip(b"\r\n")
        if body.startswith(b" "):
            if not joined:
                raise InvalidInput(f"{what}: a continuation line with nothing to continue",
                                   code=ErrorCode.BAD_MANIFEST)
            joined[-1] += body[1:]
        else:
            joined.append(bytearray(body))
    out: list[tuple[str, str]] = []
    for raw in joined:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"{what}: a line is not UTF-8",
                               code=ErrorCode.BAD_MANIFEST) from None
        header, sep, value = text.partition(": ")
        if not sep or not _HEADER.fullmatch(header):
            raise InvalidInput(f"{what}: invalid header line {text[:60]!r}",
                               code=ErrorCode.BAD_MANIFEST)
        out.append((header, value))
    return out


def parse(data: bytes, what: str = "META-INF/MANIFEST.MF") -> Manifest:
    """Split ``data`` into sections, keeping each one's original bytes."""
    newline = newline_of(data)
    lines = _lines(data)
    sections: list[Section] = []
    current: list[bytes] = []
    for line in lines:
        current.append(line)
        if line in (b"\r\n", b"\n", b"\r"):
            sections.append(Section(_attributes(current[:-1], what), b"".join(current)))
            current = []
    if current:  # the last section without its blank line: add one
        sections.append(Section(_attributes(current, what), b"".join(current) + newline))
    if not sections:
        raise InvalidInput(f"{what} is empty", code=ErrorCode.BAD_MANIFEST)
    main, rest = sections[0], sections[1:]
    for section in rest:
        if section.attributes and section.name is None:
            raise InvalidInput(f"{what}: a section does not start with Name:",
                               code=ErrorCode.BAD_MANIFEST)
    names = [s.name for s in rest if s.name is not None]
    if len(names) != len(set(names)):
        raise InvalidInput(f"{what}: two sections name the same entry", code=ErrorCode.BAD_MANIFEST)
    return Manifest(main, rest, newline)


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def digest_header(algorithm: str) -> str:
    """``SHA-256`` for ``sha256`` (the JDK's MessageDigest names)."""
    return f"SHA-{algorithm.removeprefix('sha')}"


# JDK MessageDigest names in "X-Digest" headers -> hashlib names.
KNOWN_DIGESTS = {"SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512",
                 "SHA1": "sha1", "SHA-1": "sha1", "MD5": "md5"}
STRONG = frozenset({"sha256", "sha384", "sha512"})


def entry_digests(section: Section | None) -> dict[str, str]:
    """The ``X-Digest`` attributes of a section that hashlib can check: header -> hashlib
    name (another algorithm is left alone)."""
    out: dict[str, str] = {}
    for header, _ in section.attributes if section else ():
        if header.upper().endswith("-DIGEST"):
            algorithm = KNOWN_DIGESTS.get(header[:-len("-Digest")].upper())
            if algorithm is not None:
                out[header] = algorithm
    return out


def existing_manifest(data: bytes | None, created_by: str) -> Manifest:
    if data:
        return parse(data)
    return Manifest(Section([("Manifest-Version", "1.0"), ("Created-By", created_by)]))


def update(manifest: Manifest, digests: Mapping[str, Mapping[str, bytes]],
           algorithm: str) -> Manifest:
    """Set every entry's digest; ``digests[name]`` holds the entry's digest under
    ``algorithm`` and under every algorithm its section already names.

    A section whose digests are all still right and include a strong one (SHA-256/384/512)
    is left as it is, byte for byte, so another signer's .SF digest of it stays valid. A
    section with a stale digest loses all of them and gets this algorithm's; a section with
    none gets it added. New entries get sections at the end, in JAR order. Other
    attributes and sections (package sealing, Class-Path, ...) are kept.
    """
    header = f"{digest_header(algorithm)}-Digest"
    for name, computed in digests.items():
        section = manifest.entry(name)
        if section is None:
            section = Section([("Name", name)])
            manifest.add(section)
        present = entry_digests(section)
        stale = [h for h, a in present.items()
                 if base64.b64encode(computed[a]).decode() != section.get(h)]
        if stale:
            section.attributes = [(k, v) for k, v in section.attributes if k not in present]
            section.raw = None
        elif STRONG & set(present.values()):
            continue
        section.put(header, b64(computed[algorithm]))
    return manifest


def signature_file(manifest: Manifest, algorithm: str, created_by: str) -> bytes:
    """The .SF file (JAR spec, "Signature File"): digests of the whole manifest, of its
    main section, and of each per-entry section's bytes (blank line included)."""
    return signed_manifest(manifest, algorithm, created_by)[1]


def signed_manifest(manifest: Manifest, algorithm: str, created_by: str
                    ) -> tuple[bytes, bytes]:
    """The manifest's bytes and its .SF file (:func:`signature_file`), each section
    encoded once for both (a JAR has up to 65,535 of them)."""
    def digest(data: bytes) -> str:
        return b64(hashlib.new(algorithm, data).digest())

    name = digest_header(algorithm)
    main = manifest.main.encode(manifest.newline)
    encoded = [(section, section.encode(manifest.newline)) for section in manifest.sections]
    whole = main + b"".join(data for _, data in encoded)
    sf = Manifest(Section([
        ("Signature-Version", "1.0"),
        ("Created-By", created_by),
        (f"{name}-Digest-Manifest", digest(whole)),
        (f"{name}-Digest-Manifest-Main-Attributes", digest(main)),
    ]))
    for section, data in encoded:
        if section.name is not None:
            sf.add(Section([("Name", section.name), (f"{name}-Digest", digest(data))]))
    return whole, sf.encode()


def section_digests(manifest: Manifest, algorithms: Iterable[str]) -> dict[str, dict[str, bytes]]:
    """For verifiers: each named section's bytes digested under each algorithm."""
    out: dict[str, dict[str, bytes]] = {}
    for section in manifest.named():
        assert section.name is not None
        data = section.encode(manifest.newline)
        out[section.name] = {a: hashlib.new(a, data).digest() for a in algorithms}
    return out
