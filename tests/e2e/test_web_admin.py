"""The console's Identities and grants page and its Audit page over HTTP against a real
server: a new identity's token shown once and working with the CLI, disabling behind CSRF
and a confirmation step ending the identity's sessions and token, grants added and
revoked in the console equal to 'signgate grant list --json', a signer offered neither
page, the audit filters equal to 'signgate audit log --json', bad filters a 400 page, and
the chain's verification reporting intact, then the entry edited behind signgate's back."""

from __future__ import annotations

import html
import re
import sqlite3
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from signgate.web.render import CSP
from tests.conftest import unique
from tests.support.server import Server
from tests.support.web import Seeded, api, csrf_of, seed, sign_in

TOKEN = re.compile(r'id="new-token"[^>]* value="([^"]+)"')
GRANT = re.compile(r'<tr class="grant" data-identity="([^"]*)" data-role="([^"]*)" '
                   r'data-scope="([^"]*)"')
SEQ = re.compile(r'<tr data-seq="(\d+)"')
NEXT = re.compile(r'<a class="next" href="([^"]+)"')


@pytest.fixture(scope="module")
def seeded(sqlite_server: Server) -> Seeded:
    return seed(sqlite_server)


@pytest.fixture(scope="module")
def admin(sqlite_server: Server, seeded: Seeded) -> Iterator[httpx.Client]:
    with sign_in(sqlite_server, sqlite_server.admin_token) as c:
        yield c


def new_token(page: str) -> str:
    m = TOKEN.search(page)
    assert m, "no token on the page"
    return html.unescape(m.group(1))


def grants_on(page: str) -> set[tuple[str, str, str]]:
    return {tuple(html.unescape(v) for v in m) for m in GRANT.findall(page)}  # type: ignore[misc]


def cli_grants(server: Server, token: str | None = None) -> set[tuple[str, str, str]]:
    rows: list[dict[str, Any]] = server.cli("grant", "list", "--json", token=token).json()
    return {(g["identity"], g["role"], g["scope"]) for g in rows if not g.get("oidc_issuer")}


def whoami(server: Server, token: str) -> int:
    with server.http(token) as http:
        return http.get("/api/v1/whoami").status_code


def test_a_new_identitys_token_is_shown_once_and_works(sqlite_server: Server,
                                                       admin: httpx.Client) -> None:
    name = unique("web-new")
    listing = admin.get("/ui/identities")
    assert listing.status_code == 200
    assert listing.headers["content-security-policy"] == CSP
    created = admin.post("/ui/identities", data={"csrf": csrf_of(listing.text),
                                                 "name": name, "kind": "user"})
    assert created.status_code == 200, created.text
    assert created.headers["cache-control"] == "no-store"
    token = new_token(created.text)
    again = admin.get("/ui/identities").text
    assert f'data-identity="{name}"' in again
    assert token not in again  # shown once: no later page has it
    assert token not in sqlite_server.server_log()
    me = sqlite_server.cli("whoami", "--json", token=token).json()
    assert (me["name"], me["kind"]) == (name, "user")
    row = again.split(f'data-identity="{name}"')[1].split("</tr>")[0]
    assert ">never<" in row  # token last rotated

    rotated = admin.post(f"/ui/identities/{name}/rotate-token",
                         data={"csrf": csrf_of(again)})
    assert rotated.status_code == 200
    fresh = new_token(rotated.text)
    assert fresh != token
    assert (whoami(sqlite_server, token), whoami(sqlite_server, fresh)) == (401, 200)
    row = admin.get("/ui/identities").text.split(f'data-identity="{name}"')[1]
    assert ">never<" not in row.split("</tr>")[0]
    entries = sqlite_server.cli("audit", "log", "--json", "--identity", "admin",
                                "--action", "identity.rotate-token").json()
    assert entries[-1]["subject"] == name  # the same use case, on the record as there


