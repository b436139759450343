"""The protocol of signing people in to the web console through an OpenID Connect
provider: the authorization code flow with PKCE (RFC 6749 §4.1, RFC 7636 with S256,
OpenID Connect Core §3.1), as a confidential client (a client secret, sent with HTTP Basic
as RFC 6749 §2.3.1 says) or a public one (PKCE alone).

Nothing is kept on the server between the redirect to the provider and the callback: the
browser holds a short-lived pre-session cookie (:func:`begin` makes its value: when the
flow began, and 256 random bits), from which the ``state``, the ``nonce`` and the PKCE
``code_verifier`` are derived with HMAC-SHA256. Only the browser that began a flow can
finish it (its cookie yields the state the provider echoes, the nonce the ID token must
carry and the verifier the provider checks against the challenge it was shown), and any
node of a cluster can answer the callback.

The ID token is checked by the code that checks CI tokens (service/oidc_verify.py with
service/jwks.py: an asymmetric algorithm, the signature with the provider's JWKS, ``iss``,
``aud`` exactly the client id, ``exp``/``iat``/``nbf``), then its nonce here;
:func:`person` maps it to the name of a signgate identity. Opening the session and
recording every outcome is service/ui_sessions.py's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx

from signgate.config import Settings
from signgate.errors import (
    AuthenticationFailed,
    ConfigError,
    ErrorCode,
    InvalidInput,
    Unavailable,
)
from signgate.policy.model import NAME_RE
from signgate.service.jwks import (
    DISCOVERY_PATH,
    MAX_BYTES,
    TIMEOUT,
    JwksCache,
    check_url,
    fetch_json,
)
from signgate.service.oidc_verify import IssuerConfig, verify

CALLBACK_PATH = "/ui/oidc/callback"
FLOW_SECONDS = 600  # a sign-in must come back from the provider within 10 minutes
SCOPE = "openid email profile"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def refused(reason: str, code: ErrorCode = ErrorCode.UI_SIGN_IN_REFUSED) -> AuthenticationFailed:
    return AuthenticationFailed(f"sign-in refused: {reason}", code=code)


@dataclass(frozen=True)
class Client:
    """The console as a client of the provider people sign in through."""

    issuer: str
    client_id: str
    secret: str | None = field(repr=False)
    claim: str
    email_domain: str | None
    redirect_uri: str

    @property
    def label(self) -> str:
        """What the sign-in page calls the provider: its host."""
        return urlsplit(self.issuer).hostname or self.issuer

    def config(self, jwks_url: str) -> IssuerConfig:
        return IssuerConfig(self.label, self.issuer, self.client_id, jwks_url)


def from_settings(settings: Settings) -> Client | None:
    """The client ``config.toml`` describes (its secret file read now: a mistake stops
    'signgate serve' before it listens), or None when people sign in with tokens only."""
    if not settings.ui_oidc_issuer or not settings.ui_oidc_client_id:
        return None
    try:
        check_url(settings.ui_oidc_issuer, "ui_oidc_issuer")
    except InvalidInput as exc:
        raise ConfigError(str(exc)) from None
    path = settings.ui_oidc_client_secret_file
    return Client(settings.ui_oidc_issuer, settings.ui_oidc_client_id,
                  read_secret(path) if path else None, settings.ui_oidc_claim,
                  settings.ui_oidc_email_domain,
                  settings.public_url.rstrip("/") + CALLBACK_PATH)


def read_secret(path: str) -> str:
    """The client secret in ``path``, which only its owner may read."""
    file = Path(path)
    try:
        mode = file.stat().st_mode & 0o777
        secret = file.read_text("utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"cannot read ui_oidc_client_secret_file {path}: {why}") from None
    if mode & 0o077:
        raise ConfigError(f"ui_oidc_client_secret_file {path} is readable by others (mode "
                          f"{mode:o}); run chmod 600")
    if not secret:
        raise ConfigError(f"ui_oidc_client_secret_file {path} is empty")
    return secret


# -- the flow's secrets ---------------------------------------------------------------
@dataclass(frozen=True)
class Flow:
    """One sign-in's values, derived from its pre-session cookie."""

    state: str
    nonce: str
    verifier: str  # RFC 7636 §4.1: 43 characters of base64url

    @property
    def challenge(self) -> str:
        """RFC 7636 §4.2, S256: BASE64URL(SHA256(ASCII(code_verifier)))."""
        return _b64(hashlib.sha256(self.verifier.encode("ascii")).digest())


