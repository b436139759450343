"""The web console (/ui/) over HTTP against a real server: its session cookie, CSRF
refusals, the CSP on every page, sessions ending when the identity is disabled or its
token rotated, scoping (a signer sees no admin action and no other project), the exports
equal to 'signgate report signatures', bad parameters answered 400, and the revocation
with its confirmation step and blast radius."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

import httpx
import pytest

from signgate.web.render import CSP
from tests.conftest import unique
from tests.support.server import Server
from tests.support.web import Seeded, api, csrf_of, seed, sign, sign_in


@pytest.fixture(scope="module")
def seeded(sqlite_server: Server) -> Seeded:
    return seed(sqlite_server)


@pytest.fixture(scope="module")
def admin(sqlite_server: Server, seeded: Seeded) -> Iterator[httpx.Client]:
    with sign_in(sqlite_server, sqlite_server.admin_token) as c:
        yield c


def assert_secured(r: httpx.Response) -> None:
    assert r.headers["content-security-policy"] == CSP, r.url
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"


def audit(server: Server, *args: str) -> list[dict[str, object]]:
    out: list[dict[str, object]] = server.cli("audit", "log", "--json", *args).json()
    return out


def test_sign_in_sets_a_strict_session_cookie_and_is_on_the_record(
        sqlite_server: Server, seeded: Seeded) -> None:
    with httpx.Client(base_url=sqlite_server.url) as c:
        form = c.get("/ui/sign-in")
        assert_secured(form)
        r = c.post("/ui/sign-in", data={"token": seeded.auditor_token,
                                        "csrf": csrf_of(form.text), "next": "/ui/keys"})
        assert r.status_code == 303
        assert r.headers["location"] == "/ui/keys"
        cookie = next(h for h in r.headers.get_list("set-cookie")
                      if h.startswith("signgate_session="))
        flags = {f.strip().split("=")[0].lower(): f.strip() for f in cookie.split(";")[1:]}
        assert "httponly" in flags
        assert flags["samesite"].lower() == "samesite=strict"
        assert flags["path"] == "Path=/ui/"
        assert "secure" not in flags  # plain HTTP here; over HTTPS: test_web_cookies.py
        session_id = cookie.split(";")[0].split("=", 1)[1]
        assert session_id not in sqlite_server.server_log()
        page = c.get("/ui/keys")
        assert page.status_code == 200
        assert f"{seeded.p}/release" in page.text
    created = [e for e in audit(sqlite_server, "--identity", seeded.auditor,
                                "--action", "ui.session.create")]
    assert [e["outcome"] for e in created] == ["allowed"]


def test_a_bad_token_is_refused_and_recorded(sqlite_server: Server) -> None:
    with httpx.Client(base_url=sqlite_server.url) as c:
        form = c.get("/ui/sign-in")
        r = c.post("/ui/sign-in", data={"token": "sgt_not-a-token",
                                        "csrf": csrf_of(form.text)})
        assert r.status_code == 401
        assert "Sign-in failed" in r.text
        assert "signgate_session" not in c.cookies
        assert_secured(r)
    refused = audit(sqlite_server, "--action", "auth.authenticate")
    assert any(e["details"]["attempted"] == "ui.session.create"  # type: ignore[index]
               for e in refused)


def test_posts_without_the_csrf_token_are_refused(sqlite_server: Server, seeded: Seeded,
                                                   admin: httpx.Client) -> None:
    ref = f"/ui/keys/{seeded.p}/spare"
    for data in ({}, {"csrf": "0" * 64}):
        r = admin.post(ref + "/disable", data=data)
        assert r.status_code == 403
        assert "CSRF" in r.text
        assert_secured(r)
    assert "state-active" in admin.get(ref).text  # nothing happened
    # The sign-in form's own token (double submit): a forged sign-in is refused too.
    with httpx.Client(base_url=sqlite_server.url) as c:
        r = c.post("/ui/sign-in", data={"token": sqlite_server.admin_token})
        assert r.status_code == 403
        assert "signgate_session" not in c.cookies
    # With the page's token (form field, or htmx's header) it goes through.
    token = csrf_of(admin.get(ref).text)
    assert admin.post(ref + "/disable", data={"csrf": token}).status_code == 303
    assert admin.post(ref + "/enable", headers={"X-CSRF-Token": token}).status_code == 303
    assert "state-active" in admin.get(ref).text


def test_every_page_carries_the_csp(admin: httpx.Client, seeded: Seeded) -> None:
    seq = json.loads(admin.get(f"/ui/signatures.json?key={seeded.p}/release").text)[
        "signatures"][0]["audit_seq"]
    for path in ("/ui/sign-in", "/ui/overview", "/ui/approvals", "/ui/signatures",
                 f"/ui/signatures/{seq}", "/ui/keys",
                 f"/ui/keys/{seeded.p}/release", f"/ui/keys/{seeded.p}/release/revoke",
                 "/ui/signatures.csv", "/ui/no-such-page", "/ui/signatures?since=nonsense",
                 "/ui/static/style.css", "/ui/static/htmx.min.js"):
        r = admin.get(path)
        assert r.status_code in (200, 400, 404), (path, r.status_code)
        assert_secured(r)
        if r.headers["content-type"].startswith("text/html"):  # no inline script or style
            assert "<script>" not in r.text
            assert " style=" not in r.text
            assert " onclick=" not in r.text


def test_pages_escape_what_they_show(admin: httpx.Client, seeded: Seeded) -> None:
    page = admin.get(f"/ui/signatures?project={seeded.q}").text
    assert "&lt;script&gt;nightly&lt;/script&gt;.bin" in page
    assert "<script>nightly" not in page


@pytest.mark.parametrize("query", [
    "since=yesterday", "until=2026-13-01", "limit=abc", "limit=0", "limit=100000",
    "after=-1", "key=no-slash", "since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z",
    "project=" + "x" * 200,
])
def test_bad_filters_are_a_400_page(admin: httpx.Client, query: str) -> None:
    for path in ("/ui/signatures", "/ui/signatures.csv"):
        r = admin.get(f"{path}?{query}")
        assert r.status_code == 400, (path, query, r.text)
        assert "text/html" in r.headers["content-type"]
        assert_secured(r)


def test_bad_paths_are_400_or_404_never_500(admin: httpx.Client) -> None:
    assert admin.get("/ui/signatures/abc").status_code == 400
    assert admin.get("/ui/signatures/0").status_code == 400
    assert admin.get("/ui/signatures/999999999").status_code == 404
    assert admin.get("/ui/keys/nope/nothing").status_code == 404
    assert admin.get("/ui/keys/x/y/blast-radius?since=bad").status_code == 400


def test_exports_equal_the_cli_report(sqlite_server: Server, seeded: Seeded) -> None:
    key = f"{seeded.p}/release"
    with sign_in(sqlite_server, seeded.auditor_token) as c:
        web_csv = c.get(f"/ui/signatures.csv?key={key}")
        web_json = c.get(f"/ui/signatures.json?project={seeded.p}")
        # A project auditor opens its project's signatures, not another project's.
        first = json.loads(web_json.text)["signatures"][0]["audit_seq"]
        assert c.get(f"/ui/signatures/{first}").status_code == 200
        other = json.loads(c.get("/ui/signatures.json").text)["signatures"]
        assert {r["key"].split("/")[0] for r in other} == {seeded.p}
    cli_csv = sqlite_server.cli("report", "signatures", "--key", key, "--format", "csv",
                                token=seeded.auditor_token).stdout
    assert web_csv.status_code == 200
    assert web_csv.text == cli_csv
    assert len(list(csv.DictReader(io.StringIO(cli_csv)))) == 3
    cli_json = sqlite_server.cli("report", "signatures", "--project", seeded.p, "--format",
                                 "json", token=seeded.auditor_token).json()
    assert json.loads(web_json.text) == cli_json


def test_paging_follows_the_seq_cursor(admin: httpx.Client, seeded: Seeded) -> None:
    key = f"{seeded.p}/release"
    first = admin.get(f"/ui/signatures?key={key}&limit=25")
    assert first.text.count('href="/ui/signatures/') == 3
    assert "Next page" not in first.text
    # htmx asks for the rows only.
    part = admin.get(f"/ui/signatures?key={key}", headers={"HX-Request": "true"})
    assert "<html" not in part.text
    assert "app-0.tar.gz" in part.text


def test_signature_detail_shows_the_log_entry_and_how_to_verify(
        admin: httpx.Client, seeded: Seeded) -> None:
    rows = json.loads(admin.get(f"/ui/signatures.json?key={seeded.p}/release").text)
    row = rows["signatures"][0]
    page = admin.get(f"/ui/signatures/{row['audit_seq']}").text
    for shown in (row["signature_id"], row["digest"], f"Log index</dt><dd>{row['log_index']}",
                  f"signgate verify app-0.tar.gz --signature app-0.tar.gz.sig --key "
                  f"{seeded.p}/release", "signgate log verify-receipt"):
        assert shown in page


def test_an_auditor_cannot_open_another_projects_signature(
        sqlite_server: Server, seeded: Seeded, admin: httpx.Client) -> None:
    theirs = json.loads(admin.get(f"/ui/signatures.json?project={seeded.q}").text)
    seq = theirs["signatures"][0]["audit_seq"]
    assert admin.get(f"/ui/signatures/{seq}").status_code == 200
    with sign_in(sqlite_server, seeded.auditor_token) as c:
        assert c.get(f"/ui/signatures/{seq}").status_code == 404


def test_a_signer_sees_no_admin_action_and_no_other_project(
        sqlite_server: Server, seeded: Seeded) -> None:
    with sign_in(sqlite_server, seeded.signer_token) as c:
        keys = c.get("/ui/keys").text
        assert f"{seeded.p}/release" in keys
        assert seeded.q not in keys
        assert f"{seeded.p}/spare" not in keys
        assert 'href="/ui/signatures"' not in keys  # no audit grant: no Signatures page
        key_page = c.get(f"/ui/keys/{seeded.p}/release")
        assert key_page.status_code == 200
        assert "admin-actions" not in key_page.text
        assert "Revoke" not in key_page.text
        token = csrf_of(key_page.text)
        refused = c.post(f"/ui/keys/{seeded.p}/release/rotate", data={"csrf": token})
        assert refused.status_code == 403
        assert c.get(f"/ui/keys/{seeded.q}/nightly").status_code == 404
        assert c.get(f"/ui/signatures?project={seeded.q}").status_code == 403


def test_disabling_the_identity_or_rotating_its_token_ends_its_sessions(
        sqlite_server: Server) -> None:
    name = unique("web-gone")
    token = sqlite_server.new_identity(name)
    with sign_in(sqlite_server, token) as c:
        assert c.get("/ui/keys").status_code == 200
        sqlite_server.cli("identity", "disable", name)
        r = c.get("/ui/keys")
        assert r.status_code == 303
        assert r.headers["location"].startswith("/ui/sign-in")
        sqlite_server.cli("identity", "enable", name)
    with sign_in(sqlite_server, token) as c:
        assert c.get("/ui/keys").status_code == 200
        sqlite_server.cli("identity", "rotate-token", name)
        assert c.get("/ui/keys").status_code == 303


def test_sign_out_ends_the_session(sqlite_server: Server) -> None:
    with sign_in(sqlite_server, sqlite_server.admin_token) as c:
        session = c.cookies["signgate_session"]
        page = c.get("/ui/keys")
        r = c.post("/ui/sign-out", data={"csrf": csrf_of(page.text)})
        assert r.status_code == 303
    with httpx.Client(base_url=sqlite_server.url,
                      cookies={"signgate_session": session}) as replay:
        assert replay.get("/ui/keys").status_code == 303  # the old cookie names nothing


def test_revoke_asks_for_confirmation_then_shows_the_blast_radius(
        sqlite_server: Server, seeded: Seeded, admin: httpx.Client) -> None:
    p = seeded.p
    key = unique("burn")
    api(sqlite_server, "POST", f"/projects/{p}/keys", json={"name": key})
    api(sqlite_server, "POST", "/grants", json={"identity": seeded.signer, "role": "signer",
                                                "scope": f"{p}/{key}"})
    created = admin.get(f"/ui/keys/{p}/{key}").text
    when = api(sqlite_server, "GET", f"/projects/{p}/keys/{key}")["created_at"]
    sign(sqlite_server, f"{p}/{key}", b"one", seeded.signer_token, "one.bin")
    sign(sqlite_server, f"{p}/{key}", b"two", seeded.signer_token, "two.bin")
    form = admin.get(f"/ui/keys/{p}/{key}/revoke")
    token = csrf_of(form.text)
    unconfirmed = admin.post(f"/ui/keys/{p}/{key}/revoke",
                             data={"csrf": token, "compromised_at": when, "confirm": "yes"})
    assert unconfirmed.status_code == 400
    assert "to confirm" in unconfirmed.text
    assert "state-active" in admin.get(f"/ui/keys/{p}/{key}").text
    r = admin.post(f"/ui/keys/{p}/{key}/revoke",
                   data={"csrf": token, "compromised_at": when, "reason": "leaked",
                         "confirm": f"{p}/{key}"})
    assert r.status_code == 303
    assert "/blast-radius?since=" in r.headers["location"]
    radius = admin.get(r.headers["location"]).text
    assert "2 signatures" in radius
    assert "one.bin" in radius
    assert "two.bin" in radius
    assert "state-revoked" in admin.get(f"/ui/keys/{p}/{key}").text
    assert "state-active" in created


def test_an_approver_approves_in_the_console_and_the_signature_is_made(
        sqlite_server: Server, seeded: Seeded) -> None:
    p = seeded.p
    key = unique("held")
    api(sqlite_server, "POST", f"/projects/{p}/keys", json={"name": key})
    api(sqlite_server, "POST", f"/projects/{p}/keys/{key}/policy", json={"approvals": 1})
    approver = unique("web-approver")
    approver_token = sqlite_server.new_identity(approver, "user")
    for who, role in ((seeded.signer, "signer"), (approver, "approver")):
        api(sqlite_server, "POST", "/grants", json={"identity": who, "role": role,
                                                    "scope": f"{p}/{key}"})
    with sqlite_server.http(seeded.signer_token) as http:
        held = http.post(f"/api/v1/projects/{p}/keys/{key}/sign",
                         json={"digest": "ab" * 32, "artifact_name": "held.bin"})
    assert held.status_code == 202, held.text
    rid = held.json()["request_id"]
    with sign_in(sqlite_server, seeded.signer_token) as requester:
        own = requester.get(f"/ui/approvals/{rid}")
        refused = requester.post(f"/ui/approvals/{rid}/approve",
                                 data={"csrf": csrf_of(own.text)})
        assert refused.status_code == 403  # never one's own request
    with sign_in(sqlite_server, approver_token) as c:
        queue = c.get("/ui/approvals").text
        assert rid[:8] in queue
        assert "held.bin" in queue
        page = c.get(f"/ui/approvals/{rid}")
        r = c.post(f"/ui/approvals/{rid}/approve",
                   data={"csrf": csrf_of(page.text), "comment": "release 1.0 reviewed"})
        assert r.status_code == 303
        done = c.get(f"/ui/approvals/{rid}").text
        assert 'id="request-state">signed<' in done
        assert "release 1.0 reviewed" in done
    report = sqlite_server.cli("report", "signatures", "--key", f"{p}/{key}", "--format",
                               "json").json()["signatures"]
    assert [(s["artifact_name"], s["identity"]) for s in report] == [
        ("held.bin", seeded.signer)]


def test_the_overview_shows_what_needs_attention(sqlite_server: Server, seeded: Seeded,
                                                 admin: httpx.Client) -> None:
    due = unique("due")
    api(sqlite_server, "POST", f"/projects/{seeded.p}/keys",
        json={"name": due, "rotate_every_days": 7})
    page = admin.get("/ui/overview")
    assert page.status_code == 200
    assert f"{seeded.p}/{due}" in page.text.split('id="rotation-due"')[1].split("</ul>")[0]
    assert f"{seeded.p}/release</a></td><td>3<" in page.text  # the last 30 days, per key
    assert "cosigned by 0 witnesses" in page.text
    assert admin.get("/ui/").headers["location"] == "/ui/overview"
    with sign_in(sqlite_server, seeded.signer_token) as c:  # no audit grant: no totals
        mine = c.get("/ui/overview").text
        assert 'id="by-key"' not in mine
        assert seeded.q not in mine
