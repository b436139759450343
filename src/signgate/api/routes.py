"""Routes under /api/v1: each parses its input, calls one service function, returns its view."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.responses import JSONResponse, StreamingResponse

from signgate.api import progress
from signgate.api.deps import Ctx, Who
from signgate.api.requests import PENDING, outcome
from signgate.api.schemas import (
    CertificateImport,
    GrantBody,
    IdentityCreate,
    KeyCreate,
    KeyRevoke,
    KeyRotate,
    OidcExchange,
    OidcIssuerCreate,
    ProjectCreate,
    ScanPolicyBody,
    SignRequest,
    VerifyRequest,
)
from signgate.errors import InvalidInput
from signgate.policy.model import check_name
from signgate.service import (
    audit,
    blast_radius,
    certificates,
    grants,
    identities,
    keys,
    oidc,
    openpgp,
    projects,
    reports,
    signing,
    trusted_root,
)
from signgate.service.blast_radius import BlastRadius
from signgate.service.views import (
    AuditPage,
    AuditVerifyView,
    CertificateChainView,
    GrantView,
    IdentityView,
    IdentityWithToken,
    KeyView,
    OidcIssuerView,
    OidcTokenView,
    ProjectView,
    PublicKeyView,
    SignaturePage,
    SignatureTotals,
    SignPolicyView,
    SignResult,
    VerifyResult,
    WhoAmI,
)

router = APIRouter(prefix="/api/v1")
public = APIRouter()  # no token: verifiers fetch CRLs anonymously
KEY = "/projects/{project}/keys/{key}"


@router.get("/whoami", tags=["identities"])
def whoami(ctx: Ctx, caller: Who) -> WhoAmI:
    return identities.whoami(ctx, caller)


@router.post("/projects", status_code=201, tags=["projects"])
def create_project(body: ProjectCreate, ctx: Ctx, caller: Who) -> ProjectView:
    return projects.create(ctx, caller, body.name)


@router.get("/projects", tags=["projects"])
def list_projects(ctx: Ctx, caller: Who) -> list[ProjectView]:
    return projects.list_projects(ctx, caller)


@router.get("/projects/{project}", tags=["projects"])
def show_project(project: str, ctx: Ctx, caller: Who) -> ProjectView:
    return projects.show(ctx, caller, project)


@router.post("/projects/{project}/keys", status_code=201, tags=["keys"])
def create_key(project: str, body: KeyCreate, ctx: Ctx, caller: Who) -> KeyView:
    return keys.create(ctx, caller, f"{project}/{body.name}", body.algorithm, body.rsa_padding,
                       body.rotate_every_days, body.max_signatures, body.cert_validity_days,
                       body.require_timestamp, body.one_time, body.scan, body.store)


@router.get(KEY + "/certificate", tags=["keys", "pki"])
def key_certificate(
    project: str, key: str, ctx: Ctx, caller: Who,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> CertificateChainView:
    """The code-signing certificate of a key version, with its issuing CA's certificate."""
    return certificates.version_certificate(ctx, caller, f"{project}/{key}", version)


