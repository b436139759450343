"""'signgate demo seed': a new data directory filled with a month of activity that serves,
whose overview shows it, whose audit chain verifies, and whose story holds (a rotated key,
a revoked one with its blast radius, a request waiting, refusals, scoped identities).
Seeding the same directory again is refused in one line. In a real browser (Debian's
chromium), the seeded overview, signatures and key pages render under the CSP; with
SIGNGATE_SCREENSHOTS=1 they are saved to docs/screenshots/ (the README shows them)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.demo import demo_server
from tests.support.server import SIGNGATE, Server, base_env
from tests.support.web import api, sign_in


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, Any]]]:
    with demo_server(tmp_path_factory.mktemp("demo") / "data") as served:
        yield served


def test_the_seeded_directory_serves_a_populated_console(
        demo: tuple[Server, dict[str, Any]]) -> None:
    srv, seeded = demo
    assert seeded["projects"] == ["acme-app", "acme-firmware", "tools"]
    assert len(seeded["keys"]) == 5
    assert len(seeded["pending_requests"]) == 1
    assert seeded["signatures"] >= 200
    assert seeded["refusals"] >= 3
    with sign_in(srv, srv.admin_token) as c:
        page = c.get("/ui/overview").text
    assert f"Signatures in the last 30 days: {seeded['signatures']}" in page
    assert page.count('class="bar"') >= 40  # most days of the month have bars
    assert 'class="bar refused"' in page
    assert "acme-app/nightly</a>:" in page  # due for rotation within 14 days
    assert '1 signing request</a> waiting' in page
    totals = api(srv, "GET", "/reports/signatures/totals")
    assert totals["signatures"] == seeded["signatures"]
    first = datetime.fromisoformat(min(t["first"] for t in totals["by_key"]))
    assert first < datetime.now(UTC) - timedelta(days=20)  # backdated over the month


def test_the_audit_chain_and_log_verify(demo: tuple[Server, dict[str, Any]]) -> None:
    srv, _ = demo
    out = srv.cli("audit", "verify").stdout
    assert out.startswith("audit log intact:"), out


def test_the_story_holds(demo: tuple[Server, dict[str, Any]]) -> None:
    srv, seeded = demo
    release = api(srv, "GET", "/projects/acme-app/keys/release")
    assert [v["version"] for v in release["versions"]] == [1, 2]  # rotated
    firmware = api(srv, "GET", "/projects/acme-firmware/keys/firmware")
    assert firmware["state"] == "revoked"
    refused = srv.cli("report", "signatures", "--outcome", "refused", "--json").json()
    assert len(refused["signatures"]) == seeded["refusals"]
    formats = {r["format"] for r in srv.cli("report", "signatures", "--json").json()
               ["signatures"]}
    assert {"raw", "cms", "authenticode"} <= formats
    carol = Path(seeded["identities"]["carol"]).read_text().strip()
    assert oct(Path(seeded["identities"]["carol"]).stat().st_mode & 0o777) == "0o600"
    with sign_in(srv, carol) as c:  # an auditor of acme-app and acme-firmware only
        page = c.get("/ui/overview").text
    chart = page.split('id="daily-table"')[1]
    assert "acme-app" in chart
    assert "tools" not in chart.split("</table>")[0]


def test_seeding_twice_is_refused_in_one_line(demo: tuple[Server, dict[str, Any]]) -> None:
    srv, _ = demo
    proc = subprocess.run([SIGNGATE, "demo", "seed", "--data-dir", str(srv.data_dir)],
                          capture_output=True, text=True, env=base_env(None), timeout=120)
    assert proc.returncode != 0
    assert "already holds project acme-app" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def shot(page: Any, name: str) -> None:
    if os.environ.get("SIGNGATE_SCREENSHOTS") == "1":
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / name), full_page=True)


@pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian's chromium is not installed")
def test_the_seeded_pages_in_a_browser(demo: tuple[Server, dict[str, Any]]) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    srv, _ = demo
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
            violations: list[str] = []
            page.on("console", lambda m: violations.append(m.text)
                    if "Content Security Policy" in m.text else None)
            page.goto(srv.url + "/ui/")
            page.get_by_label("API token").fill(srv.admin_token)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url("**/ui/overview")
            chart = page.locator("#daily-chart svg")
            assert chart.is_visible()
            assert chart.bounding_box()["height"] > 150  # drawn, not collapsed
            assert page.get_by_role("img", name="Signatures per day per project").count() == 1
            shot(page, "overview.png")
            page.goto(srv.url + "/ui/signatures?project=acme-app&limit=25")
            assert page.locator("#results tbody tr").count() == 25
            shot(page, "signatures.png")
            page.goto(srv.url + "/ui/keys/acme-app/release")
            assert page.locator("#admin-actions").is_visible()
            shot(page, "key.png")
            assert violations == []
        finally:
            browser.close()
