"""The ASN.1 of Authenticode, shared by every file kind (PE, CAB, MSI, scripts).

Microsoft's "Windows Authenticode Portable Executable Signature Format" (*Authenticode
spec*), "Authenticode-Specific Structures": what is signed is an ``SpcIndirectDataContent``,
a DigestInfo over the file plus an ``SpcAttributeTypeAndOptionalValue`` saying what kind of
file it is:

- PE: ``SPC_PE_IMAGE_DATA_OBJID`` (1.3.6.1.4.1.311.2.1.15) with an ``SpcPeImageData``;
- CAB: ``SPC_CAB_DATA_OBJID`` (1.3.6.1.4.1.311.2.1.25) with an ``SpcLink`` (the
  "<<<Obsolete>>>" file link, as signtool and osslsigncode write it);
- everything a Subject Interface Package hashes (MSI, PowerShell scripts, ...):
  ``SPC_SIPINFO_OBJID`` (1.3.6.1.4.1.311.2.1.30) with an ``SpcSipInfo``: a version, the
  SIP's GUID and five integers (undocumented by Microsoft; the layout is osslsigncode's
  ``SpcSipInfo``, which Windows accepts).

Each kind module (``authenticode_pe.py``, ``authenticode_cab.py``, ...) builds its
``data`` value with :func:`indirect_data_content`; the format (``authenticode.py``) signs
and verifies whatever the kind built.
"""

from __future__ import annotations

from asn1crypto import algos, core

from signgate.crypto.algorithms import DigestAlgorithm

# Authenticode spec, "Authenticode-Specific Structures"
SPC_INDIRECT_DATA = "1.3.6.1.4.1.311.2.1.4"
SPC_PE_IMAGE_DATA = "1.3.6.1.4.1.311.2.1.15"
SPC_CAB_DATA = "1.3.6.1.4.1.311.2.1.25"
SPC_SIPINFO = "1.3.6.1.4.1.311.2.1.30"
SPC_SP_OPUS_INFO = "1.3.6.1.4.1.311.2.1.12"
SPC_STATEMENT_TYPE = "1.3.6.1.4.1.311.2.1.11"
SPC_INDIVIDUAL_SP_KEY_PURPOSE = "1.3.6.1.4.1.311.2.1.21"
# Microsoft's unsigned attribute for an RFC 3161 token (asn1crypto knows it by this name)
TIMESTAMP_ATTRIBUTE = "microsoft_time_stamp_token"
# A whole second SignedData as an unsigned attribute (dual signing)
SPC_NESTED_SIGNATURE = "1.3.6.1.4.1.311.2.4.1"
OBSOLETE = "<<<Obsolete>>>"  # what signtool puts in SpcPeImageData.file and CAB links


class SpcString(core.Choice):  # type: ignore[misc]
    _alternatives = [  # noqa: RUF012 -- asn1crypto style
        ("unicode", core.BMPString, {"implicit": 0}),
        ("ascii", core.IA5String, {"implicit": 1}),
    ]


class SpcSerializedObject(core.Sequence):  # type: ignore[misc]
    _fields = [  # noqa: RUF012 -- asn1crypto style
        ("class_id", core.OctetString),
        ("serialized_data", core.OctetString),
    ]


class SpcLink(core.Choice):  # type: ignore[misc]
    _alternatives = [  # noqa: RUF012 -- asn1crypto style
        ("url", core.IA5String, {"implicit": 0}),
        ("moniker", SpcSerializedObject, {"implicit": 1}),
        ("file", SpcString, {"explicit": 2}),
    ]


class SpcPeImageFlags(core.BitString):  # type: ignore[misc]
    _map = {  # noqa: RUF012 -- asn1crypto style
        0: "include_resources", 1: "include_debug_info", 2: "include_import_address_table",
    }


class SpcPeImageData(core.Sequence):  # type: ignore[misc]
    # Encoded as signtool does: the flags explicitly (empty), the file as [0] SpcLink.
    _fields = [  # noqa: RUF012 -- asn1crypto style
        ("flags", SpcPeImageFlags),
        ("file", SpcLink, {"explicit": 0, "optional": True}),
    ]