@router.post(KEY + "/csr", tags=["keys", "pki"])
def key_csr(
    project: str, key: str, ctx: Ctx, caller: Who,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> certificates.CsrView:
    """A PKCS#10 request for a key version, signed through the key store (for another CA)."""
    return certificates.csr(ctx, caller, f"{project}/{key}", version)


@router.post(KEY + "/openpgp", tags=["keys", "signing"])
def key_openpgp(
    project: str, key: str, ctx: Ctx, caller: Who,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    user_id: Annotated[str | None, Query(max_length=1024)] = None,
) -> openpgp.OpenPgpKeyView:
    """The key version as an armored OpenPGP public key, self-certified through the key
    store (a signing: needs a signer grant, and is audited)."""
    return openpgp.export_key(ctx, caller, f"{project}/{key}", version, user_id)


@router.post(KEY + "/certificate", status_code=201, tags=["keys", "pki"])
def import_certificate(project: str, key: str, body: CertificateImport, ctx: Ctx,
                       caller: Who) -> CertificateChainView:
    """Attach a chain issued by another CA; checked against the key and for codeSigning."""
    return certificates.import_chain(ctx, caller, f"{project}/{key}", body.chain_pem,
                                     body.version)


@router.get("/ca/certificate", tags=["pki"])
def ca_certificate(ctx: Ctx, caller: Who) -> CertificateChainView:
    """signgate's root CA certificate: the trust anchor for verifiers."""
    return certificates.root_certificate(ctx, caller)


@router.get("/ca/trusted-root", tags=["pki"])
def ca_trusted_root(ctx: Ctx, caller: Who) -> dict[str, object]:
    """signgate's CAs and TSA as a Sigstore trusted_root.json, for offline verification of
    Sigstore bundles (projects the caller may see)."""
    return trusted_root.trusted_root(ctx, caller)


@router.get("/keys", tags=["keys"])
def list_keys(ctx: Ctx, caller: Who, project: str | None = None) -> list[KeyView]:
    return keys.list_keys(ctx, caller, project)


@router.get(KEY, tags=["keys"])
def show_key(project: str, key: str, ctx: Ctx, caller: Who) -> KeyView:
    return keys.show(ctx, caller, f"{project}/{key}")


@router.get(KEY + "/public", tags=["keys"])
def public_key(
    project: str, key: str, ctx: Ctx, caller: Who,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> PublicKeyView:
    return keys.public(ctx, caller, f"{project}/{key}", version)


@router.post(KEY + "/rotate", tags=["keys"])
def rotate_key(project: str, key: str, ctx: Ctx, caller: Who,
               body: KeyRotate | None = None) -> KeyView:
    return keys.rotate(ctx, caller, f"{project}/{key}", body.store if body else None)


@router.post(KEY + "/scan-policy", tags=["keys", "scanning"])
def set_scan_policy(project: str, key: str, body: ScanPolicyBody, ctx: Ctx,
                    caller: Who) -> KeyView:
    """Whether this key signs only artifacts signgate scanned clean itself."""
    return keys.set_scan_policy(ctx, caller, f"{project}/{key}", body.scan)


@router.post(KEY + "/disable", tags=["keys"])
def disable_key(project: str, key: str, ctx: Ctx, caller: Who) -> KeyView:
    return keys.disable(ctx, caller, f"{project}/{key}")


@router.post(KEY + "/enable", tags=["keys"])
def enable_key(project: str, key: str, ctx: Ctx, caller: Who) -> KeyView:
    return keys.enable(ctx, caller, f"{project}/{key}")


@router.post(KEY + "/revoke", tags=["keys"])
def revoke_key(project: str, key: str, body: KeyRevoke, ctx: Ctx, caller: Who) -> KeyView:
    from signgate.clock import parse_time

    when = parse_time(body.compromised_at.isoformat())
    return keys.revoke(ctx, caller, f"{project}/{key}", when, body.reason)


@router.get(KEY + "/blast-radius", tags=["keys"], response_model=BlastRadius)
def key_blast_radius(project: str, key: str, since: datetime, ctx: Ctx, caller: Who,
                     request: Request) -> BlastRadius | StreamingResponse:
    """What the key signed at or after ``since``, with each entry's inclusion proof in the
    log's newest checkpoint (auditor grant over the key). With ``Accept:
    application/x-ndjson``, progress lines and then the result (api/progress.py)."""
    from signgate.clock import parse_time

    ref, when = f"{project}/{key}", parse_time(since.isoformat())
    if progress.wants_stream(request):
        return progress.stream(lambda tell: blast_radius.blast_radius(ctx, caller, ref, when,
                                                                      tell))
    return blast_radius.blast_radius(ctx, caller, ref, when)


@router.post(KEY + "/sign", tags=["signing"], response_model=SignResult,
             responses=PENDING)
async def sign(project: str, key: str, body: SignRequest, ctx: Ctx,
               caller: Who) -> SignResult | JSONResponse:
    """Sign a digest. Returns once the signature's audit entry is committed; for a key with
    quorum approvals, 202 and the request that waits for them."""
    return outcome(await signing.sign_async(ctx, body.to_service(caller, project, key)))


@router.get(KEY + "/sign-policy", tags=["signing"])
def sign_policy(project: str, key: str, ctx: Ctx, caller: Who,
                artifact_name: Annotated[str, Query(max_length=1024)] = "") -> SignPolicyView:
    """Before hashing or uploading: may the caller sign with this key, and must the
    artifact be uploaded for scanning? Refused exactly as the signing would be."""
    return signing.sign_policy(ctx, caller, f"{project}/{key}", artifact_name)


@router.post(KEY + "/verify", tags=["signing"])
def verify(project: str, key: str, body: VerifyRequest, ctx: Ctx, caller: Who) -> VerifyResult:
    return signing.verify(ctx, caller, f"{project}/{key}", body.digest_algorithm, body.digest,
                          body.signature)


@router.post("/identities", status_code=201, tags=["identities"])
def create_identity(body: IdentityCreate, ctx: Ctx, caller: Who) -> IdentityWithToken:
    return identities.create(ctx, caller, body.name, body.kind)


@router.get("/identities", tags=["identities"])
def list_identities(ctx: Ctx, caller: Who) -> list[IdentityView]:
    return identities.list_identities(ctx, caller)


@router.post("/identities/{name}/disable", tags=["identities"])
def disable_identity(name: str, ctx: Ctx, caller: Who) -> IdentityView:
    return identities.set_enabled(ctx, caller, name, False)


@router.post("/identities/{name}/enable", tags=["identities"])
def enable_identity(name: str, ctx: Ctx, caller: Who) -> IdentityView:
    return identities.set_enabled(ctx, caller, name, True)


@router.post("/identities/{name}/rotate-token", tags=["identities"])
def rotate_token(name: str, ctx: Ctx, caller: Who) -> IdentityWithToken:
    return identities.rotate_token(ctx, caller, name)


@router.post("/grants", status_code=201, tags=["grants"])
def add_grant(body: GrantBody, ctx: Ctx, caller: Who) -> GrantView:
    """To an identity, or (``oidc`` and ``claims``) to an OIDC issuer's tokens whose claims
    match."""
    if body.oidc is not None:
        _only_one(body.identity)
        return grants.add_oidc(ctx, caller, body.oidc, body.claims, body.role, body.scope)
    return grants.add(ctx, caller, _identity(body.identity, body.claims), body.role,
                      body.scope)


@router.delete("/grants", tags=["grants"])
def remove_grant(
    ctx: Ctx, caller: Who,
    role: Annotated[str, Query(max_length=16)],
    scope: Annotated[str, Query(max_length=127)],
    identity: Annotated[str | None, Query(max_length=63)] = None,
    oidc: Annotated[str | None, Query(max_length=63)] = None,
    claim: Annotated[list[str] | None, Query(max_length=600)] = None,
) -> GrantView:
    """An identity's grant, or an OIDC grant named by the same issuer, claims (repeat
    ``claim``), role and scope it was added with."""
    if oidc is not None:
        _only_one(identity)
        return grants.remove_oidc(ctx, caller, oidc, claim or [], role, scope)
    return grants.remove(ctx, caller, _identity(identity, claim or []), role, scope)


def _only_one(identity: str | None) -> None:
    if identity is not None:
        raise InvalidInput("a grant goes to an identity or to an OIDC issuer's tokens, "
                           "not both")


def _identity(identity: str | None, claims: list[str]) -> str:
    if identity is None:
        raise InvalidInput("a grant needs an identity, or an OIDC issuer (oidc) and claims")
    if claims:
        raise InvalidInput("claims bind OIDC grants only: name the issuer (oidc)")
    return identity


@router.post("/oidc/issuers", status_code=201, tags=["oidc"])
def add_oidc_issuer(body: OidcIssuerCreate, ctx: Ctx, caller: Who) -> OidcIssuerView:
    """Trust an OIDC issuer's tokens (global admins); its JWKS URL defaults to the
    ``jwks_uri`` of its discovery document."""
    return oidc.add_issuer(ctx, caller, body.name, body.issuer, body.audience, body.jwks_url)


@router.get("/oidc/issuers", tags=["oidc"])
def list_oidc_issuers(ctx: Ctx, caller: Who) -> list[OidcIssuerView]:
    return oidc.list_issuers(ctx, caller)


@router.delete("/oidc/issuers/{name}", tags=["oidc"])
def remove_oidc_issuer(name: str, ctx: Ctx, caller: Who) -> OidcIssuerView:
    """Stop trusting the issuer: its grants and unexpired tokens go at once."""
    return oidc.remove_issuer(ctx, caller, name)


@router.post("/oidc/token", tags=["oidc"])
def exchange_oidc_token(body: OidcExchange, ctx: Ctx, caller: Who) -> OidcTokenView:
    """A short-lived signgate token for a CI job's OIDC token (no signgate token needed:
    the CI token is the credential). Every refusal is recorded and answers 401 with its
    reason, or 503 when the issuer's keys cannot be fetched."""
    return oidc.exchange(ctx, body.token, caller.address)


@router.get("/grants", tags=["grants"])
def list_grants(
    ctx: Ctx, caller: Who, identity: Annotated[str | None, Query(max_length=63)] = None
) -> list[GrantView]:
    return grants.list_grants(ctx, caller, identity)


@router.get("/audit", tags=["audit"])
def audit_log(
    ctx: Ctx,
    caller: Who,
    identity: Annotated[str | None, Query(max_length=63)] = None,
    key: Annotated[str | None, Query(max_length=127)] = None,
    action: Annotated[str | None, Query(max_length=40)] = None,
    project: Annotated[str | None, Query(max_length=63)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=audit.MAX_PAGE)] = 1000,
    outcome: Annotated[str | None, Query(max_length=16)] = None,
) -> AuditPage:
    from signgate.clock import parse_time

    q = audit.AuditQuery(
        identity=identity, key=key, action=action, project=project,
        since=parse_time(since.isoformat()) if since else None,
        until=parse_time(until.isoformat()) if until else None,
        after=after, limit=limit, outcome=outcome,
    )
    return audit.query(ctx, caller, q)


@router.get("/audit/verify", tags=["audit"], response_model=AuditVerifyView)
def audit_verify(ctx: Ctx, caller: Who, request: Request,
                 response: Response) -> AuditVerifyView | StreamingResponse:
    """Recompute the chain and the log's tree. With ``Accept: application/x-ndjson``, a
    stream of progress lines and then the result (api/progress.py): a million entries take
    longer than a client waits for one answer."""
    if progress.wants_stream(request):
        return progress.stream(lambda tell: audit.verify(ctx, caller, tell))
    result = audit.verify(ctx, caller)
    if not result.ok:
        response.headers["X-Signgate-Audit"] = "broken"
    return result


def _signature_query(
    project: Annotated[str | None, Query(max_length=63)] = None,
    key: Annotated[str | None, Query(max_length=127)] = None,
    identity: Annotated[str | None, Query(max_length=63)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=reports.MAX_PAGE)] = 1000,
    format: Annotated[str | None, Query(max_length=40)] = None,
    outcome: Literal["allowed", "refused"] = "allowed",
) -> reports.SignatureQuery:
    from signgate.clock import parse_time

    return reports.SignatureQuery(
        project=project, key=key, identity=identity,
        since=parse_time(since.isoformat()) if since else None,
        until=parse_time(until.isoformat()) if until else None, after=after, limit=limit,
        format=format or None, outcome=outcome)


