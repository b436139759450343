"""Signing in to the web console through an OpenID Connect provider, end to end: a real
'signgate serve' configured with ui_oidc_* settings, and the test issuer
(tests/support/oidc.py) as a real provider on 127.0.0.1 with an authorization endpoint
that approves the configured person and a token endpoint that checks the code, the client
secret and the PKCE verifier. httpx plays the browser: redirects followed by hand,
cookies carried by the client; and once in a real browser (Debian's chromium, headless,
driven by Playwright), where the provider at "localhost" is another site than signgate at
127.0.0.1: the Lax pre-session cookie comes back with the provider's redirect, and the
Strict session cookie is sent on the overview the callback page moves on to.

Success lands on the overview as that identity, with a Strict session cookie; a forged
state, a callback in a browser that began no sign-in, a replayed code, a bad nonce, a
wrong audience, a wrong client secret, an unknown person, a service identity, a disabled
identity and the provider down are each refused with a page and a ``ui.session.create``
refusal on the record; disabling the identity or rotating its token ends its OIDC session
at once."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from markupsafe import escape

from tests.conftest import unique
from tests.support.oidc import CLIENT_ID, CLIENT_SECRET, Issuer, issuer
from tests.support.server import Server, free_port, start_server
from tests.support.web import api

FLOW_COOKIE = "signgate_oidc"
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def provider() -> Iterator[Issuer]:
    # At "localhost": to a browser another site than signgate at 127.0.0.1, so that the
    # way back from the provider is the cross-site navigation it is in real life.
    with issuer("RS256", host="localhost") as iss:
        yield iss


@pytest.fixture(scope="module")
def server(provider: Issuer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("weboidc")
    secret = root / "oidc-client.secret"
    secret.write_text(CLIENT_SECRET + "\n")
    secret.chmod(0o600)
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    provider.redirect_uri = public + "/ui/oidc/callback"
    config = "\n".join([f'ui_oidc_issuer = "{provider.url}"',
                        f'ui_oidc_client_id = "{CLIENT_ID}"',
                        f'ui_oidc_client_secret_file = "{secret}"',
                        'ui_oidc_email_domain = "example.com"'])
    srv = start_server(root / "data", None, config=config, port=port,
                       env={"SIGNGATE_PUBLIC_URL": public})
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(autouse=True)
def _reset(provider: Issuer) -> Iterator[None]:
    yield
    provider.id_token_changes = {}
    provider.available = True
    provider.interactive = False
    provider.client_secret = CLIENT_SECRET


def person(server: Server, provider: Issuer, kind: str = "user") -> str:
    """A new identity of ``kind``, the person the provider signs in from now on."""
    name = unique("alice")
    api(server, "POST", "/identities", json={"name": name, "kind": kind})
    provider.person = {"sub": str(uuid.uuid4()), "email": f"{name}@example.com",
                       "email_verified": True, "preferred_username": name}
    return name


def begin(c: httpx.Client) -> str:
    """The browser follows 'Sign in with ...': the provider's URL it is sent to."""
    r = c.get("/ui/oidc/start")
    assert r.status_code == 303, r.text
    cookie = next(h for h in r.headers.get_list("set-cookie")
                  if h.startswith(FLOW_COOKIE + "="))
    flags = {f.strip().split("=")[0].lower(): f.strip() for f in cookie.split(";")[1:]}
    assert flags["samesite"].lower() == "samesite=lax"  # sent on the way back
    assert flags["path"] == "Path=/ui/oidc/"
    assert "httponly" in flags
    return r.headers["location"]


def authorize(url: str) -> str:
    """The provider approves the person: where it sends the browser back."""
    r = httpx.get(url)
    assert r.status_code == 302, r.text
    return r.headers["location"]


def sign_in(server: Server) -> tuple[httpx.Client, httpx.Response]:
    c = httpx.Client(base_url=server.url, timeout=30)
    return c, c.get(authorize(begin(c)))


def refusals(server: Server, since: int) -> list[dict[str, object]]:
    entries: list[dict[str, object]] = server.cli(
        "audit", "log", "--json", "--action", "ui.session.create").json()
    return [e for e in entries if int(str(e["seq"])) > since and e["outcome"] == "refused"]


