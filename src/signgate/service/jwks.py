"""OIDC issuers' signing keys: discovery, and each issuer's JWKS fetched over HTTPS and
cached per process.

A JWKS is fetched when first needed and again after ``MAX_AGE``; a token signed by a key
(``kid``) the cached set lacks makes one more fetch, at most once per
``oidc_jwks_cooldown_seconds`` per URL (an issuer rotates its keys rarely; a flood of
tokens naming invented kids must not turn signgate into a fetch amplifier). A set that
cannot be fetched fails closed: :class:`~signgate.errors.Unavailable` (503), never a
token accepted on keys that could not be checked. Only asymmetric keys (RSA, EC, OKP)
are kept: an HMAC secret has no place in a public key set.
"""

from __future__ import annotations

import ipaddress
import json
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from signgate.errors import ErrorCode, InvalidInput, Unavailable

DISCOVERY_PATH = "/.well-known/openid-configuration"
MAX_AGE = 3600.0  # seconds a fetched JWKS is used before it is fetched again
MAX_BYTES = 1 << 20  # a discovery document or JWKS larger than this is refused
TIMEOUT = 10.0
ASYMMETRIC = ("RSA", "EC", "OKP")
LOCAL_HOSTS = ("localhost",)


def check_url(url: str, what: str) -> str:
    """``url`` if it is https, or http to this machine (127.0.0.1, ::1, localhost: test
    issuers); a token's keys fetched in clear could be replaced on the way."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host in LOCAL_HOSTS
    if parts.scheme == "https" and host:
        return url
    if parts.scheme == "http" and loopback:
        return url
    raise InvalidInput(f"{what} {url!r} must be an https:// URL (http:// only to 127.0.0.1 "
                       "or localhost)", code=ErrorCode.BAD_ISSUER_URL)


def _unavailable(what: str, url: str, why: str) -> Unavailable:
    return Unavailable(f"OIDC issuer unavailable: cannot fetch {what} {url}: {why}",
                       code=ErrorCode.OIDC_ISSUER_UNAVAILABLE)


def fetch_json(url: str, what: str, transport: httpx.BaseTransport | None = None) -> Any:
    """GET ``url`` (no redirects) and parse its JSON body, at most ``MAX_BYTES``."""
    try:
        with httpx.Client(timeout=TIMEOUT, follow_redirects=False, transport=transport) as c, \
                c.stream("GET", url, headers={"Accept": "application/json"}) as answer:
            if answer.status_code != 200:
                raise _unavailable(what, url, f"HTTP {answer.status_code}")
            body = b""
            for chunk in answer.iter_bytes():
                body += chunk
                if len(body) > MAX_BYTES:
                    raise _unavailable(what, url, f"larger than {MAX_BYTES} bytes")
    except httpx.HTTPError as exc:
        raise _unavailable(what, url, str(exc) or type(exc).__name__) from exc
    try:
        return json.loads(body)
    except ValueError as exc:
        raise _unavailable(what, url, "not JSON") from exc


def discover_jwks_url(issuer: str, transport: httpx.BaseTransport | None = None) -> str:
    """The ``jwks_uri`` of ``issuer``'s discovery document, whose ``issuer`` must be this
    very issuer (OpenID Connect Discovery 1.0 §4.3)."""
    url = issuer.rstrip("/") + DISCOVERY_PATH
    doc = fetch_json(url, "the discovery document", transport)
    named = doc.get("issuer") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or named != issuer:
        raise _unavailable("the discovery document", url,
                           f"it names issuer {str(named)[:200]!r}, not {issuer!r}")
    jwks = doc.get("jwks_uri")
    if not isinstance(jwks, str):
        raise _unavailable("the discovery document", url, "it has no jwks_uri")
    return check_url(jwks, "the discovery document's jwks_uri")


@dataclass
class _Set:
    keys: dict[str, dict[str, Any]]  # by kid ("" for a key without one)
    fetched: float  # time.monotonic() of the fetch


class JwksCache:
    """The JWKS of every issuer this process has seen, by URL."""

    def __init__(self, cooldown_seconds: float,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.cooldown = cooldown_seconds
        self.transport = transport
        self._sets: dict[str, _Set] = {}
        self._lock = threading.Lock()  # guards _locks
        # One lock per URL: a slow issuer holds up its own tokens only.
        self._locks: dict[str, threading.Lock] = {}
        self.fetches = 0  # how many fetches this process made (tests, diagnostics)

    def key(self, url: str, kid: str | None) -> dict[str, Any] | None:
        """The JWK named ``kid`` (or the only key, for a token without a kid); None when
        the set lacks it even after a permitted re-fetch."""
        with self._lock:
            lock = self._locks.setdefault(url, threading.Lock())
        with lock:
            now = time.monotonic()
            found = self._sets.get(url)
            if found is None or now - found.fetched >= MAX_AGE:
                found = self._fetch(url, now)
            jwk = _pick(found.keys, kid)
            if jwk is None and now - found.fetched >= self.cooldown:
                found = self._fetch(url, now)
                jwk = _pick(found.keys, kid)
            return jwk

    def _fetch(self, url: str, now: float) -> _Set:
        self.fetches += 1
        doc = fetch_json(url, "the JWKS", self.transport)
        keys = doc.get("keys") if isinstance(doc, dict) else None
        if not isinstance(keys, list):
            raise _unavailable("the JWKS", url, "it has no 'keys' list")
        found = _Set({str(k.get("kid", "")): k for k in keys
                      if isinstance(k, dict) and k.get("kty") in ASYMMETRIC}, now)
        self._sets[url] = found
        return found


def _pick(keys: dict[str, dict[str, Any]], kid: str | None) -> dict[str, Any] | None:
    if kid is not None:
        return keys.get(kid)
    return next(iter(keys.values())) if len(keys) == 1 else None