SignatureFilters = Annotated[reports.SignatureQuery, Depends(_signature_query)]


@router.get("/reports/signatures", tags=["audit"])
def signature_report(ctx: Ctx, caller: Who, q: SignatureFilters) -> SignaturePage:
    """Who signed what, when, with which key: one row per signature, oldest first, in
    pages (``after`` = the previous page's ``next_after``); scoped like the audit log."""
    return reports.signatures(ctx, caller, q)


@router.get("/reports/signatures/totals", tags=["audit"])
def signature_totals(ctx: Ctx, caller: Who, q: SignatureFilters) -> SignatureTotals:
    """Signatures per key and per identity, under the same filters as the report."""
    return reports.totals(ctx, caller, q)


CRL_MEDIA_TYPE = "application/pkix-crl"


@public.get("/crl/{project}.crl", tags=["pki"], response_class=Response,
            responses={200: {"content": {CRL_MEDIA_TYPE: {}}}})
def project_crl(project: str, ctx: Ctx) -> Response:
    """The CRL (DER) of a project's issuing CA; re-issued before its nextUpdate."""
    check_name("project", project)
    return Response(certificates.current_crl(ctx, project), media_type=CRL_MEDIA_TYPE)


@public.get("/ca/root.crl", tags=["pki"], response_class=Response,
            responses={200: {"content": {CRL_MEDIA_TYPE: {}}}})
def root_crl(ctx: Ctx) -> Response:
    """The root CA's CRL (DER): revoked issuing CAs."""
    return Response(certificates.current_crl(ctx, None), media_type=CRL_MEDIA_TYPE)