def last_seq(server: Server) -> int:
    entries = server.cli("audit", "log", "--json", "--action", "ui.session.create").json()
    return max((int(e["seq"]) for e in entries), default=0)


def assert_refused(server: Server, r: httpx.Response, since: int, status: int, says: str,
                   code: str, actor: str = "anonymous") -> None:
    assert r.status_code == status, r.text
    assert "Sign-in through localhost failed" in r.text
    assert str(escape(says)) in r.text
    assert "signgate_session" not in r.headers.get("set-cookie", "")
    [entry] = refusals(server, since)
    details = entry["details"]
    assert isinstance(details, dict)
    assert details["code"] == code
    assert says in str(details["reason"])
    assert details["via"] == "oidc"
    assert entry["actor"] == actor


def test_sign_in_through_the_provider_lands_on_the_overview(
        server: Server, provider: Issuer) -> None:
    name = person(server, provider)
    c = httpx.Client(base_url=server.url, timeout=30)
    form = c.get("/ui/sign-in")
    assert 'href="/ui/oidc/start"' in form.text
    assert "Sign in with localhost" in form.text
    url = begin(c)
    asked = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert url.startswith(provider.url + "/authorize?")
    assert asked["code_challenge_method"] == "S256"
    assert len(asked["code_challenge"]) == 43
    assert asked["nonce"]
    assert asked["state"]
    assert asked["redirect_uri"] == provider.redirect_uri
    assert "code_verifier" not in asked
    r = c.get(authorize(url))
    assert r.status_code == 200, r.text
    assert '<meta http-equiv="refresh" content="0;url=/ui/overview">' in r.text
    cookie = next(h for h in r.headers.get_list("set-cookie")
                  if h.startswith("signgate_session="))
    assert "samesite=strict" in cookie.lower()
    assert c.cookies.get(FLOW_COOKIE) is None  # the pre-session cookie is gone
    overview = c.get("/ui/overview")
    assert overview.status_code == 200
    assert f"Signed in as <strong>{name}</strong>" in overview.text
    entries = server.cli("audit", "log", "--json", "--identity", name,
                         "--action", "ui.session.create").json()
    assert [(e["outcome"], e["details"]["via"], e["details"]["claim"]) for e in entries] == \
        [("allowed", "oidc", {"email": f"{name}@example.com"})]


def test_a_forged_state_or_another_browser_is_refused(server: Server, provider: Issuer) -> None:
    person(server, provider)
    since = last_seq(server)
    c = httpx.Client(base_url=server.url, timeout=30)
    back = authorize(begin(c))
    parts = urlsplit(back)
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    forged = f"{parts.scheme}://{parts.netloc}{parts.path}?" + urlencode(
        {**q, "state": q["state"][:-2] + ("AA" if not q["state"].endswith("AA") else "BB")})
    assert_refused(server, c.get(forged), since, 401, "is not this browser's sign-in",
                   "ui_sign_in_refused")
    # The genuine answer, in a browser that began no sign-in (login CSRF): refused too.
    since = last_seq(server)
    stranger = httpx.Client(base_url=server.url, timeout=30)
    assert_refused(server, stranger.get(back), since, 401, "began no sign-in here",
                   "ui_sign_in_refused")


def test_a_code_works_once(server: Server, provider: Issuer) -> None:
    person(server, provider)
    c = httpx.Client(base_url=server.url, timeout=30)
    back = authorize(begin(c))
    flow = c.cookies.get(FLOW_COOKIE)
    assert flow
    assert c.get(back).status_code == 200
    since = last_seq(server)
    c.cookies.set(FLOW_COOKIE, flow, path="/ui/oidc/")  # even with the browser's cookie
    assert_refused(server, c.get(back), since, 401, "the provider refused the code "
                   "(invalid_grant", "ui_sign_in_refused")


def test_a_wrong_client_secret_is_refused(server: Server, provider: Issuer) -> None:
    person(server, provider)
    provider.client_secret = "another-secret"  # the provider no longer knows signgate's
    since = last_seq(server)
    _, r = sign_in(server)
    assert_refused(server, r, since, 401, "the provider refused the code (invalid_client",
                   "ui_sign_in_refused")