def test_disable_needs_csrf_and_confirmation_and_ends_sessions_and_token(
        sqlite_server: Server, admin: httpx.Client) -> None:
    name = unique("web-victim")
    token = sqlite_server.new_identity(name)
    path = f"/ui/identities/{name}/disable"
    with sign_in(sqlite_server, token) as victim:
        assert victim.get("/ui/keys").status_code == 200
        assert admin.post(path, data={"confirm": name}).status_code == 403  # no CSRF
        form = admin.get(path)
        assert form.status_code == 200
        assert f"Type <strong>{name}</strong> to confirm" in form.text
        csrf = csrf_of(form.text)
        unconfirmed = admin.post(path, data={"csrf": csrf, "confirm": "yes"})
        assert unconfirmed.status_code == 400
        assert "to confirm" in unconfirmed.text
        assert victim.get("/ui/keys").status_code == 200  # nothing happened yet
        r = admin.post(path, data={"csrf": csrf, "confirm": name})
        assert r.status_code == 303
        assert victim.get("/ui/keys").status_code == 303  # its session ended at once
        assert whoami(sqlite_server, token) == 401
        page = admin.get("/ui/identities").text
        assert "state-disabled" in page.split(f'data-identity="{name}"')[1].split("</tr>")[0]
        assert admin.post(f"/ui/identities/{name}/enable",
                          data={"csrf": csrf}).status_code == 303
        assert whoami(sqlite_server, token) == 200
    # One cannot disable oneself (the use case says so; the page offers no button).
    me = admin.post("/ui/identities/admin/disable", data={"csrf": csrf, "confirm": "admin"})
    assert me.status_code == 409


def test_grants_in_the_console_equal_the_cli(sqlite_server: Server, seeded: Seeded,
                                             admin: httpx.Client) -> None:
    issuer = unique("ci")
    api(sqlite_server, "POST", "/oidc/issuers", json={
        "name": issuer, "issuer": f"https://{issuer}.example", "audience": "signgate",
        "jwks_url": f"https://{issuer}.example/jwks"})
    api(sqlite_server, "POST", "/grants", json={
        "oidc": issuer, "claims": ["repository=acme/app"], "role": "signer",
        "scope": f"{seeded.p}/release"})
    page = admin.get("/ui/identities").text
    assert grants_on(page) == cli_grants(sqlite_server)
    oidc = page.split('id="oidc-grants"')[1].split("</table>")[0]
    assert issuer in oidc
    assert "<code>repository=acme/app</code>" in oidc
    assert "<form" not in oidc  # read-only here

    added = admin.post("/ui/grants", data={"csrf": csrf_of(page), "identity": seeded.auditor,
                                           "role": "approver", "scope": f"{seeded.p}/spare"})
    assert added.status_code == 303
    page = admin.get("/ui/identities").text
    assert (seeded.auditor, "approver", f"{seeded.p}/spare") in grants_on(page)
    assert grants_on(page) == cli_grants(sqlite_server)
    removed = admin.post("/ui/grants/remove", data={
        "csrf": csrf_of(page), "identity": seeded.auditor, "role": "approver",
        "scope": f"{seeded.p}/spare"})
    assert removed.status_code == 303
    page = admin.get("/ui/identities").text
    assert (seeded.auditor, "approver", f"{seeded.p}/spare") not in grants_on(page)
    assert grants_on(page) == cli_grants(sqlite_server)
    bad = admin.post("/ui/grants", data={"csrf": csrf_of(page), "identity": seeded.auditor,
                                         "role": "owner", "scope": seeded.p})
    assert bad.status_code == 400
    assert "unknown role" in bad.text
    on_record = sqlite_server.cli("audit", "log", "--json", "--identity", "admin",
                                  "--project", seeded.p, "--action", "grant.remove").json()
    assert on_record[-1]["details"] == {"identity": seeded.auditor, "role": "approver",
                                        "scope": f"{seeded.p}/spare"}


def test_a_project_admin_sees_and_grants_within_its_project(sqlite_server: Server,
                                                            seeded: Seeded) -> None:
    name = unique("web-padmin")
    token = sqlite_server.new_identity(name, "user")
    api(sqlite_server, "POST", "/grants", json={"identity": name, "role": "admin",
                                                "scope": seeded.p})
    with sign_in(sqlite_server, token) as c:
        page = c.get("/ui/identities")
        assert page.status_code == 200
        assert 'href="/ui/identities"' in page.text
        assert 'id="identities"' not in page.text  # the identity list is global admins'
        assert 'id="create-identity"' not in page.text
        shown = grants_on(page.text)
        assert shown == cli_grants(sqlite_server, token)
        assert {s.split("/")[0] for _, _, s in shown} == {seeded.p}
        csrf = csrf_of(page.text)
        ok = c.post("/ui/grants", data={"csrf": csrf, "identity": seeded.signer,
                                        "role": "approver", "scope": f"{seeded.p}/release"})
        assert ok.status_code == 303
        refused = c.post("/ui/grants", data={"csrf": csrf, "identity": seeded.signer,
                                             "role": "signer", "scope": seeded.q})
        assert refused.status_code == 403
        assert c.post("/ui/identities", data={"csrf": csrf, "name": unique("x")}
                      ).status_code == 403
        assert c.get("/ui/identities/admin/disable").status_code == 403


