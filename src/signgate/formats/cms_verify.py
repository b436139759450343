"""Verifying a detached ``cms`` signature (the verifying half of ``formats/cms.py``)."""

from __future__ import annotations

from pathlib import Path

from signgate.crypto.algorithms import DigestAlgorithm
from signgate.errors import VerificationFailed
from signgate.formats.base import Evidence
from signgate.formats.files import hash_path
from signgate.formats.raw import read_signature
from signgate.pki import signed_data


def unsigned_token(info: object) -> bytes | None:
    """The RFC 3161 token in a SignerInfo's signatureTimeStampToken attribute, if any."""
    for attribute in info["unsigned_attrs"] or []:  # type: ignore[index]
        if attribute["type"].native == "signature_time_stamp_token":
            return bytes(attribute["values"][0].dump())
    return None


class CmsVerifier:
    name = "cms"

    def verify(self, path: Path, signature: Path | None,
               certificates: tuple[bytes, ...]) -> Evidence:
        signed = signed_data.load_signed_data(read_signature(signature))
        if signed["encap_content_info"]["content"].native is not None:
            raise VerificationFailed("not a detached signature (it carries its content)")
        info = signed_data.only_signer(signed)
        carried = signed_data.certificates_of(signed)
        signer = signed_data.find_signer(info, (*carried, *certificates))
        algorithm = signed_data.digest_name(info["digest_algorithm"])
        digest = hash_path(path, DigestAlgorithm(algorithm))
        signed_data.verify_signer_info(info, signer, digest, "data")
        when = signed_data.signed_attribute(info, "signing_time")
        return Evidence(
            "cms", signer, tuple(c for c in carried if c != signer),
            signature_value=bytes(info["signature"].native),
            timestamp_token=unsigned_token(info),
            signing_time=when if hasattr(when, "isoformat") else None,  # type: ignore[arg-type]
            details={"digest_algorithm": algorithm},
        )

