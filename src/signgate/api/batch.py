"""Batch signing over HTTP: ``POST /api/v1/projects/{p}/keys/{k}/sign-batch``.

One request carries up to 1,000 digests to sign with one key (a release's files); the
service decides each on its own and signs and records them all in one group commit
(``signing.sign_batch_async``). The answer is 200 with one outcome per item, in order:
``status`` 200 and ``result`` (the very body the single ``/sign`` route returns: receipt,
full audit entry and inclusion proof), 202 and ``request`` (a key with quorum approvals or
independent builders: the request that waits), or the refusal's status and ``problem``
(the RFC 9457 body the single route would answer with). A batch that is malformed as a
whole (not JSON, no items, more than 1,000, an item that does not fit the schema) is
answered 422 and nothing of it is signed or recorded; a caller whose token fails gets 401
(or 429) for the whole batch.

The answer is serialised by one pydantic adapter built at import, not by FastAPI's generic
encoder: with 100 receipts per request, rendering is a visible part of the per-item cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from pydantic import Field, TypeAdapter
from starlette.responses import Response

from signgate.api.deps import Ctx, Who
from signgate.api.problems import describe
from signgate.api.schemas import SignRequest, Strict
from signgate.errors import SigngateError
from signgate.service import sign_request, signing
from signgate.service.views import RequestView, SignResult

router = APIRouter(prefix="/api/v1")
MAX_ITEMS = signing.MAX_BATCH_ITEMS


class SignBatch(Strict):
    items: list[SignRequest] = Field(
        min_length=1, max_length=MAX_ITEMS,
        description=f"1 to {MAX_ITEMS} signings with this key, each what /sign takes")


@dataclass(frozen=True)
class BatchItem:
    """One item's outcome: exactly one of ``result``, ``request`` and ``problem``."""

    status: int  # 200 signed, 202 waiting for approvals or builders, else the refusal's
    result: SignResult | None = None
    request: RequestView | None = None
    problem: dict[str, Any] | None = None


@dataclass(frozen=True)
class BatchAnswer:
    results: list[BatchItem]
    signed: int
    pending: int
    refused: int


_ANSWER = TypeAdapter(BatchAnswer)


@router.post("/projects/{project}/keys/{key}/sign-batch", tags=["signing"],
             response_model=BatchAnswer)
async def sign_batch(project: str, key: str, body: SignBatch, ctx: Ctx,
                     caller: Who) -> Response:
    """Sign up to 1,000 digests with one key in one group commit; one outcome per item,
    in order (see the module docstring). Returns once every signature's audit entry is
    committed."""
    outcomes = await signing.sign_batch_async(ctx, [sign_request.SignRequest(
        caller, project, key, i.digest_algorithm, i.digest, i.artifact_name, i.metadata,
        i.timestamp, i.format, i.params, release=i.release) for i in body.items])
    return Response(_ANSWER.dump_json(render(outcomes)), media_type="application/json")


def render(outcomes: list[sign_request.SignOutcome | SigngateError]) -> BatchAnswer:
    items: list[BatchItem] = []
    signed = pending = 0
    for outcome in outcomes:
        if isinstance(outcome, SignResult):
            items.append(BatchItem(200, result=outcome))
            signed += 1
        elif isinstance(outcome, RequestView):
            items.append(BatchItem(202, request=outcome))
            pending += 1
        else:
            status, problem, _headers = describe(outcome)
            items.append(BatchItem(status, problem=problem))
    return BatchAnswer(items, signed, pending, len(items) - signed - pending)