def test_a_signer_is_offered_neither_page(sqlite_server: Server, seeded: Seeded) -> None:
    with sign_in(sqlite_server, seeded.signer_token) as c:
        keys = c.get("/ui/keys").text
        assert 'href="/ui/identities"' not in keys
        assert 'href="/ui/audit"' not in keys
        csrf = csrf_of(keys)
        for path in ("/ui/identities", "/ui/audit", "/ui/audit/1"):
            r = c.get(path)
            assert r.status_code == 403, path
            assert "<form" not in r.text.split("</header>")[1]
        for path, data in (("/ui/identities", {"name": unique("x")}),
                           ("/ui/grants", {"identity": seeded.signer, "role": "admin",
                                           "scope": seeded.p}),
                           (f"/ui/identities/{seeded.auditor}/rotate-token", {}),
                           ("/ui/audit/verify", {})):
            assert c.post(path, data={"csrf": csrf, **data}).status_code == 403, path
    assert (seeded.signer, "admin", seeded.p) not in cli_grants(sqlite_server)


def seqs(client: httpx.Client, query: str) -> list[int]:
    """Every entry the console lists for ``query``, following its Next page links."""
    out: list[int] = []
    url: str | None = f"/ui/audit?{query}"
    while url:
        r = client.get(url)
        assert r.status_code == 200, (url, r.text)
        out += [int(s) for s in SEQ.findall(r.text)]
        m = NEXT.search(r.text)
        url = html.unescape(m.group(1)) if m else None
    return out


def cli_seqs(server: Server, *args: str, token: str | None = None) -> list[int]:
    return [e["seq"] for e in server.cli("audit", "log", "--json", *args, token=token).json()]


def test_audit_filters_equal_the_cli(sqlite_server: Server, seeded: Seeded,
                                     admin: httpx.Client) -> None:
    with sqlite_server.http(seeded.signer_token) as http:  # a refusal on the record
        assert http.post(f"/api/v1/projects/{seeded.p}/keys/release/rotate").status_code \
            == 403
    entries = sqlite_server.cli("audit", "log", "--json").json()
    everything = [e["seq"] for e in entries]
    assert seqs(admin, "limit=25") == everything  # three pages and more
    cases = [
        (f"identity={seeded.signer}", ["--identity", seeded.signer]),
        (f"key={seeded.p}/release&action=signature.create",
         ["--key", f"{seeded.p}/release", "--action", "signature.create"]),
        (f"project={seeded.p}&outcome=refused", ["--project", seeded.p, "--outcome", "refused"]),
        ("outcome=allowed&since=2000-01-01T00:00:00Z&until=2100-01-01",
         ["--outcome", "allowed", "--since", "2000-01-01T00:00:00Z", "--until", "2100-01-01"]),
        ("since=2100-01-01", ["--since", "2100-01-01"]),
    ]
    for query, args in cases:
        assert seqs(admin, f"{query}&limit=500") == cli_seqs(sqlite_server, *args), query
    refused = [e["seq"] for e in entries
               if e["project"] == seeded.p and e["outcome"] == "refused"]
    assert refused
    assert cli_seqs(sqlite_server, "--project", seeded.p, "--outcome", "refused") == refused
    # A project auditor reads its project's entries only, as from the CLI.
    with sign_in(sqlite_server, seeded.auditor_token) as c:
        mine = seqs(c, "limit=500")
        assert mine == cli_seqs(sqlite_server, token=seeded.auditor_token)
        assert mine
        assert len(mine) < len(everything)
        assert 'id="verify-form"' not in c.get("/ui/audit").text
        assert c.post("/ui/audit/verify", data={"csrf": csrf_of(c.get("/ui/audit").text)}
                      ).status_code == 403
        other = next(s for s in everything if s not in mine)
        assert c.get(f"/ui/audit/{other}").status_code == 404
        assert c.get(f"/ui/audit?project={seeded.q}").status_code == 403
    # htmx asks for the table only.
    part = admin.get(f"/ui/audit?identity={seeded.signer}", headers={"HX-Request": "true"})
    assert "<html" not in part.text
    assert 'id="audit-entries"' in part.text


