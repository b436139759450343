"""The RFC 3161 time-stamp authority over HTTP (RFC 3161 §3.4) and its certificate.

``POST /tsa`` takes a DER ``TimeStampReq`` as the raw body (``application/timestamp-query``;
other content types are accepted, since clients differ) and answers a DER
``TimeStampResp`` (``application/timestamp-reply``). It needs **no token**: time-stamp
clients such as osslsigncode, signtool and jarsigner cannot send one, and a time-stamp
discloses nothing but the time and the digest its requester already had. Every answer,
granted or not, is in the audit log.

Status codes: 200 for a granted token and for an RFC 3161 rejection of a well-formed but
unacceptable request (bad algorithm, policy, ...); 400 (with a rejection body) for a body
that is not a ``TimeStampReq``; 413 (with a rejection body) for a body over 64 KiB; 503
(with a ``systemFailure`` rejection body) when the token cannot be signed and recorded.

``GET /api/v1/ca/tsa-certificate`` (authenticated, like every /api/v1 route) returns the
TSA certificate and the root's, for verifiers.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from signgate.api.deps import Ctx, Who
from signgate.pki import tsa as rfc3161
from signgate.service import tsa
from signgate.service.views import CertificateChainView

log = logging.getLogger("signgate.api")

PATH = "/tsa"
MAX_REQUEST_BYTES = 64 * 1024
QUERY = "application/timestamp-query"
REPLY = "application/timestamp-reply"

router = APIRouter()


def _reply(der: bytes, status: int) -> Response:
    return Response(der, status_code=status, media_type=REPLY)


async def _read_limited(request: Request) -> bytes | None:
    """The body, or None once it passes :data:`MAX_REQUEST_BYTES` (a declared length over
    it is refused before anything is read)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_REQUEST_BYTES:
            return None
    return bytes(body)


@router.post(
    PATH, tags=["tsa"], response_class=Response,
    openapi_extra={"requestBody": {"required": True,
                                   "content": {QUERY: {"schema": {"type": "string",
                                                                  "format": "binary"}}}}},
    responses={200: {"content": {REPLY: {}},
                     "description": "A TimeStampResp: granted, or an RFC 3161 rejection"},
               400: {"content": {REPLY: {}}, "description": "Not a TimeStampReq"},
               413: {"content": {REPLY: {}}, "description": "Request over 64 KiB"},
               503: {"content": {REPLY: {}}, "description": "Cannot sign or record now"}},
)
async def timestamp(request: Request, ctx: Ctx) -> Response:
    """RFC 3161 time-stamping. No token needed (time-stamp clients cannot send one)."""
    client = request.client.host if request.client else None
    body = await _read_limited(request)
    try:
        if body is None:
            text = f"a TimeStampReq is at most {MAX_REQUEST_BYTES} bytes"
            await run_in_threadpool(tsa.record_rejection, ctx,
                                    rfc3161.FailureInfo.BAD_REQUEST, text, client)
            return _reply(rfc3161.reject(rfc3161.FailureInfo.BAD_REQUEST, text), 413)
        answer = await run_in_threadpool(tsa.timestamp, ctx, body, client)
    except Exception as exc:  # an outage, a key store failure: never a 500 without a reply
        log.error("time-stamp failed: %s", type(exc).__name__, exc_info=exc)
        failure = rfc3161.reject(rfc3161.FailureInfo.SYSTEM_FAILURE,
                                 "the time-stamp could not be issued; try again later")
        return _reply(failure, 503)
    return _reply(answer.der, 400 if answer.malformed else 200)


@router.get("/api/v1/ca/tsa-certificate", tags=["pki"])
def tsa_certificate(ctx: Ctx, caller: Who) -> CertificateChainView:
    """The time-stamp authority's certificate, then the root CA's."""
    return tsa.tsa_certificate(ctx, caller)
