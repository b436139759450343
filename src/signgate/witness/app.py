"""The witness's HTTP interface (c2sp.org/tlog-witness).

- ``POST /add-checkpoint``: check, persist, then answer the cosignature line;
- ``GET /<sha256(origin) hex>/checkpoint``: the latest cosigned checkpoint of a log, with
  the log's signature and the witness's cosignature (the monitoring API).

Errors become the statuses the spec prescribes here and nowhere else, each with a one-line
plain-text reason (409: the witness's size, as ``text/x.tlog.size``).
"""

from __future__ import annotations

import re

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse, Response

from signgate.errors import (
    Conflict,
    ErrorCode,
    InvalidInput,
    NotFound,
    SigngateError,
    VerificationFailed,
)
from signgate.transparency.note import Signature, sign_note
from signgate.transparency.witness_protocol import (
    MAX_BODY,
    SIZE_CONTENT_TYPE,
    format_cosignatures,
    format_size,
    parse_add_checkpoint,
)
from signgate.witness import decide
from signgate.witness.store import LogState, WitnessStore

NOTE_TYPE = "text/plain; charset=utf-8"
_ORIGIN_HASH = re.compile(r"[0-9a-f]{64}")


def status_of(exc: SigngateError) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Conflict):
        return 409
    if isinstance(exc, VerificationFailed):
        return 422 if exc.code == ErrorCode.BAD_MERKLE_PROOF else 403
    if isinstance(exc, InvalidInput):
        return 400
    return 500


def create_app(store: WitnessStore) -> FastAPI:
    """The witness app over ``store`` (opened: key and config exist)."""
    app = FastAPI(title="signgate witness", docs_url=None, redoc_url=None, openapi_url=None)
    cosigner = store.cosigner()

    def add_checkpoint(body: bytes) -> bytes:
        request = parse_add_checkpoint(body)
        origin = decide.origin_of(request).origin
        # Check and persist under the directory's lock: two requests never both pass the
        # old-size check against the same state (the rollback race of the spec).
        with store.locked():
            latest = store.state(origin)
            checkpoint, note = decide.check(request, store.log_verifiers(origin),
                                            latest.checkpoint if latest else None)
            cosignature = Signature(cosigner.name, cosigner.key_id,
                                    cosigner.sign(checkpoint.text.encode()))
            kept = sign_note(checkpoint.text, [], [*note.signatures, cosignature])
            store.save_state(LogState(checkpoint, kept))
        return format_cosignatures([cosignature])

    @app.post("/add-checkpoint")
    async def add_checkpoint_route(request: Request) -> Response:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return PlainTextResponse("request body too large\n", status_code=413)
        try:
            # Signing, the lock and fsync block: off the event loop.
            answer = await run_in_threadpool(add_checkpoint, bytes(body))
        except SigngateError as exc:
            status = status_of(exc)
            if status == 409:
                # Exactly the spec's type: media_type would add "; charset=utf-8".
                return Response(format_size(int(exc.details["size"])), status_code=409,
                                headers={"Content-Type": SIZE_CONTENT_TYPE})
            return PlainTextResponse(f"{exc}\n", status_code=status)
        return Response(answer, status_code=200, media_type=NOTE_TYPE)

    @app.get("/{origin_hash}/checkpoint")
    def checkpoint_route(origin_hash: str) -> Response:
        if _ORIGIN_HASH.fullmatch(origin_hash):
            for origin in store.logs():
                if decide.origin_hash(origin) == origin_hash:
                    state = store.state(origin)
                    if state is not None:
                        return Response(state.note, media_type=NOTE_TYPE,
                                         headers={"Cache-Control": "no-store"})
        return PlainTextResponse("no checkpoint cosigned for this log\n", status_code=404)

    return app
