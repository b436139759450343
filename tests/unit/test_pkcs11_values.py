"""The values a token hands back, read without hand-rolled DER: CKA_EC_PARAMS (a named
curve's OID, or an Edwards curve's printable name) and CKA_EC_POINT (a DER OCTET STRING,
or the bare point some tokens give)."""

from __future__ import annotations

import pytest
from asn1crypto import core, keys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from signgate.errors import KeyStoreError
from signgate.keystore.pkcs11 import _curve_name, _unwrap_point


@pytest.mark.parametrize(("params", "name"), [
    (keys.ECDomainParameters(name="named", value="secp256r1").dump(), "secp256r1"),
    (keys.ECDomainParameters(name="named", value="secp384r1").dump(), "secp384r1"),
    (core.ObjectIdentifier("1.3.101.112").dump(), "1.3.101.112"),
    (core.PrintableString("edwards25519").dump(), "edwards25519"),
    (b"\x05\x00", "0500"),  # NULL (implicitlyCA): no curve signgate accepts
])
def test_curve_names(params: bytes, name: str) -> None:
    assert _curve_name(params) == name


def test_points_wrapped_or_bare() -> None:
    point = ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    assert _unwrap_point(core.OctetString(point).dump(), 97) == point
    assert _unwrap_point(point, 97) == point
    raw = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert _unwrap_point(core.OctetString(raw).dump(), 32) == raw
    assert _unwrap_point(raw, 32) == raw
    # A bare point that happens to read as an OCTET STRING header is still the point.
    looks_wrapped = b"\x04\x1e" + bytes(30)
    assert _unwrap_point(looks_wrapped, 32) == looks_wrapped
    with pytest.raises(KeyStoreError, match="a public key point of 33 bytes, not a 32-byte"):
        _unwrap_point(core.OctetString(bytes(31)).dump(), 32)
