"""Identities and grants: the identities (global admins; ``identities.list_identities``)
with when their token was last rotated (from the audit log), creating one and rotating
its token (the token shown once, on the answer to the POST, never again), disabling (with
a confirmation step) and enabling; the grants the identity may see
(``grants.list_grants``: a project admin sees its project's), adding and removing them.
OIDC-bound grants are shown read-only with their claims (``signgate grant add --oidc``).
Every action is the use case ``signgate identity ...`` / ``signgate grant ...`` calls, so
it is decided and audited there."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from signgate.audit.model import Action
from signgate.errors import Denied, NotFound
from signgate.policy import decide
from signgate.policy.model import Actor, Role, Scope
from signgate.service import audit, grants, identities
from signgate.service.views import GrantView, IdentityView
from signgate.web.render import page
from signgate.web.routing import WebRoute
from signgate.web.session import PATH, Console, signed_in

router = APIRouter(route_class=WebRoute, include_in_schema=False)
Signed = Annotated[Console, Depends(signed_in)]
Name = Annotated[str, Path(min_length=1, max_length=63)]
ROLES = tuple(r.value for r in Role)
KINDS = ("service", "user")


def administers(actor: Actor) -> bool:
    """Whether the page is offered: a global or project admin grant (a key admin grants
    nothing, so has nothing to do here)."""
    return actor.enabled and any(g.role is Role.ADMIN and g.scope.key is None
                                 for g in actor.grants)


def _offered(console: Console) -> None:
    if not administers(console.me.actor):
        raise Denied(f"identity {console.me.identity} may not manage identities or grants: "
                     "no admin grant on signgate or a project")


def _last_rotations(console: Console) -> dict[str, str]:
    """Each identity's latest token rotation, as the audit log records it."""
    out: dict[str, str] = {}
    after = 0
    while True:
        result = audit.query(console.ctx, console.caller, audit.AuditQuery(
            action=Action.IDENTITY_ROTATE_TOKEN.value, after=after, limit=audit.MAX_PAGE))
        for e in result.entries:
            if e.outcome == "allowed":
                out[e.subject] = e.time.isoformat(timespec="seconds")
        if result.next_after is None:
            return out
        after = result.next_after


def _may_remove(console: Console, g: GrantView) -> bool:
    """Offered where the use case would allow it (an identity keeps its own global admin
    grant, and OIDC-bound grants change from the command line)."""
    scope = Scope.parse(g.scope)
    if g.oidc_issuer is not None or (g.identity == console.me.identity
                                     and g.role == Role.ADMIN.value and scope.is_global):
        return False
    return decide.may_grant(console.me.actor, scope).allowed


@router.get("/identities")
def identity_list(request: Request, console: Signed) -> Response:
    _offered(console)
    everyone = decide.may_manage(console.me.actor, None).allowed
    found: list[IdentityView] = identities.list_identities(console.ctx, console.caller) \
        if everyone else []
    shown = grants.list_grants(console.ctx, console.caller)
    return page(request, "identities.html", everyone=everyone, identities=found,
                rotated=_last_rotations(console) if everyone else {},
                grants=[(g, _may_remove(console, g)) for g in shown if g.oidc_issuer is None],
                oidc_grants=[g for g in shown if g.oidc_issuer is not None],
                roles=ROLES, kinds=KINDS)


def _token_page(request: Request, identity: IdentityView, token: str, created: bool) -> Response:
    """The only answer that ever holds the token (Cache-Control: no-store, as every page)."""
    return page(request, "identity_token.html", identity=identity, token=token,
                created=created)


@router.post("/identities")
def identity_create(request: Request, console: Signed,
                    name: Annotated[str, Form(max_length=63)] = "",
                    kind: Annotated[str, Form(max_length=16)] = "service") -> Response:
    made = identities.create(console.ctx, console.caller, name.strip(), kind)
    return _token_page(request, made.identity, made.token, True)


@router.post("/identities/{name}/rotate-token")
def identity_rotate(request: Request, console: Signed, name: Name) -> Response:
    made = identities.rotate_token(console.ctx, console.caller, name)
    return _token_page(request, made.identity, made.token, False)


def _identity(console: Console, name: str) -> IdentityView:
    found = [i for i in identities.list_identities(console.ctx, console.caller)
             if i.name == name]
    if not found:
        raise NotFound(f"identity {name!r} not found")
    return found[0]


@router.get("/identities/{name}/disable")
def identity_disable_form(request: Request, console: Signed, name: Name) -> Response:
    """The confirmation step: the identity's name typed out."""
    return page(request, "identity_disable.html", identity=_identity(console, name),
                error=None)


@router.post("/identities/{name}/disable")
def identity_disable(request: Request, console: Signed, name: Name,
                     confirm: Annotated[str, Form(max_length=63)] = "") -> Response:
    if confirm.strip() != name:
        return page(request, "identity_disable.html", 400, identity=_identity(console, name),
                    error=f"Type {name} to confirm.")
    identities.set_enabled(console.ctx, console.caller, name, False)
    return RedirectResponse(f"{PATH}identities", 303)


@router.post("/identities/{name}/enable")
def identity_enable(console: Signed, name: Name) -> Response:
    identities.set_enabled(console.ctx, console.caller, name, True)
    return RedirectResponse(f"{PATH}identities", 303)


GrantField = Annotated[str, Form(max_length=127)]


@router.post("/grants")
def grant_add(console: Signed, identity: GrantField = "", role: GrantField = "",
              scope: GrantField = "") -> Response:
    grants.add(console.ctx, console.caller, identity.strip(), role.strip(), scope.strip())
    return RedirectResponse(f"{PATH}identities#grants", 303)


@router.post("/grants/remove")
def grant_remove(console: Signed, identity: GrantField = "", role: GrantField = "",
                 scope: GrantField = "") -> Response:
    grants.remove(console.ctx, console.caller, identity.strip(), role.strip(), scope.strip())
    return RedirectResponse(f"{PATH}identities#grants", 303)
