"""The web console in a real browser (Debian's chromium, headless, driven by Playwright):
sign in, filter the signatures (htmx refreshes the table) and download the CSV (equal to
'signgate report signatures --format csv'), open a signature, revoke a key through its
confirmation step and read its blast radius, a signer sees no admin action, and an
admin creates an identity (its token shown once) and verifies the audit log. No page
may trip the Content-Security-Policy (htmx runs under it).

The README's screenshots are taken from a seeded demo: tests/e2e/test_demo_seed.py."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import unique
from tests.support.server import Server
from tests.support.web import Seeded, api, seed, sign

CHROMIUM = "/usr/bin/chromium"

pytestmark = pytest.mark.skipif(not shutil.which(CHROMIUM),
                                reason="Debian's chromium is not installed (scripts/test.sh)")
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def seeded(sqlite_server: Server) -> Seeded:
    return seed(sqlite_server, signatures=6)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield b
        finally:
            b.close()


class Session:
    """One browser context signed in as one identity, collecting CSP violations."""

    def __init__(self, browser: object, server: Server, token: str,
                 keyboard: bool = False) -> None:
        self.context = browser.new_context(accept_downloads=True,  # type: ignore[attr-defined]
                                           viewport={"width": 1280, "height": 800})
        self.page = self.context.new_page()
        self.violations: list[str] = []
        self.page.on("console", lambda m: self.violations.append(m.text)
                     if "Content Security Policy" in m.text else None)
        self.url = server.url
        self.page.goto(server.url + "/ui/")
        if keyboard:  # the skip link, then the token field; Enter submits the form
            self.page.keyboard.press("Tab")
            self.page.keyboard.press("Tab")
            self.page.keyboard.type(token)
            self.page.keyboard.press("Enter")
        else:
            self.page.get_by_label("API token").fill(token)
            self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_url("**/ui/overview")

    def unlabelled(self) -> list[str]:
        """The form controls on the page without a label (every one must have one)."""
        out: list[str] = self.page.evaluate(
            "[...document.querySelectorAll('input:not([type=hidden]), select, textarea')]"
            ".filter(e => e.labels.length === 0).map(e => e.name || e.id)")
        return out

    def close(self) -> None:
        self.context.close()
        assert self.violations == []


def test_admin_filters_exports_opens_and_revokes(browser: object, sqlite_server: Server,
                                                 seeded: Seeded, tmp_path: Path) -> None:
    key = f"{seeded.p}/release"
    s = Session(browser, sqlite_server, sqlite_server.admin_token)
    page = s.page
    try:
        assert page.url.endswith("/ui/overview")
        page.get_by_role("navigation", name="Main").get_by_role("link",
                                                                name="Signatures").click()
        page.get_by_label("Key (PROJECT/NAME)").fill(key)
        page.get_by_role("button", name="Filter").click()
        page.wait_for_url(f"**/ui/signatures?*key={seeded.p}%2Frelease*")
        rows = page.locator("#results tbody tr")
        assert rows.count() == 6
        assert s.unlabelled() == []
        assert seeded.q not in page.locator("#results").inner_text()

        with page.expect_download() as download:
            page.locator("#export-csv").click()
        saved = tmp_path / "signatures.csv"
        download.value.save_as(saved)
        cli = sqlite_server.cli("report", "signatures", "--key", key, "--format", "csv").stdout
        assert saved.read_text() == cli

        page.locator("#results tbody tr").first.get_by_role("link").click()
        page.wait_for_url("**/ui/signatures/*")
        assert "Log entry" in page.content()
        assert "signgate log verify-receipt" in page.locator("#verify-commands").inner_text()

        page.goto(f"{s.url}/ui/keys/{key}")
        assert page.locator("#admin-actions").is_visible()

        burn = unique("burn")
        api(sqlite_server, "POST", f"/projects/{seeded.p}/keys", json={"name": burn})
        api(sqlite_server, "POST", "/grants", json={"identity": seeded.signer,
                                                    "role": "signer",
                                                    "scope": f"{seeded.p}/{burn}"})
        created = api(sqlite_server, "GET", f"/projects/{seeded.p}/keys/{burn}")["created_at"]
        for n in range(3):
            sign(sqlite_server, f"{seeded.p}/{burn}", f"b{n}".encode(), seeded.signer_token,
                 f"leaked-{n}.bin")
        page.goto(f"{s.url}/ui/keys/{seeded.p}/{burn}")
        page.get_by_role("link", name="Revoke…").click()
        assert s.unlabelled() == []
        page.get_by_label("Compromised at").fill(created)
        page.get_by_label("Reason").fill("key file found in a public bucket")
        page.get_by_label("Type").fill("yes")
        page.get_by_role("button", name=f"Revoke {seeded.p}/{burn}").click()
        assert page.locator(".error").inner_text().startswith("Type ")  # not confirmed
        page.get_by_label("Type").fill(f"{seeded.p}/{burn}")
        page.get_by_label("Compromised at").fill(created)
        page.get_by_role("button", name=f"Revoke {seeded.p}/{burn}").click()
        page.wait_for_url("**/blast-radius?since=*")
        assert page.locator("#blast-count").inner_text().startswith("3 signatures")
        assert page.locator("#blast-radius tbody tr").count() == 3
    finally:
        s.close()


def test_a_signer_sees_no_admin_action(browser: object, sqlite_server: Server,
                                       seeded: Seeded) -> None:
    s = Session(browser, sqlite_server, seeded.signer_token, keyboard=True)
    page = s.page
    try:
        assert page.url.endswith("/ui/overview")
        nav = page.get_by_role("navigation", name="Main").inner_text()
        assert "Keys" in nav
        assert "Signatures" not in nav
        page.get_by_role("link", name="Keys").click()
        page.wait_for_url("**/ui/keys")
        assert seeded.q not in page.content()
        page.get_by_role("link", name=f"{seeded.p}/release").click()
        page.wait_for_url(f"**/ui/keys/{seeded.p}/release")
        assert page.locator("#admin-actions").count() == 0
        assert page.get_by_role("button", name="Rotate").count() == 0
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url("**/ui/sign-in")
        page.set_content('<label for="a">A</label><input id="a"><input name="bare">')
        assert s.unlabelled() == ["bare"]  # the label check finds what it looks for
    finally:
        s.close()


def test_an_approver_approves_and_the_requesters_signature_appears(
        browser: object, sqlite_server: Server, seeded: Seeded) -> None:
    p, key = seeded.p, unique("held")
    api(sqlite_server, "POST", f"/projects/{p}/keys", json={"name": key})
    api(sqlite_server, "POST", f"/projects/{p}/keys/{key}/policy", json={"approvals": 1})
    approver = unique("web-approver")
    token = sqlite_server.new_identity(approver, "user")
    for who, role in ((seeded.signer, "signer"), (approver, "approver"),
                      (approver, "auditor")):
        api(sqlite_server, "POST", "/grants", json={"identity": who, "role": role,
                                                    "scope": f"{p}/{key}"})
    held = api(sqlite_server, "POST", f"/projects/{p}/keys/{key}/sign", seeded.signer_token,
               ok=(202,), json={"digest": "cd" * 32, "artifact_name": "waiting.bin"})
    s = Session(browser, sqlite_server, token)
    page = s.page
    try:
        page.goto(f"{s.url}/ui/approvals")
        page.get_by_role("link", name=held["request_id"][:8]).click()
        assert s.unlabelled() == []
        page.get_by_label("Comment (optional)").fill("looks right")
        page.get_by_role("button", name="Approve").click()
        page.wait_for_url(f"**/ui/approvals/{held['request_id']}")
        assert page.locator("#request-state").inner_text() == "signed"
        page.goto(f"{s.url}/ui/signatures?key={p}/{key}")
        rows = page.locator("#results tbody tr")
        assert rows.count() == 1
        assert seeded.signer in rows.first.inner_text()
        assert "waiting.bin" in rows.first.inner_text()
    finally:
        s.close()


def test_an_admin_creates_an_identity_and_verifies_the_audit_log(
        browser: object, sqlite_server: Server, seeded: Seeded) -> None:
    s = Session(browser, sqlite_server, sqlite_server.admin_token)
    page = s.page
    name = unique("web-robot")
    try:
        nav = page.get_by_role("navigation", name="Main")
        nav.get_by_role("link", name="Identities").click()
        page.wait_for_url("**/ui/identities")
        assert s.unlabelled() == []
        page.get_by_label("Name").fill(name)
        page.get_by_role("button", name="Create").click()
        token = page.get_by_label(f"API token of {name}").input_value()
        assert token.startswith("sgt_")
        assert sqlite_server.cli("whoami", "--json", token=token).json()["name"] == name
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit").click()
        page.wait_for_url("**/ui/audit")
        assert s.unlabelled() == []
        page.get_by_label("Action").select_option("identity.create")
        page.get_by_role("button", name="Filter").click()
        page.wait_for_url("**/ui/audit?*action=identity.create*")
        assert name in page.locator("#audit-entries tbody tr").last.inner_text()
        page.get_by_role("button", name="Verify the chain").click()
        assert page.locator("#verify-result").inner_text().startswith("Intact: ")
    finally:
        s.close()
