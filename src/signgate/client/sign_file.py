"""Sign one file: the client half of the signing protocol, for every entry point.

The CLI, a Python script and any future front end (a gpg-compatible signer, a CI action)
sign a file the same way:

1. for a large file (or an upload), ask the key's sign policy first, so that a refusal
   comes before any hashing or uploading, and so that a key that requires a scan gets the
   file uploaded. A small file is hashed at once and its digest sent without asking (one
   round trip instead of two: the command line's fixed cost); if the key answers that it
   signs only what signgate scanned, the file is uploaded then;
2. let the format's client half ``prepare`` the file (the digest it signs, its parameters);
   a detached format whose file is uploaded skips this: the file is hashed as it is read
   for the upload, one read instead of two, and that digest is compared with the one
   signgate signed before anything is written;
3. sign: the digest only, or the whole file uploaded for signgate to scan and hash;
4. let the format ``finish``: write the detached signature, or rewrite the file;
5. write what has no other home: a one-time key's certificate (``OUT.pem``), a
   timestamp token that the format cannot embed (``OUT.tsr``) and the receipt's log
   inclusion proof (``OUT.proof``, C2SP tlog-proof: ``signgate log verify-receipt``).

Progress is reported through an optional callback, so that a command line can draw its
bars and a library user stays quiet.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm, RsaPadding
from signgate.errors import Conflict, Denied, ErrorCode, InvalidInput, SigngateError
from signgate.formats import registry as formats
from signgate.formats.base import Prepared as FormatPrepared
from signgate.formats.base import Progress, PublicKeyInfo
from signgate.formats.files import write_atomic
from signgate.formats.raw import DetachedDigest


class SigningApi(Protocol):
    """The calls of :class:`~signgate.client.client.SigngateClient` that signing a file
    makes (a protocol, so that this module does not import the client it serves)."""

    def public_key(self, ref: str, version: int | None = None) -> Any: ...

    def sign_policy(self, ref: str, artifact_name: str) -> Any: ...

    def sign_digest(self, ref: str, digest_algorithm: str, digest_hex: str, artifact_name: str,
                    metadata: dict[str, str] | None = None, timestamp: bool = False,
                    format: str = "raw", params: dict[str, str] | None = None,
                    release: str | None = None) -> Any: ...

    def sign_upload(self, ref: str, path: Path, request: dict[str, Any],
                    progress: Callable[[int], None] | None = None,
                    hasher: Any = None) -> Any: ...

    def sign_batch(self, ref: str, items: Sequence[Mapping[str, Any]]) -> Any: ...

    def get_request(self, request_id: str) -> Any: ...

class SigningPending(Exception):
    """The key needs approvals and the signing request is still waiting for them (not
    waited for, or not within the time given): ``request`` is the server's view of it."""

    def __init__(self, request: Mapping[str, Any], timed_out: bool = False) -> None:
        self.request = request
        self.timed_out = timed_out
        if request.get("state") == "awaiting_builders":
            super().__init__(f"signing request {request['request_id']} awaits independent "
                             f"builders ({len(request.get('builders', []))} of "
                             f"{request.get('builders_required')} agree so far)")
            return
        have = sum(1 for a in request.get("approvals", []) if a.get("decision") == "approve")
        super().__init__(f"signing request {request['request_id']} awaits approvals "
                         f"({have} of {request['required']}; expires "
                         f"{request['expires_at']})")


def is_request(answer: Mapping[str, Any]) -> bool:
    """Is a signing's answer the request that waits for approvals (HTTP 202)?"""
    return "request_id" in answer and "state" in answer and "signature" not in answer


POLL_FIRST = 0.5  # seconds between looks at a waiting request, growing to POLL_MAX
POLL_MAX = 5.0


def await_result(client: SigningApi, request: Mapping[str, Any], wait: float | None,
                 on_pending: Callable[[Mapping[str, Any]], None] | None = None,
                 ) -> Mapping[str, Any]:
    """The result of the held signing ``request`` once approved and signed (``wait``: at
    most so many seconds; None: not at all). Denied or expired: the server's error."""
    deadline = time.monotonic() + (wait or 0.0)
    delay = POLL_FIRST
    while True:
        state = request["state"]
        if state == "signed":
            if not request.get("result"):
                request = client.get_request(str(request["request_id"]))
            return dict(request["result"])
        if state == "denied":
            raise Denied(f"signing request {request['request_id']} was denied: "
                         f"{request.get('reason') or 'no reason given'}",
                         code=ErrorCode.REQUEST_DENIED)
        if state == "mismatch":
            raise Conflict(f"signing request {request['request_id']} was stopped: "
                           f"{request.get('reason') or 'builders disagree'}",
                           code=ErrorCode.BUILDER_MISMATCH)
        if state == "expired":
            raise Conflict(f"signing request {request['request_id']} expired at "
                           f"{request['expires_at']} without its approvals: sign again",
                           code=ErrorCode.REQUEST_EXPIRED)
        if on_pending is not None:
            on_pending(request)
        left = deadline - time.monotonic()
        if wait is None or left <= 0:
            raise SigningPending(request, timed_out=wait is not None)
        time.sleep(min(delay, left))
        delay = min(delay * 2, POLL_MAX)
        request = client.get_request(str(request["request_id"]))


