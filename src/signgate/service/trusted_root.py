"""signgate's authorities as a Sigstore trusted root, so Sigstore clients verify signgate's
bundles offline.

The document is a ``TrustedRoot`` of sigstore protobuf-specs (``sigstore_trustroot.proto``,
media type :data:`MEDIA_TYPE`) in its protobuf JSON form:

- ``certificateAuthorities``: one entry per project issuing CA the caller may see, its
  ``certChain`` the issuing CA then signgate's root (a v0.3 bundle carries only the signer's
  certificate, so the verifier finds the rest here). ``validFor.start`` is the CA
  certificate's notBefore; ``validFor.end`` is set only once the CA certificate is revoked,
  so bundles timestamped before the revocation still verify and later ones do not;
- ``timestampAuthorities``: signgate's RFC 3161 TSA (its certificate, then the root);
- ``tlogs``: signgate's transparency log (``baseUrl`` its ``/log`` routes, the log key as
  an Ed25519 ``publicKey``, ``logId`` the SHA-256 of that key's DER, ``checkpointKeyId``
  its C2SP signed-note key ID, which checkpoints name). signgate's bundles carry no Rekor
  entries: verifiers must still be told to require none (the receipts are checked with
  ``signgate log verify-receipt``);
- ``ctlogs``: empty (no certificate transparency).

Authenticated, like ``/ca/certificate``: the issuing CAs name the projects, and an identity
learns only about projects it may see (as ``project list`` shows them).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from sqlalchemy import select
from sqlalchemy.orm import Session

from signgate.audit.model import Action
from signgate.crypto.signatures import load_public_key
from signgate.errors import NotFound
from signgate.pki import certs
from signgate.policy import decide
from signgate.policy.model import Actor
from signgate.service.checkpoints import note_signer
from signgate.service.context import Caller, Context, Target
from signgate.service.records.authorities import authority_certificate, root, tsa_authority
from signgate.store.models import Authority, Certificate, LogKey, Project

MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"


@dataclass(frozen=True)
class Entry:
    """One authority as the trusted root lists it."""

    certificate: Certificate
    uri: str


def _time(value: datetime) -> str:
    """RFC 3339 in UTC, as protobuf JSON writes a Timestamp."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _subject(der: bytes) -> dict[str, str]:
    """protobuf-specs ``DistinguishedName``: organization and common name."""
    name = certs.load_der(der).subject.native
    return {"organization": str(name.get("organization_name", "")),
            "commonName": str(name.get("common_name", ""))}


def authority_entry(entry: Entry, root_der: bytes) -> dict[str, Any]:
    """A ``CertificateAuthority``: subject, uri, chain up to the root, validity window."""
    cert = entry.certificate
    valid_for = {"start": _time(cert.not_before)}
    if cert.revoked_at is not None:
        valid_for["end"] = _time(cert.revoked_at)
    return {
        "subject": _subject(cert.der),
        "uri": entry.uri,
        "certChain": {"certificates": [
            {"rawBytes": base64.b64encode(der).decode("ascii")} for der in (cert.der, root_der)
        ]},
        "validFor": valid_for,
    }


@dataclass(frozen=True)
class LogEntry:
    """The transparency log as the trusted root lists it."""

    base_url: str
    public_key_der: bytes
    note_key_id: int
    since: datetime

    def document(self) -> dict[str, Any]:
        """A ``TransparencyLogInstance``."""
        return {
            "baseUrl": self.base_url,
            "hashAlgorithm": "SHA2_256",
            "publicKey": {"rawBytes": base64.b64encode(self.public_key_der).decode("ascii"),
                          "keyDetails": "PKIX_ED25519",
                          "validFor": {"start": _time(self.since)}},
            "logId": {"keyId": base64.b64encode(
                hashlib.sha256(self.public_key_der).digest()).decode("ascii")},
            "checkpointKeyId": {"keyId": base64.b64encode(
                self.note_key_id.to_bytes(4, "big")).decode("ascii")},
        }


def document(root_der: bytes, issuing: list[Entry], tsa: Entry | None,
             log: LogEntry | None = None) -> dict[str, Any]:
    """The ``TrustedRoot`` JSON (pure)."""
    return {
        "mediaType": MEDIA_TYPE,
        "tlogs": [log.document()] if log else [],
        "certificateAuthorities": [authority_entry(e, root_der) for e in issuing],
        "ctlogs": [],
        "timestampAuthorities": [authority_entry(tsa, root_der)] if tsa else [],
    }


def _log_entry(ctx: Context, session: Session, base: str) -> LogEntry | None:
    key = session.execute(select(LogKey).order_by(LogKey.id)).scalars().first()
    if key is None:
        return None
    signer = note_signer(ctx.keystores, key)
    der = load_public_key(key.public_key_pem).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return LogEntry(f"{base}/log", der, signer.key_id, key.created_at)


def trusted_root(ctx: Context, caller: Caller) -> dict[str, Any]:
    """The trusted root as ``caller`` may see it."""
    base = ctx.settings.public_url

    def run(session: Session, actor: Actor) -> dict[str, Any]:
        authority = root(session)
        if authority is None:
            raise NotFound("signgate has no root CA yet (run 'signgate serve' once)")
        root_der = authority_certificate(session, authority).der
        issuing = [
            Entry(authority_certificate(session, ca), base)
            for ca, name in session.execute(
                select(Authority, Project.name)
                .join(Project, Authority.project_id == Project.id)
                .order_by(Project.name)
            ).tuples()
            if decide.may_see(actor, name)
        ]
        tsa = tsa_authority(session)
        stamp = Entry(authority_certificate(session, tsa), f"{base}/tsa") if tsa else None
        return document(root_der, issuing, stamp, _log_entry(ctx, session, base))

    return ctx.read(caller, Target(Action.READ, "trusted root"), run)