def _derive(cookie: str) -> Flow:
    started, _, key = cookie.partition(".")

    def part(label: str) -> str:
        mac = hmac.new(key.encode("ascii"), f"{label}\0{started}".encode("ascii"),
                       hashlib.sha256)
        return _b64(mac.digest())

    return Flow(part("state"), part("nonce"), part("code_verifier"))


def new_flow(now: datetime) -> tuple[str, Flow]:
    """A new pre-session cookie's value and its flow."""
    cookie = f"{int(now.timestamp())}.{secrets.token_urlsafe(32)}"
    return cookie, _derive(cookie)


def flow_of(cookie: str | None, now: datetime) -> Flow:
    """The flow this browser began (its pre-session cookie), if it began one here in the
    last ``FLOW_SECONDS``."""
    started, _, key = (cookie or "").partition(".")
    if not started.isdigit() or len(started) > 12 or not 32 <= len(key) <= 64 \
            or not key.isascii():
        raise refused("this browser began no sign-in here (its sign-in cookie is missing); "
                      "start again from the sign-in page")
    if not 0 <= now.timestamp() - int(started) <= FLOW_SECONDS:
        raise refused(f"the sign-in took longer than {FLOW_SECONDS // 60} minutes; start "
                      "again from the sign-in page")
    return _derive(cookie or "")


def check_state(flow: Flow, state: str | None) -> None:
    """The provider's answer belongs to this browser's sign-in (RFC 6749 §10.12)."""
    if not state or not hmac.compare_digest(state.encode(), flow.state.encode()):
        raise refused("the state the provider sent back is not this browser's sign-in (a "
                      "forged or stale answer)")


# -- the provider ---------------------------------------------------------------------
@dataclass(frozen=True)
class Endpoints:
    authorization: str
    token: str
    jwks: str


def _unavailable(client: Client, why: str) -> Unavailable:
    return Unavailable(f"OIDC issuer unavailable: {client.issuer} {why}",
                       code=ErrorCode.OIDC_ISSUER_UNAVAILABLE)


def discover(client: Client, transport: httpx.BaseTransport | None = None) -> Endpoints:
    """The provider's endpoints from its discovery document (OpenID Connect Discovery 1.0
    §3, whose ``issuer`` must be this very issuer: §4.3)."""
    doc = fetch_json(client.issuer.rstrip("/") + DISCOVERY_PATH, "the discovery document",
                     transport)
    if not isinstance(doc, dict) or doc.get("issuer") != client.issuer:
        named = doc.get("issuer") if isinstance(doc, dict) else None
        raise _unavailable(client, f"names issuer {str(named)[:200]!r} in its discovery "
                                   "document")
    urls = []
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        url = doc.get(name)
        if not isinstance(url, str):
            raise _unavailable(client, f"has no {name} in its discovery document")
        try:
            urls.append(check_url(url, name))
        except InvalidInput as exc:
            raise _unavailable(client, f"has a bad discovery document: {exc}") from None
    return Endpoints(*urls)


def authorization_url(client: Client, ends: Endpoints, flow: Flow) -> str:
    """Where the browser goes to sign in (OpenID Connect Core §3.1.2.1)."""
    query = urlencode({"response_type": "code", "client_id": client.client_id,
                       "redirect_uri": client.redirect_uri, "scope": SCOPE,
                       "state": flow.state, "nonce": flow.nonce,
                       "code_challenge": flow.challenge, "code_challenge_method": "S256"})
    return ends.authorization + ("&" if "?" in ends.authorization else "?") + query


