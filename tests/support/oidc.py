"""A real OIDC issuer for the tests: an HTTP server on 127.0.0.1 that serves its discovery
document and JWKS, and mints RS256/ES256 tokens with GitHub Actions- and GitLab CI-shaped
claims. It can rotate its key, count JWKS fetches, and mint the broken tokens the tests
need (alg none, HS256 keyed with its public key, unknown kid, any claim changed).

For people signing in to the web console it is also a minimal OpenID provider (the
authorization code flow with PKCE): ``/authorize`` signs in ``person`` (the claims of the
one configured user) without asking and redirects back with a one-time code (or, with
``interactive``, shows a page whose link goes back with it);
``/token`` checks the code, the redirect URI, the client's secret (HTTP Basic) and the
PKCE verifier (S256), and answers with an ID token carrying the nonce. ``available =
False`` makes every endpoint answer 503 (an issuer that is down)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

AUDIENCE = "https://signgate.test"
CLIENT_ID = "signgate-console"
CLIENT_SECRET = "console-secret-4b2d9c"  # what the console's client secret file holds


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass
class SigningKey:
    kid: str
    alg: str
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

    def jwk(self) -> dict[str, Any]:
        algorithm = jwt.get_algorithm_by_name(self.alg)
        jwk: dict[str, Any] = json.loads(algorithm.to_jwk(self.private.public_key()))
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def new_key(alg: str = "RS256") -> SigningKey:
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if alg.startswith("ES"):
        private = ec.generate_private_key(ec.SECP256R1())
    else:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return SigningKey(uuid.uuid4().hex[:16], alg, private)


class Issuer:
    """One issuer at ``url`` (http://127.0.0.1:PORT). ``keys`` are published in the JWKS;
    ``key`` signs new tokens."""

    def __init__(self, alg: str = "RS256", host: str = "127.0.0.1") -> None:
        self.key = new_key(alg)
        self.keys = [self.key]
        self.jwks_fetches = 0
        self.discovery_fetches = 0
        # The OpenID provider for people (see the module's docstring).
        self.client_id = CLIENT_ID
        self.client_secret: str | None = CLIENT_SECRET
        self.redirect_uri = ""  # the one redirect URI registered for the client
        self.person: dict[str, Any] = {}  # the claims of whoever signs in
        self.id_token_changes: dict[str, Any] = {}  # claims the next ID tokens change
        self.available = True
        # True: /authorize answers with a page whose link the person follows (the way back
        # then begins at the provider's site, as after typing a password there).
        self.interactive = False
        self.codes: dict[str, dict[str, Any]] = {}  # code -> what /authorize was asked
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        # ``host``: the name in its URLs ("localhost": another site than 127.0.0.1 to a
        # browser); it listens on 127.0.0.1 either way.
        self.url = f"http://{host}:{self._server.server_address[1]}"
        self.jwks_url = self.url + "/jwks"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if not issuer.available:
                    self.send_error(503)
                    return
                path = urlsplit(self.path).path
                if path == "/.well-known/openid-configuration":
                    issuer.discovery_fetches += 1
                    body = {"issuer": issuer.url, "jwks_uri": issuer.jwks_url,
                            "authorization_endpoint": issuer.url + "/authorize",
                            "token_endpoint": issuer.url + "/token",
                            "code_challenge_methods_supported": ["S256"],
                            "id_token_signing_alg_values_supported": ["RS256", "ES256"]}
                elif path == "/jwks":
                    issuer.jwks_fetches += 1
                    body = {"keys": [k.jwk() for k in issuer.keys]}
                elif path == "/authorize":
                    self.authorize()
                    return
                else:
                    self.send_error(404)
                    return
                self.answer(200, body)

            def do_POST(self) -> None:
                if not issuer.available:
                    self.send_error(503)
                    return
                if self.path != "/token":
                    self.send_error(404)
                    return
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in
                        parse_qs(self.rfile.read(length).decode()).items()}
                status, body = issuer.token(form, self.headers.get("Authorization", ""))
                self.answer(status, body)

            def authorize(self) -> None:
                """OpenID Connect Core §3.1.2: the configured person, approved at once."""
                q = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                if (q.get("response_type") != "code" or q.get("client_id") != issuer.client_id
                        or q.get("redirect_uri") != issuer.redirect_uri
                        or q.get("code_challenge_method") != "S256"
                        or not q.get("code_challenge") or "openid" not in
                        q.get("scope", "").split()):
                    self.send_error(400, "bad authorization request")
                    return
                code = secrets.token_urlsafe(24)
                issuer.codes[code] = q
                back = issuer.redirect_uri + "?" + urlencode(
                    {"code": code, "state": q.get("state", "")})
                if issuer.interactive:  # a page the person acts on, as a login page is
                    page = (f'<!doctype html><title>Sign in</title><a id="approve" '
                            f'href="{html.escape(back)}">Continue</a>').encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(page)))
                    self.end_headers()
                    self.wfile.write(page)
                    return
                self.send_response(302)
                self.send_header("Location", back)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:
                pass

        return Handler

    def token(self, form: dict[str, str], authorization: str) -> tuple[int, dict[str, Any]]:
        """The token endpoint (RFC 6749 §4.1.3, RFC 7636 §4.6): an ID token for a code
        given once, to this client, with the verifier of its challenge."""
        def error(what: str, status: int = 400) -> tuple[int, dict[str, Any]]:
            return status, {"error": what, "error_description": f"test issuer: {what}"}

        if self.client_secret is not None:
            scheme, _, encoded = authorization.partition(" ")
            try:
                user, _, password = base64.b64decode(encoded).decode().partition(":")
            except ValueError:
                return error("invalid_client", 401)
            if scheme != "Basic" or (unquote(user), unquote(password)) != (
                    self.client_id, self.client_secret):
                return error("invalid_client", 401)
        if form.get("grant_type") != "authorization_code":
            return error("unsupported_grant_type")
        asked = self.codes.pop(form.get("code", ""), None)  # each code works once
        if asked is None or form.get("client_id") != self.client_id \
                or form.get("redirect_uri") != asked["redirect_uri"]:
            return error("invalid_grant")
        verifier = form.get("code_verifier", "")
        challenge = _b64(hashlib.sha256(verifier.encode()).digest())
        if not 43 <= len(verifier) <= 128 or challenge != asked["code_challenge"]:
            return error("invalid_grant")
        claims = {"iss": self.url, "aud": self.client_id, "nonce": asked.get("nonce"),
                  **self.times(), **self.person, **self.id_token_changes}
        return 200, {"access_token": secrets.token_urlsafe(16), "token_type": "Bearer",
                     "expires_in": 300, "id_token": self.mint(claims)}

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def rotate(self, alg: str | None = None, keep_old: bool = False) -> SigningKey:
        """A new signing key; the JWKS lists it (and the old ones with ``keep_old``)."""
        self.key = new_key(alg or self.key.alg)
        self.keys = [*self.keys, self.key] if keep_old else [self.key]
        return self.key

    # -- claims -------------------------------------------------------------------------
    def times(self, now: float | None = None, lifetime: int = 300) -> dict[str, int]:
        t = int(time.time() if now is None else now)
        return {"iat": t - 5, "nbf": t - 5, "exp": t + lifetime}

    def github(self, now: float | None = None, **changes: Any) -> dict[str, Any]:
        """Claims shaped like a GitHub Actions job's ID token (a push to main of acme/app,
        in its protected ``release`` environment)."""
        claims = {
            "jti": str(uuid.uuid4()), "sub": "repo:acme/app:environment:release",
            "aud": AUDIENCE, "iss": self.url, "environment": "release",
            "ref": "refs/heads/main", "ref_type": "branch", "ref_protected": "true",
            "sha": "5d1c3e2f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2c3d", "repository": "acme/app",
            "repository_id": "123456", "repository_owner": "acme",
            "repository_owner_id": "9919", "repository_visibility": "private",
            "run_id": "7100000001", "run_number": "42", "run_attempt": "1",
            "actor": "octocat", "actor_id": "583231", "workflow": "release",
            "event_name": "push", "head_ref": "", "base_ref": "",
            "workflow_ref": "acme/app/.github/workflows/release.yml@refs/heads/main",
            "job_workflow_ref": "acme/app/.github/workflows/release.yml@refs/heads/main",
            "runner_environment": "github-hosted", **self.times(now),
        }
        claims.update(changes)
        return claims

    def gitlab(self, now: float | None = None, **changes: Any) -> dict[str, Any]:
        """Claims shaped like a GitLab CI job's ``id_tokens`` token (a pipeline on the
        protected main branch of acme/app)."""
        claims = {
            "jti": str(uuid.uuid4()), "sub": "project_path:acme/app:ref_type:branch:ref:main",
            "aud": AUDIENCE, "iss": self.url, "namespace_id": "72",
            "namespace_path": "acme", "project_id": "4242", "project_path": "acme/app",
            "user_id": "1", "user_login": "alice", "user_email": "alice@example.com",
            "pipeline_id": "900001", "pipeline_source": "push", "job_id": "1200001",
            "ref": "main", "ref_type": "branch", "ref_path": "refs/heads/main",
            "ref_protected": "true", "environment": "production",
            "environment_protected": "true", "runner_id": 17,
            "runner_environment": "gitlab-hosted", "sha": "a" * 40, **self.times(now),
        }
        claims.update(changes)
        return claims

    # -- tokens -------------------------------------------------------------------------
    def mint(self, claims: dict[str, Any], *, key: SigningKey | None = None,
             kid: str | None = None) -> str:
        """``claims`` signed with ``key`` (default: the current one), its kid in the header
        unless ``kid`` says otherwise."""
        k = key or self.key
        return jwt.encode(claims, k.private, algorithm=k.alg,
                          headers={"kid": kid if kid is not None else k.kid, "typ": "JWT"})

    def mint_unsigned(self, claims: dict[str, Any]) -> str:
        """alg=none: no signature at all."""
        header = {"alg": "none", "typ": "JWT", "kid": self.key.kid}
        return (f"{_b64(json.dumps(header).encode())}."
                f"{_b64(json.dumps(claims).encode())}.")

    def mint_hs256_with_public_key(self, claims: dict[str, Any]) -> str:
        """The classic confusion: HMAC-SHA256 keyed with the issuer's public key (PEM), which
        a verifier trusting the token's alg would check with that same public key."""
        header = {"alg": "HS256", "typ": "JWT", "kid": self.key.kid}
        signing_input = (f"{_b64(json.dumps(header).encode())}."
                         f"{_b64(json.dumps(claims).encode())}")
        mac = hmac.new(self.key.public_pem(), signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(mac)}"


@contextmanager
def issuer(alg: str = "RS256", host: str = "127.0.0.1") -> Iterator[Issuer]:
    i = Issuer(alg, host)
    try:
        yield i
    finally:
        i.close()