# Given the stage ("hashing" or "uploading") and the file, a context around that stage's
# read of the file that yields the callback for the bytes read (or None for no progress).
ProgressFactory = Callable[[str, Path], AbstractContextManager[Progress | None]]


@dataclass(frozen=True)
class SignedFile:
    """What signing a file produced: the server's receipt and the files written."""

    receipt: Mapping[str, Any]
    format: str
    signature_path: Path  # the detached signature, or the signed file itself
    certificate_path: Path | None = None  # a one-time key's certificate (OUT.pem)
    timestamp_path: Path | None = None  # a timestamp the format does not embed (OUT.tsr)
    proof_path: Path | None = None  # the log's inclusion proof of the signing (OUT.proof)
    scan: Mapping[str, Any] | None = field(default=None)  # the scan, for an upload

    def summary(self) -> dict[str, Any]:
        """The receipt and where things went: what ``signgate sign --json`` prints."""
        extra: dict[str, str] = {"signature_file": str(self.signature_path),
                                 "format": self.format}
        if self.certificate_path is not None:
            extra["certificate_file"] = str(self.certificate_path)
        if self.timestamp_path is not None:
            extra["timestamp_file"] = str(self.timestamp_path)
        if self.proof_path is not None:
            extra["proof_file"] = str(self.proof_path)
        return dict(self.receipt) | extra


def no_progress(_stage: str, _path: Path) -> AbstractContextManager[Progress | None]:
    """The progress callback of a caller that shows none."""
    return nullcontext(None)


def _signed_what_was_sent(name: str, hasher: Any, receipt: Mapping[str, Any]) -> bytes:
    """The digest of the bytes uploaded, if it is the one signgate signed (else nothing is
    written: the signature would not be over this file)."""
    sent = hasher.hexdigest()
    signed = str(receipt.get("digest", ""))
    if not hmac.compare_digest(sent, signed.lower()):
        raise InvalidInput(f"{name}: signgate signed {hasher.name} {signed}, but the bytes "
                           f"uploaded hash to {sent}: they changed on the way; the "
                           "signature is not written", code=ErrorCode.DIGEST_MISMATCH)
    return bytes.fromhex(sent)


def current_key_info(client: SigningApi, ref: str, one_time: bool) -> PublicKeyInfo:
    """The key's current version, for formats whose signed data names the key."""
    if one_time:
        raise InvalidInput(f"{ref} is a one-time key: its key pair does not exist until it "
                           "signs, and this format must name the key before that; use "
                           "another format or key", code=ErrorCode.UNSUPPORTED_FORMAT)
    view = client.public_key(ref)
    return PublicKeyInfo(
        ref=ref, version=int(view["version"]), algorithm=KeyAlgorithm(view["algorithm"]),
        rsa_padding=RsaPadding(view["rsa_padding"]) if view.get("rsa_padding") else None,
        public_key_pem=str(view["public_key_pem"]),
        created_at=datetime.fromisoformat(view["created_at"]),
    )