def begin(client: Client, transport: httpx.BaseTransport | None,
          now: datetime) -> tuple[str, str]:
    """A new sign-in: the pre-session cookie's value and the provider's URL to go to."""
    cookie, flow = new_flow(now)
    return cookie, authorization_url(client, discover(client, transport), flow)


def _token_request(client: Client, ends: Endpoints, code: str, flow: Flow,
                   transport: httpx.BaseTransport | None) -> dict[str, Any]:
    """The token endpoint's answer to the code (RFC 6749 §4.1.3, RFC 7636 §4.5)."""
    form = {"grant_type": "authorization_code", "code": code,
            "redirect_uri": client.redirect_uri, "code_verifier": flow.verifier,
            "client_id": client.client_id}
    headers = {"Accept": "application/json"}
    if client.secret is not None:  # RFC 6749 §2.3.1: each part form-encoded first
        basic = f"{quote(client.client_id, safe='')}:{quote(client.secret, safe='')}"
        headers["Authorization"] = "Basic " + base64.b64encode(basic.encode()).decode()
    try:
        with httpx.Client(timeout=TIMEOUT, follow_redirects=False, transport=transport) as c:
            answer = c.post(ends.token, data=form, headers=headers)
    except httpx.HTTPError as exc:
        raise _unavailable(client, f"did not answer at its token endpoint {ends.token}: "
                                   f"{str(exc) or type(exc).__name__}") from exc
    if len(answer.content) > MAX_BYTES:
        raise _unavailable(client, f"answered more than {MAX_BYTES} bytes at its token "
                                   "endpoint")
    try:
        body = answer.json()
    except ValueError:
        body = None
    if answer.status_code >= 500 or not isinstance(body, dict):
        raise _unavailable(client, f"answered HTTP {answer.status_code} at its token "
                                   "endpoint")
    if answer.status_code != 200:  # RFC 6749 §5.2: invalid_grant for a used code, ...
        error = str(body.get("error", ""))[:64]
        why = str(body.get("error_description", ""))[:200]
        raise refused(f"the provider refused the code ({error}{': ' + why if why else ''})")
    return body


def redeem(client: Client, ends: Endpoints, code: str, flow: Flow, keys: JwksCache,
           now: datetime) -> dict[str, Any]:
    """The claims of the ID token the provider gives for ``code``, every check passed."""
    body = _token_request(client, ends, code, flow, keys.transport)
    token = body.get("id_token")
    if not isinstance(token, str):
        raise refused("the provider's token answer has no id_token")
    claims = verify(token, client.config(ends.jwks), keys, now, require_jti=False)
    nonce = claims.get("nonce")
    # OpenID Connect Core §3.1.3.7, step 11: the nonce this browser's flow sent.
    if not isinstance(nonce, str) or not hmac.compare_digest(nonce.encode(),
                                                             flow.nonce.encode()):
        raise refused("the ID token's nonce is not this sign-in's (a replayed or injected "
                      "token)")
    return claims


def claimed(client: Client, claims: dict[str, Any]) -> str:
    """The value of the claim that names the person (for the record), or ''."""
    value = claims.get(client.claim)
    return value[:200] if isinstance(value, str) else ""


def person(client: Client, claims: dict[str, Any]) -> str:
    """The name of the signgate identity the ID token's ``client.claim`` names."""
    value = claims.get(client.claim)
    if not isinstance(value, str) or not value:
        raise refused(f"the ID token has no {client.claim} claim", ErrorCode.UI_UNKNOWN_PERSON)
    name = value
    if client.claim == "email":
        # An unverified address is only what someone typed in at the provider.
        if claims.get("email_verified") is not True:
            raise refused(f"the provider has not verified the address {value[:200]}",
                          ErrorCode.UI_UNKNOWN_PERSON)
        local, _, domain = value.rpartition("@")
        if domain.lower() != client.email_domain:
            raise refused(f"{value[:200]} is not an address in {client.email_domain}",
                          ErrorCode.UI_UNKNOWN_PERSON)
        name = local.lower()
    if not NAME_RE.match(name):
        raise refused(f"{client.claim} {value[:200]!r} names no signgate identity",
                      ErrorCode.UI_UNKNOWN_PERSON)
    return name
