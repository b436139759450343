"""Keys: the inventory (``keys.list_keys``), a page per key (``keys.show``, with its
versions' stores, HSM attributes and certificates), and for admins of the key its
rotation, disabling, enabling and revocation (with a confirmation step), after which the
page lists what the key signed since the compromise (``blast_radius``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Path, Query
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from signgate.clock import parse_time
from signgate.errors import InvalidInput, NotFound
from signgate.policy import decide
from signgate.service import blast_radius, certificates, keys
from signgate.service.views import CertificateChainView, KeyView
from signgate.web.render import page
from signgate.web.routing import WebRoute
from signgate.web.session import PATH, Console, signed_in

router = APIRouter(route_class=WebRoute, include_in_schema=False)
Signed = Annotated[Console, Depends(signed_in)]
Project = Annotated[str, Path(min_length=1, max_length=63)]
Name = Annotated[str, Path(min_length=1, max_length=63)]


def next_rotation(k: KeyView) -> str:
    """When the rotation policy next rotates the key ("" without one)."""
    if not k.rotate_every_days:
        return ""
    current = next((v for v in k.versions if v.current), None)
    if current is None:
        return ""
    return (current.created_at + timedelta(days=k.rotate_every_days)).isoformat(
        timespec="seconds")


def _may_manage(console: Console, project: str, name: str) -> bool:
    return decide.may_manage(console.me.actor, project, name).allowed


@router.get("/keys")
def key_list(request: Request, console: Signed,
             project: Annotated[str, Query(max_length=63)] = "") -> Response:
    found = keys.list_keys(console.ctx, console.caller, project.strip() or None)
    return page(request, "keys.html", keys=found, project=project,
                due={k.ref: next_rotation(k) for k in found})


def _certificate(console: Console, ref: str, version: int) -> CertificateChainView | None:
    try:
        return certificates.version_certificate(console.ctx, console.caller, ref, version)
    except NotFound:
        return None


@router.get("/keys/{project}/{name}")
def key_page(request: Request, console: Signed, project: Project, name: Name) -> Response:
    ref = f"{project}/{name}"
    k = keys.show(console.ctx, console.caller, ref)
    certs = {v.version: _certificate(console, ref, v.version) for v in k.versions}
    return page(request, "key.html", k=k, certs=certs, due=next_rotation(k),
                admin=_may_manage(console, project, name))


def _back(project: str, name: str) -> Response:
    return RedirectResponse(f"{PATH}keys/{project}/{name}", 303)


@router.post("/keys/{project}/{name}/rotate")
def key_rotate(console: Signed, project: Project, name: Name) -> Response:
    keys.rotate(console.ctx, console.caller, f"{project}/{name}")
    return _back(project, name)


@router.post("/keys/{project}/{name}/disable")
def key_disable(console: Signed, project: Project, name: Name) -> Response:
    keys.disable(console.ctx, console.caller, f"{project}/{name}")
    return _back(project, name)


@router.post("/keys/{project}/{name}/enable")
def key_enable(console: Signed, project: Project, name: Name) -> Response:
    keys.enable(console.ctx, console.caller, f"{project}/{name}")
    return _back(project, name)


@router.get("/keys/{project}/{name}/revoke")
def key_revoke_form(request: Request, console: Signed, project: Project,
                    name: Name) -> Response:
    """The confirmation step: when the key was compromised, why, and its name typed."""
    k = keys.show(console.ctx, console.caller, f"{project}/{name}")
    return page(request, "revoke.html", k=k, error=None, compromised_at="", reason="")


@router.post("/keys/{project}/{name}/revoke")
def key_revoke(request: Request, console: Signed, project: Project, name: Name,
               compromised_at: Annotated[str, Form(max_length=40)] = "",
               reason: Annotated[str, Form(max_length=1000)] = "",
               confirm: Annotated[str, Form(max_length=127)] = "") -> Response:
    ref = f"{project}/{name}"
    if confirm.strip() != ref:
        k = keys.show(console.ctx, console.caller, ref)
        return page(request, "revoke.html", 400, k=k, compromised_at=compromised_at,
                    reason=reason, error=f"Type {ref} to confirm the revocation.")
    if not compromised_at.strip():
        raise InvalidInput("give the time the key was compromised")
    when = parse_time(compromised_at)
    keys.revoke(console.ctx, console.caller, ref, when, reason.strip() or None)
    return RedirectResponse(
        f"{PATH}keys/{project}/{name}/blast-radius?{urlencode({'since': when.isoformat()})}",
        303)


@router.get("/keys/{project}/{name}/blast-radius")
def key_blast_radius(request: Request, console: Signed, project: Project, name: Name,
                     since: Annotated[str, Query(min_length=1, max_length=40)]) -> Response:
    ref = f"{project}/{name}"
    result = blast_radius.blast_radius(console.ctx, console.caller, ref, parse_time(since))
    return page(request, "blast_radius.html", ref=ref, project=project, name=name,
                result=result)