def sign_file(client: SigningApi, path: Path, ref: str, fmt: str = "raw", *,
              digest: DigestAlgorithm = DigestAlgorithm.SHA256, output: Path | None = None,
              metadata: Mapping[str, str] | None = None, artifact_name: str | None = None,
              upload: bool = False, timestamp: bool = True,
              progress: ProgressFactory | None = None,
              on_scan: Callable[[Mapping[str, Any]], None] | None = None,
              wait: float | None = None,
              on_pending: Callable[[Mapping[str, Any]], None] | None = None,
              release: str | None = None,
              params: Mapping[str, str] | None = None) -> SignedFile:
    """Sign ``path`` with the key ``ref`` (PROJECT/NAME) in format ``fmt``.

    ``output`` defaults to ``path`` for formats that sign the file in place (authenticode,
    jar), else ``path`` plus the format's suffix. ``upload`` sends the whole file to be
    scanned and hashed by signgate even if the key does not require it. ``on_scan`` is
    called with the scan result of an upload, before the result is written. Refusals raise
    the :class:`~signgate.errors.SigngateError` the server raised.

    A key with quorum approvals answers with the request that waits for them: with
    ``wait`` (seconds) this polls it (``on_pending`` is told each time) and writes the
    result once signed, exactly as a direct signing; otherwise, or when the time is up,
    :class:`SigningPending` is raised. Asking again joins the same request.

    ``params``: the format's parameters that the caller chooses (sshsig's ``namespace``),
    sent with those the format's client half computes."""
    side = formats.client(fmt)
    progress = progress or no_progress
    name = artifact_name or path.name
    policy: Mapping[str, Any] | None = None
    if upload or _size(path) > ASK_FIRST_ABOVE:
        # Refused here exactly as the signing would be, before any hashing or uploading.
        policy = client.sign_policy(ref, name)
        upload = upload or bool(policy["scan_required"])

    def one_time() -> bool:
        nonlocal policy
        if policy is None:
            policy = client.sign_policy(ref, name)
        return bool(policy["one_time"])

    def hashed() -> FormatPrepared:
        with progress("hashing", path) as bar:
            return with_params(side.prepare(path, digest, bar,
                                            lambda: current_key_info(client, ref, one_time())),
                               params)

    prepared: FormatPrepared | None = None
    result: Any = None
    if not upload:
        prepared = hashed()
        # The format may have asked the policy while preparing (it names the key).
        upload = bool(policy is not None and policy["scan_required"])
        if not upload:
            try:
                result = client.sign_digest(ref, prepared.digest_algorithm.value,
                                            prepared.digest.hex(), name, dict(metadata or {}),
                                            timestamp, fmt, prepared.params, release)
            except SigngateError as exc:
                if exc.code is not ErrorCode.SCAN_REQUIRED:
                    raise
                upload = True  # the key signs only what signgate scanned: upload it
    hasher = None
    if upload:
        # A detached format not hashed yet signs the file's digest alone: the upload hashes
        # it on the way out. Otherwise the server compares its digest with the client's.
        if prepared is None and isinstance(side, DetachedDigest):
            hasher = hashlib.new(digest.value)
            request = signing_body(name, fmt, FormatPrepared(digest, b"", dict(params or {})),
                                   metadata, timestamp, release)
            del request["digest"]
        else:
            prepared = prepared or hashed()
            request = signing_body(name, fmt, prepared, metadata, timestamp, release)
        with progress("uploading", path) as bar:
            result = client.sign_upload(ref, path, request, bar, hasher)
    if is_request(result):
        result = await_result(client, result, wait, on_pending)
    if hasher is not None:
        prepared = FormatPrepared(digest, _signed_what_was_sent(name, hasher, result["receipt"]))
    assert prepared is not None
    scan: Mapping[str, Any] | None = None
    if upload:
        scan = result["receipt"].get("scan") or {}
        if on_scan is not None:
            on_scan(scan)
    out = output or default_output(path, fmt)
    return write_result(path, fmt, prepared, result, out, scan)


def with_params(prepared: FormatPrepared, params: Mapping[str, str] | None) -> FormatPrepared:
    """``prepared`` with the caller's format parameters added (the format's own win)."""
    if not params:
        return prepared
    return dataclasses.replace(prepared, params={**params, **prepared.params})


# Above this size a file is not hashed before the key's sign policy has been asked (a
# refusal should not wait for a long read); below it, hashing costs less than the round
# trip that asking first would add.
ASK_FIRST_ABOVE = 8 << 20


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc


def signing_body(name: str, fmt: str, prepared: FormatPrepared,
                 metadata: Mapping[str, str] | None, timestamp: bool,
                 release: str | None) -> dict[str, Any]:
    """The signing request of one file, as /sign, /sign-upload and /sign-batch take it."""
    request: dict[str, Any] = {"artifact_name": name, "format": fmt,
                               "digest_algorithm": prepared.digest_algorithm.value,
                               "digest": prepared.digest.hex(),
                               "metadata": dict(metadata or {}),
                               "params": prepared.params, "timestamp": timestamp}
    if release is not None:
        request["release"] = release
    return request


def default_output(path: Path, fmt: str) -> Path:
    """Where a signing of ``path`` goes without -o: the file itself for formats that sign
    in place, else beside it with the format's suffix."""
    side = formats.client(fmt)
    return path if side.embedded else path.with_name(path.name + side.suffix)


def write_result(path: Path, fmt: str, prepared: FormatPrepared, result: Mapping[str, Any],
                 out: Path, scan: Mapping[str, Any] | None = None) -> SignedFile:
    """Write a signing's ``result`` (the server's answer) for ``path``: the signature (or
    the signed file) at ``out``, and beside it what has no other home. Each file is written
    atomically."""
    side = formats.client(fmt)
    side.finish(path, prepared, base64.b64decode(result["signature"]), out)
    pem_path = tsr_path = None
    if result.get("certificate"):  # one-time key: the only place its certificate lives
        pem_path = out.with_name(out.name + ".pem")
        write_atomic(pem_path, result["certificate"].encode("ascii"))
    if result.get("timestamp") and not formats.builder(fmt).embeds_timestamp:
        tsr_path = out.with_name(out.name + ".tsr")
        write_atomic(tsr_path, base64.b64decode(result["timestamp"]))
    proof_path = None
    if result.get("log_proof"):  # the receipt that verifies offline, whatever the format
        proof_path = out.with_name(out.name + ".proof")
        write_atomic(proof_path, result["log_proof"].encode("utf-8"))
    return SignedFile(receipt=result["receipt"], format=fmt, signature_path=out,
                      certificate_path=pem_path, timestamp_path=tsr_path,
                      proof_path=proof_path, scan=scan)
