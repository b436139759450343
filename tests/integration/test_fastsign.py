"""The lean signing route (api/fastsign.py) answers exactly as the FastAPI route does.

Every request below is sent twice: to the application ``create_app`` returns (the lean
route in front) and to the FastAPI application behind it alone. Status, media type and
body must agree; for a signing, everything but what differs per signing (ids, times,
signature values). A recorder between the two says which requests the lean route took on
itself, so that a lean route that quietly handed everything over would fail here.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

from signgate.api.app import create_app
from signgate.api.fastsign import FastSign, signing_route
from signgate.service import keys
from tests.integration.test_service import Env, new_key

DIGEST = hashlib.sha256(b"artifact").hexdigest()
# What differs between two signings of the same request.
VARYING = {"signature", "signature_id", "signed_at", "audit_seq", "log_index", "log_size",
           "log_proof"}


class Recorder:
    """The FastAPI side, counting the requests handed to it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.paths: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.paths.append(scope["path"])
        await self.app(scope, receive, send)


@pytest.fixture
def apps(env: Env) -> tuple[TestClient, TestClient, Recorder, str]:
    new_key(env)
    new_key(env, name="quorum")
    keys.set_approval_policy(env.ctx, env.admin, "app/quorum", 1)
    signer = env.signer("ci", "app")
    full = create_app(env.ctx)
    assert isinstance(full, FastSign)
    behind = Recorder(full.app)
    lean = FastSign(behind, env.ctx)
    # No 'with': the lifespan would close the shared context when the first client ends.
    return (TestClient(lean, raise_server_exceptions=False),
           TestClient(full.app, raise_server_exceptions=False), behind, signer.token or "")


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("<varies>" if k in VARYING else _strip(v)) for k, v in value.items()}
    return value


def _both(apps: tuple[TestClient, TestClient, Recorder, str], path: str, *,
          body: bytes | None = None, token: str | None = None,
          headers: dict[str, str] | None = None, method: str = "POST") -> tuple[int, Any]:
    lean, full, _, signer = apps
    sent = {"content-type": "application/json",
            "authorization": f"Bearer {signer if token is None else token}",
            **(headers or {})}
    answers = [c.request(method, path, content=body, headers=sent) for c in (lean, full)]
    a, b = answers
    assert a.status_code == b.status_code, (a.text, b.text)
    assert a.headers.get("content-type") == b.headers.get("content-type")
    assert a.headers.get("www-authenticate") == b.headers.get("www-authenticate")
    parsed = [json.loads(r.content) if r.content else None for r in answers]
    assert _strip(parsed[0]) == _strip(parsed[1])
    return a.status_code, parsed[0]


SIGN = "/api/v1/projects/app/keys/release/sign"


def _body(**fields: Any) -> bytes:
    return json.dumps({"digest": DIGEST, "artifact_name": "a.bin", **fields}).encode()


def test_a_signing_is_answered_by_the_lean_route_as_by_fastapi(apps: Any) -> None:
    status, answer = _both(apps, SIGN, body=_body(metadata={"build": "7"}))
    assert status == 200
    assert answer["receipt"]["key"] == "app/release"
    recorder: Recorder = apps[2]
    assert recorder.paths == [], "the lean route handed a plain signing to FastAPI"


def test_a_key_with_approvals_answers_202_on_both(apps: Any) -> None:
    status, answer = _both(apps, "/api/v1/projects/app/keys/quorum/sign", body=_body())
    assert status == 202
    assert answer["state"] == "pending"
    assert apps[2].paths == []


@pytest.mark.parametrize(("path", "body", "token", "status"), [
    (SIGN, _body(), "not-a-token", 401),
    (SIGN, _body(), "", 401),
    ("/api/v1/projects/app/keys/missing/sign", _body(), None, 404),
    ("/api/v1/projects/Bad_Name/keys/release/sign", _body(), None, 400),
    (SIGN, _body(digest="zz"), None, 400),
    (SIGN, _body(digest_algorithm="md5"), None, 400),
    (SIGN, _body(format="nonsense"), None, 400),
])
def test_refusals_agree(apps: Any, path: str, body: bytes, token: str | None,
                        status: int) -> None:
    assert _both(apps, path, body=body, token=token)[0] == status
    assert apps[2].paths == []  # service refusals: still the lean route's own answer


@pytest.mark.parametrize(("body", "headers"), [
    (b"{", {}),
    (b"[]", {}),
    (b'{"digest": "00"}', {}),
    (_body(extra=1), {}),
    (_body(timestamp="yes"), {}),
    (_body(metadata={"a": 1}), {}),
    (_body(artifact_name="x" * 2000), {}),
    (_body(), {"content-type": "text/plain"}),
    (_body(), {"content-type": "application/x-www-form-urlencoded"}),
    (b"x" * (2 << 20), {}),
])
def test_what_the_lean_route_does_not_take_fastapi_answers(apps: Any, body: bytes,
                                                           headers: dict[str, str]) -> None:
    status, answer = _both(apps, SIGN, body=body, headers=headers)
    assert 400 <= status < 500
    assert answer["code"]
    assert apps[2].paths == [SIGN]


def test_other_methods_and_routes_go_to_fastapi(apps: Any) -> None:
    assert _both(apps, SIGN, method="GET")[0] == 405
    assert _both(apps, "/api/v1/projects/app/keys/release/sign-policy?artifact_name=a",
                 method="GET")[0] == 200
    assert apps[2].paths == [SIGN, "/api/v1/projects/app/keys/release/sign-policy"]


@pytest.mark.parametrize(("path", "route"), [
    ("/api/v1/projects/app/keys/release/sign", ("app", "release")),
    ("/api/v1/projects/app/keys/release/sign/", None),
    ("/api/v1/projects/app/keys/sign", None),
    ("/api/v1/projects/app/key/release/sign", None),
    ("/api/v1/projects//keys/release/sign", None),
    ("/api/v1/projects/app/keys/a/b/sign", None),
    ("/api/v1/projects/app/keys/release/sign-batch", None),
])
def test_signing_route(path: str, route: tuple[str, str] | None) -> None:
    assert signing_route(path) == route
