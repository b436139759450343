"""Step 3: the signing on the record, and the caller's receipt.

The audit entry (with what was signed, by whom, from where, the scan verdict, the
timestamp and one-time certificate) is appended in the batch's transaction; the signature
row and the version's counter are written with the batch's others (``Ledger``). Nothing
here is returned before the batch commits (``committer.py``).
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from typing import Any

from signgate.audit.model import Action, Outcome, Record
from signgate.service.pipeline.authorize import Authorized
from signgate.service.pipeline.produce import Produced
from signgate.service.pipeline.work import Work
from signgate.service.sign_request import SignRequest
from signgate.service.views import Receipt, SignResult
from signgate.store.models import signature_prefix


def record(work: Work, request: SignRequest, authorized: Authorized,
           produced: Produced, approval: dict[str, Any] | None = None,
           window: dict[str, object] | None = None) -> SignResult:
    """The signature's audit entry and row; ``approval``: the request and approvals it
    answers (quorum keys), listed in the entry and the receipt; ``window``: the release
    window it counts against (offline keys), named in the entry."""
    key, stamp, now = produced.key, produced.stamp, produced.signed_at
    digest = authorized.digest.hex()
    alg = authorized.digest_algorithm.value
    signature_id = str(uuid.uuid4())
    sig_hash = hashlib.sha256(produced.signature_value).digest()
    details: dict[str, object] = {
        "signature_id": signature_id, "key_version": key.version, "digest_algorithm": alg,
        "digest": digest, "format": produced.format, "signature_sha256": sig_hash.hex(),
    }
    address = request.caller.address
    if address:
        details["client"] = address
    meta = authorized.metadata
    if meta:
        details["metadata"] = meta
    if produced.certificate is not None:
        details["certificate_serial"] = produced.certificate.serial
        details["certificate_sha256"] = produced.certificate.sha256
    if stamp is not None:
        details["timestamp_serial"] = format(stamp.serial, "x")
        details["timestamp_time"] = stamp.gen_time.isoformat()
    scan_details = request.scan.details() if request.scan is not None else None
    if scan_details is not None:
        details["scan"] = scan_details
    federation = authorized.actor.federation
    oidc = federation.record() if federation is not None else None
    if oidc is not None:  # which CI job (issuer, repository, ref, workflow, run) asked
        details["oidc"] = oidc
    if approval is not None:
        details["approval"] = approval
    if window is not None:
        details["release_window"] = window
    actor = authorized.actor.name
    seq = work.ctx.record(work.session, Record(actor, Action.SIGN, Outcome.ALLOWED,
                                               request.artifact_name, request.project,
                                               key.ref, details), now)
    key.signatures += 1  # the next request of this batch sees it (rotation by count)
    # The row points at the entry and repeats none of it (store/models.py SignatureRecord).
    work.ledger.add(key.version_id, {
        "audit_seq": seq, "key_version_id": key.version_id,
        "identity_id": authorized.identity_id, "signed_at": now,
        "signature_prefix": signature_prefix(sig_hash),
        "timestamp_token": stamp.der if stamp else None,
    })
    receipt = Receipt(
        signature_id=signature_id, key=key.ref, key_version=key.version,
        algorithm=key.algorithm.value,
        rsa_padding=key.rsa_padding.value if key.algorithm.is_rsa else None,
        digest_algorithm=alg, digest=digest, artifact_name=request.artifact_name,
        format=produced.format, identity=actor, signed_at=now, audit_seq=seq,
        timestamp_serial=format(stamp.serial, "x") if stamp else None,
        timestamp_time=stamp.gen_time if stamp else None, scan=scan_details,
        approval=approval,
    )
    return SignResult(base64.b64encode(produced.signature).decode("ascii"), receipt,
                      base64.b64encode(stamp.der).decode("ascii") if stamp else None,
                      produced.certificate.pem if produced.certificate else None)

