"""PKCS#11 URIs (RFC 7512): the RFC's own examples (§3.3) parse, signgate's URIs read back,
and what breaks the grammar is refused with a clear message."""

from __future__ import annotations

import pytest

from signgate.errors import InvalidInput
from signgate.keystore.pkcs11_uri import format_uri, parse

# RFC 7512 §3.3, each with what it must read as.
RFC_EXAMPLES: list[tuple[str, dict[str, bytes], dict[str, bytes]]] = [
    ("pkcs11:", {}, {}),
    ("pkcs11:object=my-pubkey;type=public", {"object": b"my-pubkey", "type": b"public"}, {}),
    ("pkcs11:object=my-key;type=private?pin-source=file:/etc/token",
     {"object": b"my-key", "type": b"private"}, {"pin-source": b"file:/etc/token"}),
    ("pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;"
     "model=1.0;object=my-certificate;type=cert;id=%69%95%3E%5C%F4%BD%EC%91;serial="
     "?pin-source=file:/etc/token_pin",
     {"token": b"The Software PKCS#11 Softtoken", "manufacturer": b"Snake Oil, Inc.",
      "model": b"1.0", "object": b"my-certificate", "type": b"cert",
      "id": bytes.fromhex("69953e5cf4bdec91"), "serial": b""},
     {"pin-source": b"file:/etc/token_pin"}),
    ("pkcs11:object=my-sign-key;type=private?module-name=mypkcs11",
     {"object": b"my-sign-key", "type": b"private"}, {"module-name": b"mypkcs11"}),
    ("pkcs11:object=my-sign-key;type=private?module-path=/mnt/libmypkcs11.so.1",
     {"object": b"my-sign-key", "type": b"private"},
     {"module-path": b"/mnt/libmypkcs11.so.1"}),
    ("pkcs11:token=Software%20PKCS%2311%20softtoken;manufacturer=Snake%20Oil,%20Inc."
     "?pin-value=the-pin",
     {"token": b"Software PKCS#11 softtoken", "manufacturer": b"Snake Oil, Inc."},
     {"pin-value": b"the-pin"}),
    ("pkcs11:slot-description=Sun%20Metaslot", {"slot-description": b"Sun Metaslot"}, {}),
    ("pkcs11:library-manufacturer=Snake%20Oil,%20Inc.;library-description=Soft%20Token%20"
     "Library;library-version=1.23",
     {"library-manufacturer": b"Snake Oil, Inc.", "library-description": b"Soft Token Library",
      "library-version": b"1.23"}, {}),
    ("pkcs11:token=My%20token%25%20created%20by%20Joe;library-version=3;"
     "id=%01%02%03%Ba%dd%Ca%fe%04%05%06",
     {"token": b"My token% created by Joe", "library-version": b"3",
      "id": bytes.fromhex("010203badd cafe040506".replace(" ", ""))}, {}),
    ("pkcs11:token=A%20name%20with%20a%20substring%20%25%3B;object=my-certificate;type=cert",
     {"token": b"A name with a substring %;", "object": b"my-certificate", "type": b"cert"},
     {}),
    ("pkcs11:token=Name%20with%20a%20small%20A%20with%20acute:%20%C3%A1;"
     "object=my-certificate;type=cert",
     {"token": "Name with a small A with acute: á".encode(), "object": b"my-certificate",
      "type": b"cert"}, {}),
    ("pkcs11:token=my-token;object=my-certificate;type=cert;vendor-aaa=value-a"
     "?pin-source=file:/etc/token_pin&vendor-bbb=value-b",
     {"token": b"my-token", "object": b"my-certificate", "type": b"cert",
      "vendor-aaa": b"value-a"},
     {"pin-source": b"file:/etc/token_pin", "vendor-bbb": b"value-b"}),
]


@pytest.mark.parametrize(("uri", "path", "query"), RFC_EXAMPLES)
def test_the_rfc_examples_parse(uri: str, path: dict[str, bytes],
                                query: dict[str, bytes]) -> None:
    parsed = parse(uri)
    assert parsed.path == path
    assert parsed.query == query


def test_the_rfc_example_reads_as_text() -> None:
    parsed = parse(RFC_EXAMPLES[3][0])
    assert parsed.token == "The Software PKCS#11 Softtoken"
    assert parsed.object == "my-certificate"
    assert parsed.id == b"\x69\x95\x3e\x5c\xf4\xbd\xec\x91"
    assert parsed.text("serial") == ""


@pytest.mark.parametrize(("token", "object_id", "label"), [
    ("signgate", bytes.fromhex("00ff10"), "signgate-00ff10"),
    ("A name; with % and ?&=/", b"\x00", "label with spaces; %"),
    ("Name with a small A with acute: á", bytes(range(256)), "ü/ö"),
])
def test_signgate_uris_read_back(token: str, object_id: bytes, label: str) -> None:
    uri = format_uri(token, object_id, label)
    assert uri.startswith("pkcs11:token=")
    assert "?" not in uri
    assert " " not in uri
    parsed = parse(uri)
    assert (parsed.token, parsed.id, parsed.object) == (token, object_id, label)
    assert set(parsed.path) == {"token", "id", "object"}


def test_the_id_is_percent_encoded_in_full() -> None:
    assert format_uri("t", b"ab", "l") == "pkcs11:token=t;id=%61%62;object=l"


@pytest.mark.parametrize(("uri", "why"), [
    ("pkcs12:token=x", "does not start with 'pkcs11:'"),
    ("token=x", "does not start with 'pkcs11:'"),
    ("pkcs11:token=a;token=b", "'token' appears twice"),
    ("pkcs11:token", "is not NAME=VALUE"),
    ("pkcs11:token=a b", "' ' must be percent-encoded"),
    ("pkcs11:token=a/b", "'/' must be percent-encoded"),
    ("pkcs11:token=a?pin-source=x/y|z&pin-value=1", "exclude each other"),
    ("pkcs11:id=%6", "'%' not followed by two hex digits"),
    ("pkcs11:id=%zz", "'%' not followed by two hex digits"),
    ("pkcs11:type=secret", "type must be one of"),
    ("pkcs11:slot-id=x1", "slot-id must be a decimal number"),
    ("pkcs11:library-version=1.bar", "library-version must be MAJOR[.MINOR]"),
    ("pkcs11:token=%FF%FE", "'token' is not UTF-8 text"),
    ("pkcs11:pin-value=1234", "'pin-value' belongs in the query"),
    ("pkcs11:?token=x", "'token' belongs in the path"),
    ("pkcs11:object=a&b?module-name=x&module-name=y", "'module-name' appears twice"),
])
def test_what_breaks_the_grammar_is_refused(uri: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=r"^not a PKCS#11 URI \(RFC 7512\): ") as info:
        parse(uri)
    assert why in str(info.value)
    assert info.value.code == "bad_key_ref"
