"""PKCS#11 URIs (RFC 7512): how a key on an HSM token is named in the database.

signgate names its keys ``pkcs11:token=<label>;id=<%XX...>;object=<label>``: the token's
label picks the store (and the slot), the object's ``CKA_ID`` and ``CKA_LABEL`` pick the
key. :func:`parse` reads any URI the RFC's grammar allows (§2.3: path attributes separated
by ``;``, query attributes by ``&``, each at most once, values percent-encoded where a
character is not allowed as it is), so a URI written by another tool (p11tool, p11-kit)
reads too; :func:`format_uri` writes signgate's three attributes, ``id`` (binary)
percent-encoded in full and every other value encoded but for unreserved characters
(encoding more than required is always allowed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from signgate.errors import ErrorCode, InvalidInput

SCHEME = "pkcs11"

# RFC 7512 §2.3: the path attributes it defines; vendor attributes ("v-" is not required)
# are any other 1*(ALPHA / DIGIT / "-" / "_") name.
PATH_ATTRIBUTES = frozenset({
    "id", "library-description", "library-manufacturer", "library-version",
    "manufacturer", "model", "object", "serial", "slot-description", "slot-id",
    "slot-manufacturer", "token", "type"})
QUERY_ATTRIBUTES = frozenset({"pin-source", "pin-value", "module-name", "module-path"})
TYPES = frozenset({"public", "private", "cert", "secret-key", "data"})

_UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
# pk11-path-res-avail and pk11-query-res-avail: what may stand unencoded besides
# unreserved ("&" only in the path, "/", "?" and "|" only in the query).
_PATH_CHARS = frozenset(_UNRESERVED + ":[]@!$&'()*+,=")
_QUERY_CHARS = frozenset(_UNRESERVED + ":[]@!$'()*+,=/?|")
_NAME = re.compile(r"[A-Za-z0-9_-]+")
_VERSION = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def _bad(why: str) -> InvalidInput:
    return InvalidInput(f"not a PKCS#11 URI (RFC 7512): {why}", code=ErrorCode.BAD_KEY_REF)


@dataclass(frozen=True)
class Pkcs11Uri:
    """A parsed URI: path and query attributes by name, values decoded to bytes (``id`` is
    binary; the others are UTF-8 text, see :meth:`text`)."""

    path: dict[str, bytes] = field(default_factory=dict)
    query: dict[str, bytes] = field(default_factory=dict)

    def text(self, name: str) -> str | None:
        """Path attribute ``name`` as text, or None if the URI has none."""
        value = self.path.get(name)
        return None if value is None else value.decode("utf-8")

    @property
    def token(self) -> str | None:
        return self.text("token")

    @property
    def object(self) -> str | None:
        return self.text("object")

    @property
    def id(self) -> bytes | None:
        return self.path.get("id")


def _decode(value: str, allowed: frozenset[str], where: str) -> bytes:
    out = bytearray()
    i = 0
    while i < len(value):
        c = value[i]
        if c == "%":
            pair = value[i + 1:i + 3]
            if len(pair) != 2 or not all(h in "0123456789abcdefABCDEF" for h in pair):
                raise _bad(f"'%' not followed by two hex digits in {where}")
            out.append(int(pair, 16))
            i += 3
            continue
        if c not in allowed:
            raise _bad(f"{c!r} must be percent-encoded in {where}")
        out += c.encode("ascii")
        i += 1
    return bytes(out)


def _attributes(part: str, separator: str, allowed: frozenset[str],
                known: frozenset[str], where: str) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    if not part:
        return found
    for item in part.split(separator):
        name, eq, value = item.partition("=")
        if not eq or not _NAME.fullmatch(name):
            raise _bad(f"{item!r} in the {where} is not NAME=VALUE")
        if name in found:
            raise _bad(f"{name!r} appears twice in the {where}")  # RFC 7512 §2.3
        if name not in known and name in (PATH_ATTRIBUTES | QUERY_ATTRIBUTES):
            raise _bad(f"{name!r} belongs in the {'query' if where == 'path' else 'path'}")
        found[name] = _decode(value, allowed, f"{name!r}")
    return found


def parse(uri: str) -> Pkcs11Uri:
    """Read ``uri``; :class:`InvalidInput` (code ``bad_key_ref``) says what is wrong."""
    scheme, colon, rest = uri.partition(":")
    if not colon or scheme.lower() != SCHEME:
        raise _bad("it does not start with 'pkcs11:'")
    path_part, _, query_part = rest.partition("?")
    path = _attributes(path_part, ";", _PATH_CHARS, PATH_ATTRIBUTES, "path")
    query = _attributes(query_part, "&", _QUERY_CHARS, QUERY_ATTRIBUTES, "query")
    for name, value in path.items():
        if name != "id":
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                raise _bad(f"{name!r} is not UTF-8 text") from None
    if "type" in path and path["type"].decode() not in TYPES:
        raise _bad(f"type must be one of {', '.join(sorted(TYPES))}")
    if "slot-id" in path and not path["slot-id"].isdigit():
        raise _bad("slot-id must be a decimal number")
    if "library-version" in path and not _VERSION.fullmatch(path["library-version"].decode()):
        raise _bad("library-version must be MAJOR[.MINOR]")
    if "pin-source" in query and "pin-value" in query:
        raise _bad("pin-source and pin-value exclude each other")
    return Pkcs11Uri(path, query)


def _encode(value: bytes, keep: frozenset[str]) -> str:
    return "".join(chr(b) if chr(b) in keep else f"%{b:02X}" for b in value)


def format_uri(token: str, object_id: bytes, label: str) -> str:
    """signgate's URI for the key ``object_id``/``label`` on token ``token``."""
    keep = frozenset(_UNRESERVED)
    return (f"{SCHEME}:token={_encode(token.encode(), keep)};"
            f"id={_encode(object_id, frozenset())};object={_encode(label.encode(), keep)}")