@pytest.mark.parametrize(("changes", "says", "code"), [
    ({"nonce": "not-this-sign-in"}, "nonce is not this sign-in's", "ui_sign_in_refused"),
    ({"aud": "someone-else"}, "aud 'someone-else' is not exactly 'signgate-console'",
     "oidc_audience"),
])
def test_an_id_token_that_does_not_check_out_is_refused(
        server: Server, provider: Issuer, changes: dict[str, str], says: str,
        code: str) -> None:
    person(server, provider)
    provider.id_token_changes = changes
    since = last_seq(server)
    _, r = sign_in(server)
    assert_refused(server, r, since, 401, says, code)


def test_an_unknown_person_or_a_service_identity_is_refused(
        server: Server, provider: Issuer) -> None:
    name = unique("nobody")
    provider.person = {"sub": "x", "email": f"{name}@example.com", "email_verified": True}
    since = last_seq(server)
    _, r = sign_in(server)
    assert_refused(server, r, since, 401, f"({name!r} does not exist)", "ui_unknown_person")

    provider.person = {**provider.person, "email": f"{name}@elsewhere.example"}
    since = last_seq(server)
    _, r = sign_in(server)
    assert_refused(server, r, since, 401, "is not an address in example.com",
                   "ui_unknown_person")

    service = person(server, provider, kind="service")
    since = last_seq(server)
    _, r = sign_in(server)
    assert_refused(server, r, since, 401, f"identity {service} is a service, not a person",
                   "ui_unknown_person", actor=service)


def test_a_disabled_identity_is_refused_and_its_session_ends_at_once(
        server: Server, provider: Issuer) -> None:
    name = person(server, provider)
    # Rotating the identity's token ends its sessions (they are bound to it)...
    rotated, r = sign_in(server)
    assert r.status_code == 200
    assert rotated.get("/ui/overview").status_code == 200
    api(server, "POST", f"/identities/{name}/rotate-token")
    assert rotated.get("/ui/overview").status_code == 303
    # ... and so does disabling it.
    c, r = sign_in(server)
    assert c.get("/ui/overview").status_code == 200
    api(server, "POST", f"/identities/{name}/disable")
    gone = c.get("/ui/overview")
    assert gone.status_code == 303
    assert gone.headers["location"].startswith("/ui/sign-in")
    since = last_seq(server)
    _, r = sign_in(server)
    assert_refused(server, r, since, 401, f"identity {name} is disabled", "ui_unknown_person",
                   actor=name)


def test_the_provider_down_fails_closed(server: Server, provider: Issuer) -> None:
    person(server, provider)
    since = last_seq(server)
    provider.available = False
    c = httpx.Client(base_url=server.url, timeout=30)
    r = c.get("/ui/oidc/start")
    assert_refused(server, r, since, 503, "OIDC issuer unavailable", "oidc_issuer_unavailable")
    # Down between the person's approval and the callback: no session either.
    provider.available = True
    back = authorize(begin(c))
    provider.available = False
    since = last_seq(server)
    assert_refused(server, c.get(back), since, 503, "OIDC issuer unavailable",
                   "oidc_issuer_unavailable")


@pytest.mark.skipif(not shutil.which(CHROMIUM),
                    reason="Debian's chromium is not installed (scripts/test.sh)")
def test_a_browser_signs_in_through_the_provider_across_sites(
        server: Server, provider: Issuer) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    name = person(server, provider)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            context = browser.new_context()
            page = context.new_page()
            violations: list[str] = []
            page.on("console", lambda m: violations.append(m.text)
                    if "Content Security Policy" in m.text else None)
            page.goto(server.url + "/ui/sign-in")
            provider.interactive = True
            page.get_by_role("link", name="Sign in with localhost").click()
            # On the provider's own page (another site): the way back begins there.
            page.wait_for_url(provider.url + "/authorize**")
            page.get_by_role("link", name="Continue").click()
            # A plain redirect from the callback would land on the sign-in page here: the
            # Strict cookie is kept back on a navigation that began at another site.
            page.wait_for_url(server.url + "/ui/overview", timeout=10_000)
            assert name in page.locator("header .who").inner_text()
            cookies = {c["name"]: c for c in context.cookies(server.url + "/ui/")}
            assert cookies["signgate_session"]["sameSite"] == "Strict"
            assert FLOW_COOKIE not in {c["name"] for c in context.cookies(
                server.url + "/ui/oidc/callback")}
            assert violations == []
        finally:
            browser.close()
