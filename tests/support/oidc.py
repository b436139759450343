"""A real OIDC issuer for the tests: an HTTP server on 127.0.0.1 that serves its discovery
document and JWKS, and mints RS256/ES256 tokens with GitHub Actions- and GitLab CI-shaped
claims. It can rotate its key, count JWKS fetches, and mint the broken tokens the tests
need (alg none, HS256 keyed with its public key, unknown kid, any claim changed)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

AUDIENCE = "https://signgate.test"


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

    def __init__(self, alg: str = "RS256") -> None:
        self.key = new_key(alg)
        self.keys = [self.key]
        self.jwks_fetches = 0
        self.discovery_fetches = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.jwks_url = self.url + "/jwks"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    issuer.discovery_fetches += 1
                    body = {"issuer": issuer.url, "jwks_uri": issuer.jwks_url,
                            "id_token_signing_alg_values_supported": ["RS256", "ES256"]}
                elif self.path == "/jwks":
                    issuer.jwks_fetches += 1
                    body = {"keys": [k.jwk() for k in issuer.keys]}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:
                pass

        return Handler

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
def issuer(alg: str = "RS256") -> Iterator[Issuer]:
    i = Issuer(alg)
    try:
        yield i
    finally:
        i.close()
