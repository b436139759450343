"""The transparency log's public routes: checkpoint, proofs, the log's key (no token)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from signgate.api.deps import Ctx
from signgate.service import log
from signgate.service.log import LogKeyView, ProofView

router = APIRouter(prefix="/log", tags=["log"])
NOTE_TYPE = "text/plain; charset=utf-8"
Size = Annotated[int, Query(ge=0, le=2**63 - 1)]


@router.get("/checkpoint", response_class=Response,
            responses={200: {"content": {NOTE_TYPE: {}}}})
def checkpoint(ctx: Ctx) -> Response:
    """The latest checkpoint (C2SP tlog-checkpoint) as a signed note (C2SP signed-note):
    signed by the log key, with the witnesses' cosignatures it has gathered."""
    return Response(log.checkpoint(ctx), media_type=NOTE_TYPE,
                    headers={"Cache-Control": "no-store"})


@router.get("/proof/inclusion")
def inclusion(ctx: Ctx, index: Size, size: Size) -> ProofView:
    """RFC 9162 inclusion proof of entry ``index`` (audit entry ``index + 1``) in the tree
    of ``size`` entries."""
    return log.inclusion(ctx, index, size)


@router.get("/proof/consistency")
def consistency(ctx: Ctx, old: Size, new: Size) -> ProofView:
    """RFC 9162 consistency proof from the tree of ``old`` entries to the tree of ``new``."""
    return log.consistency(ctx, old, new)


@router.get("/public-key")
def public_key(ctx: Ctx) -> LogKeyView:
    """The log's origin, its note verifier key string and its Ed25519 public key (PEM)."""
    return log.public_key(ctx)
