"""A CI job's OIDC token (a JWT), checked the way API tokens are: before anything else,
with one clear reason for each refusal.

Checks, in order (each refusal is :class:`~signgate.errors.AuthenticationFailed` with its
own code): a JWT at all; an algorithm on the allow-list (asymmetric only: never ``none``,
never HMAC, whose "secret" would be the issuer's public key); the key (``kid``) in the
issuer's JWKS (service/jwks.py); the signature (PyJWT); ``iss`` exactly the issuer's;
``aud`` present and exactly the configured audience (a string, or a list of that one
value); ``exp``, ``nbf`` and ``iat`` against signgate's clock with ``LEEWAY``; a ``jti``.
Whether the ``jti`` was exchanged before is the exchange's business (service/oidc.py).
Times are checked here, not by PyJWT, so that they follow the injected clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from jwt.exceptions import InvalidTokenError, PyJWTError

from signgate.errors import AuthenticationFailed, ErrorCode
from signgate.service.jwks import JwksCache

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
              "ES512", "EdDSA")
LEEWAY = timedelta(seconds=60)
MAX_TOKEN = 16384  # characters: GitHub's tokens are about 1.5 KB
MAX_JTI = 255


@dataclass(frozen=True)
class IssuerConfig:
    name: str
    issuer: str
    audience: str
    jwks_url: str


def refused(code: ErrorCode, reason: str) -> AuthenticationFailed:
    return AuthenticationFailed(f"OIDC token refused: {reason}", code=code)


def peek_issuer(token: str) -> str:
    """The token's ``iss``, unverified: only to find which issuer's keys to check it with."""
    if not token or len(token) > MAX_TOKEN or not token.isascii():
        raise refused(ErrorCode.OIDC_MALFORMED, f"not a JWT (1 to {MAX_TOKEN} ASCII "
                                                "characters)")
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except InvalidTokenError as exc:
        raise refused(ErrorCode.OIDC_MALFORMED, f"not a JWT: {exc}") from None
    iss = claims.get("iss")
    if not isinstance(iss, str) or not iss:
        raise refused(ErrorCode.OIDC_MALFORMED, "the token has no iss claim")
    return iss


def verify(token: str, issuer: IssuerConfig, keys: JwksCache, now: datetime, *,
           require_jti: bool = True) -> dict[str, Any]:
    """The claims of ``token`` once every check passed (``require_jti``: False for a
    person's ID token, which OpenID Connect Core §2 does not give a jti; its nonce stands
    in, checked by service/ui_oidc.py)."""
    try:
        header = jwt.get_unverified_header(token)
    except InvalidTokenError as exc:
        raise refused(ErrorCode.OIDC_MALFORMED, f"not a JWT: {exc}") from None
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise refused(ErrorCode.OIDC_ALGORITHM,
                      f"algorithm {str(alg)[:20]!r} is not allowed (only {', '.join(ALGORITHMS)})")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise refused(ErrorCode.OIDC_MALFORMED, "the token's kid is not a string")
    jwk = keys.key(issuer.jwks_url, kid)
    if jwk is None:
        raise refused(ErrorCode.OIDC_UNKNOWN_KEY,
                      f"key {str(kid)[:80]!r} is not in the JWKS of issuer {issuer.name}")
    try:
        key = jwt.PyJWK(jwk, algorithm=alg)
    except (PyJWTError, ValueError, TypeError, KeyError) as exc:  # a JWK that is no key
        raise refused(ErrorCode.OIDC_SIGNATURE,
                      f"key {str(kid)[:80]!r} of issuer {issuer.name} does not fit "
                      f"algorithm {alg}: {exc}") from None
    try:
        claims: dict[str, Any] = jwt.decode(
            token, key=key, algorithms=[alg],
            options={"verify_signature": True, "verify_aud": False, "verify_iss": False,
                     "verify_exp": False, "verify_nbf": False, "verify_iat": False,
                     "verify_jti": False, "verify_sub": False})
    except jwt.InvalidSignatureError:
        raise refused(ErrorCode.OIDC_SIGNATURE, "the signature does not verify with key "
                      f"{str(kid)[:80]!r} of issuer {issuer.name}") from None
    except (PyJWTError, ValueError, TypeError) as exc:
        raise refused(ErrorCode.OIDC_MALFORMED, f"not a valid JWT: {exc}") from None
    _check_claims(claims, issuer, now, require_jti)
    return claims


def _check_claims(claims: dict[str, Any], issuer: IssuerConfig, now: datetime,
                  require_jti: bool) -> None:
    if claims.get("iss") != issuer.issuer:
        raise refused(ErrorCode.OIDC_UNKNOWN_ISSUER, f"iss {str(claims.get('iss'))[:200]!r} is "
                                                     f"not {issuer.issuer!r}")
    aud = claims.get("aud")
    if aud is None:
        raise refused(ErrorCode.OIDC_AUDIENCE, "the token has no aud claim")
    if aud != issuer.audience and aud != [issuer.audience]:
        raise refused(ErrorCode.OIDC_AUDIENCE, f"aud {str(aud)[:200]!r} is not exactly "
                                               f"{issuer.audience!r}")
    times = {}
    for name in ("exp", "iat", "nbf"):
        value = claims.get(name)
        if value is None and name != "nbf":
            raise refused(ErrorCode.OIDC_MALFORMED, f"the token has no {name} claim")
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise refused(ErrorCode.OIDC_MALFORMED, f"{name} is not a number")
            try:
                times[name] = datetime.fromtimestamp(value, UTC)
            except (OverflowError, OSError, ValueError):
                raise refused(ErrorCode.OIDC_MALFORMED, f"{name} is out of range") from None
    if now > times["exp"] + LEEWAY:
        raise refused(ErrorCode.OIDC_EXPIRED, f"it expired at {times['exp'].isoformat()}")
    for name in ("nbf", "iat"):
        if name in times and times[name] > now + LEEWAY:
            raise refused(ErrorCode.OIDC_NOT_YET_VALID,
                          f"{name} {times[name].isoformat()} is in the future")
    jti = claims.get("jti")
    if not require_jti and jti is None:
        return
    if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI:
        raise refused(ErrorCode.OIDC_MALFORMED, f"the token has no jti claim (a string of 1 "
                                                f"to {MAX_JTI} characters)")


def expiry(claims: dict[str, Any]) -> datetime:
    """When the (verified) token stops being accepted: its exp plus the leeway."""
    return datetime.fromtimestamp(claims["exp"], UTC) + LEEWAY
