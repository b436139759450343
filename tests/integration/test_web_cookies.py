"""The console's session cookie over HTTPS carries Secure (FastAPI's TestClient on the
app that 'signgate serve' runs, with an https:// base URL), and a checkpoint's witness
cosignatures are counted from its note."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from signgate.api.app import create_app
from signgate.web.overview import cosignatures
from tests.integration.test_service import Env


def test_over_https_the_session_cookie_is_secure(env: Env) -> None:
    assert env.admin.token is not None
    client = TestClient(create_app(env.ctx), base_url="https://console.example")
    form = client.get("/ui/sign-in")
    nonce = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert nonce is not None
    assert "; secure" in form.headers["set-cookie"].lower()
    r = client.post("/ui/sign-in", data={"token": env.admin.token, "csrf": nonce.group(1)},
                    follow_redirects=False)
    assert r.status_code == 303
    cookie = next(h for h in r.headers.get_list("set-cookie")
                  if h.startswith("signgate_session="))
    assert "; secure" in cookie.lower()
    assert "; httponly" in cookie.lower()


def test_witness_cosignatures_are_the_signature_lines_but_the_logs_own() -> None:
    body = "example.com/log\n5\nqM2kNoyo3kXx9bQ0m3bZ5Lx1Ek9a5k2pQ1B2r3c4d5E=\n"
    log_line = "\u2014 example.com/log Az3grlkF...\n"
    witness = "\u2014 witness.example.net BBBBBBB...\n"
    assert cosignatures(body + "\n" + log_line) == 0
    assert cosignatures(body + "\n" + log_line + witness + witness) == 2
    assert cosignatures(body) == 0