@pytest.mark.parametrize("query", [
    "since=yesterday", "until=2026-13-01", "limit=abc", "limit=0", "limit=100000",
    "after=-1", "action=key.melt", "outcome=maybe", "key=no-slash",
    "since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z", "identity=" + "x" * 200,
])
def test_bad_audit_filters_are_a_400_page(admin: httpx.Client, query: str) -> None:
    r = admin.get(f"/ui/audit?{query}")
    assert r.status_code == 400, (query, r.text)
    assert "text/html" in r.headers["content-type"]
    assert r.headers["content-security-policy"] == CSP
    for path in ("/ui/audit/abc", "/ui/audit/0"):
        assert admin.get(path).status_code == 400


def test_every_page_carries_the_csp_and_no_inline_script(admin: httpx.Client) -> None:
    for path in ("/ui/identities", "/ui/identities/admin/disable", "/ui/audit",
                 "/ui/audit/1", "/ui/audit?since=nonsense"):
        r = admin.get(path)
        assert r.status_code in (200, 400), path
        assert r.headers["content-security-policy"] == CSP, path
        assert r.headers["cache-control"] == "no-store", path
        for inline in ("<script>", " style=", " onclick="):
            assert inline not in r.text, (path, inline)


def test_an_entry_page_shows_every_field(sqlite_server: Server, seeded: Seeded,
                                         admin: httpx.Client) -> None:
    e = sqlite_server.cli("audit", "log", "--json", "--key", f"{seeded.p}/release",
                          "--action", "signature.create").json()[0]
    page = html.unescape(admin.get(f"/ui/audit/{e['seq']}").text)
    for shown in (e["prev_hash"], e["entry_hash"], e["actor"], e["details"]["digest"],
                  f'\n  "key_version": {e["details"]["key_version"]}'):
        assert shown in page, shown
    assert admin.get("/ui/audit/999999999").status_code == 404


def result(page: str) -> str:
    """The text of the verification's result paragraph."""
    m = re.search(r'id="verify-result"[^>]*>(.*?)</p>', page, re.S)
    assert m, "no verification result on the page"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", m.group(1))).split())


def test_verification_reports_intact_then_the_edited_entry(sqlite_server: Server,
                                                           admin: httpx.Client) -> None:
    page = admin.get("/ui/audit").text
    assert 'id="verify-form"' in page
    with sqlite_server.http() as http:
        note = http.get("/log/checkpoint").text
    size = note.split("\n")[1]
    assert f"checkpoint: <strong>{size}</strong> entries" in page
    assert note.split("\n")[2] in page  # the root hash, as the note has it
    assert admin.post("/ui/audit/verify").status_code == 403  # no CSRF
    csrf = csrf_of(page)
    intact = admin.post("/ui/audit/verify", data={"csrf": csrf})
    assert intact.status_code == 200
    cli = sqlite_server.cli("audit", "verify", "--json").json()
    assert result(intact.text) == (f"Intact: {cli['entries']} entries checked; head entry "
                                   f"{cli['head_seq']}, hash {cli['head_hash']}.")

    n = cli["head_seq"] // 2
    db = sqlite3.connect(sqlite_server.data_dir / "signgate.db", timeout=30)
    try:
        (actor,) = db.execute("SELECT actor FROM audit_entries WHERE seq = ?", (n,)).fetchone()
        with db:
            db.execute("UPDATE audit_entries SET actor = 'mallory' WHERE seq = ?", (n,))
        broken = admin.post("/ui/audit/verify", data={"csrf": csrf})
        assert broken.status_code == 200
        shown = result(broken.text)
        assert shown.startswith(f"BROKEN at entry {n}: entry {n} does not match its hash"), \
            shown
        assert f'href="/ui/audit/{n}"' in broken.text
    finally:
        with db:
            db.execute("UPDATE audit_entries SET actor = ? WHERE seq = ?", (actor, n))
        db.close()
    again = admin.post("/ui/audit/verify", data={"csrf": csrf})
    assert result(again.text).startswith("Intact: ")