class SpcSipInfo(core.Sequence):  # type: ignore[misc]
    """osslsigncode's ``SpcSipInfo`` (osslsigncode.c): a version (``a``: 1 for MSI,
    65536 for scripts), the SIP's GUID in Windows byte order, and five integers, zero."""

    _fields = [  # noqa: RUF012 -- asn1crypto style
        ("version", core.Integer),
        ("guid", core.OctetString),
        ("b", core.Integer),
        ("c", core.Integer),
        ("d", core.Integer),
        ("e", core.Integer),
        ("f", core.Integer),
    ]


class SpcAttributeTypeAndOptionalValue(core.Sequence):  # type: ignore[misc]
    _fields = [  # noqa: RUF012 -- asn1crypto style
        ("type", core.ObjectIdentifier),
        ("value", core.Any, {"optional": True}),
    ]
    _oid_pair = ("type", "value")
    _oid_specs = {  # noqa: RUF012 -- asn1crypto style
        SPC_PE_IMAGE_DATA: SpcPeImageData,
        SPC_CAB_DATA: SpcLink,
        SPC_SIPINFO: SpcSipInfo,
    }


class SpcIndirectDataContent(core.Sequence):  # type: ignore[misc]
    _fields = [  # noqa: RUF012 -- asn1crypto style
        ("data", SpcAttributeTypeAndOptionalValue),
        ("message_digest", algos.DigestInfo),
    ]


class SpcContentInfo(core.Sequence):  # type: ignore[misc]
    """PKCS#7 ContentInfo holding SpcIndirectDataContent ([0] EXPLICIT, no OCTET STRING).
    asn1crypto's ContentInfo cannot tag an unregistered content type, so it is encoded
    with this and loaded back as a ContentInfo."""

    _fields = [  # noqa: RUF012 -- asn1crypto style
        ("content_type", core.ObjectIdentifier),
        ("content", SpcIndirectDataContent, {"explicit": 0}),
    ]


class SpcSpOpusInfo(core.Sequence):  # type: ignore[misc]
    _fields = [  # noqa: RUF012 -- asn1crypto style
        ("program_name", SpcString, {"explicit": 0, "optional": True}),
        ("more_info", SpcLink, {"explicit": 1, "optional": True}),
    ]


class SpcStatementType(core.SequenceOf):  # type: ignore[misc]
    _child_spec = core.ObjectIdentifier


def obsolete_link() -> SpcLink:
    """The file link signtool writes where the spec once wanted a file name."""
    return SpcLink(name="file", value=SpcString(name="unicode", value=OBSOLETE))


def sip_info(version: int, guid: bytes) -> SpcSipInfo:
    """``SpcSipInfo`` naming a Subject Interface Package by its GUID (16 bytes, in the
    byte order Windows stores GUIDs: the first three fields little-endian)."""
    return SpcSipInfo({"version": version, "guid": guid,
                       "b": 0, "c": 0, "d": 0, "e": 0, "f": 0})


def sip_guid(content: SpcIndirectDataContent) -> bytes | None:
    """The SIP GUID of an indirect data over ``SPC_SIPINFO``; None for another type."""
    data = content["data"]
    if data["type"].dotted != SPC_SIPINFO:
        return None
    guid: bytes = bytes(data["value"]["guid"].native)
    return guid


def indirect_data_content(data_type: str, value: core.Asn1Value,
                          algorithm: DigestAlgorithm, digest: bytes) -> SpcIndirectDataContent:
    """``SpcIndirectDataContent`` of ``data_type`` (with its ``value``) over ``digest``,
    reloaded so that ``.contents`` is the DER that will be embedded, byte for byte."""
    content = SpcIndirectDataContent({
        "data": {"type": data_type, "value": value},
        "message_digest": {
            "digest_algorithm": {"algorithm": algorithm.value, "parameters": core.Null()},
            "digest": digest,
        },
    })
    loaded: SpcIndirectDataContent = SpcIndirectDataContent.load(content.dump())
    return loaded
