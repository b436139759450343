"""Scanning: artifact uploads (scan, or scan and sign), and the hash deny-list.

Uploads stream the artifact as the raw request body (``application/octet-stream``) to
signgate's spool directory: no JSON body limit applies to them, ``scan_max_bytes`` does.
They must declare their length, and are admitted (signer grant, uploads in flight per
identity, spool budget: see ``service/spool.py``) before anything is read. The signing
request that goes with an upload travels in the ``Signgate-Sign`` header as JSON.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import Field, StrictBool, ValidationError
from starlette.responses import JSONResponse

from signgate.api.deps import Ctx, Who
from signgate.api.requests import PENDING, outcome
from signgate.api.schemas import Strict
from signgate.errors import InvalidInput
from signgate.service import denylist, scanning
from signgate.service.views import DenyListView, SignResult

router = APIRouter(prefix="/api/v1")
SIGN_UPLOAD = "/projects/{project}/keys/{key}/sign-upload"


def is_upload(path: str) -> bool:
    return path == "/api/v1/scan" or (path.startswith("/api/v1/projects/")
                                      and path.endswith("/sign-upload"))


class DenyListAdd(Strict):
    sha256: str = Field(max_length=64, description="SHA-256 of the artifact, hex")
    reason: str = Field(max_length=500)


class UploadSignRequest(Strict):
    """The ``Signgate-Sign`` header of an upload: a SignRequest whose digest is optional
    (signgate computes its own from the uploaded bytes; a client's is only compared)."""

    artifact_name: str = Field(max_length=1024)
    format: str = Field("raw", max_length=16)
    digest_algorithm: str = Field("sha256", max_length=16)
    digest: str | None = Field(None, max_length=128)
    metadata: dict[str, str] = Field(default_factory=dict)
    params: dict[str, str] = Field(default_factory=dict)
    timestamp: StrictBool = False
    release: str | None = Field(None, max_length=128)


def _declared(request: Request) -> int | None:
    value = request.headers.get("content-length")
    return int(value) if value is not None and value.isdigit() else None


@router.post(SIGN_UPLOAD, tags=["signing", "scanning"], response_model=SignResult,
             responses=PENDING)
async def sign_upload(project: str, key: str, request: Request, ctx: Ctx, caller: Who,
                      signgate_sign: Annotated[str, Header(max_length=32768)],
                      ) -> SignResult | JSONResponse:
    """Upload the artifact itself (the raw body) to have signgate scan it, compute what
    its format signs from it and sign that: required for keys with ``scan required``."""
    try:
        body = UploadSignRequest.model_validate_json(signgate_sign)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'header'}: {e['msg']}"
                             for e in exc.errors())
        raise InvalidInput(f"bad Signgate-Sign header: {problems}") from None
    return outcome(await scanning.sign_upload(
        ctx, caller, f"{project}/{key}",
        scanning.UploadSign(body.artifact_name, body.format, body.digest_algorithm,
                            body.digest, body.metadata, body.params, body.timestamp,
                            body.release),
        request.stream(), _declared(request)))


@router.post("/scan", tags=["scanning"])
async def scan(request: Request, ctx: Ctx, caller: Who,
               name: Annotated[str, Query(max_length=1024)] = "artifact",
               ) -> scanning.ScanReport:
    """Scan the uploaded artifact (the raw body) without signing it: the verdict of every
    scanner and the deny-list. Recorded in the audit log."""
    return await scanning.scan_upload(ctx, caller, name, request.stream(), _declared(request))


@router.get("/deny-list", tags=["scanning"])
def list_denied(ctx: Ctx, caller: Who) -> list[DenyListView]:
    return denylist.list_entries(ctx, caller)


@router.post("/deny-list", tags=["scanning"], status_code=201)
def add_denied(body: DenyListAdd, ctx: Ctx, caller: Who) -> DenyListView:
    return denylist.add(ctx, caller, body.sha256, body.reason)


@router.delete("/deny-list/{sha256}", tags=["scanning"], status_code=204,
               response_class=Response)
def remove_denied(sha256: str, ctx: Ctx, caller: Who) -> Response:
    denylist.remove(ctx, caller, sha256)
    return Response(status_code=204)
