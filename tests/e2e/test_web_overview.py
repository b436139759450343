"""The console's overview chart and health, and the signatures' format and outcome filters,
against real servers on SQLite and PostgreSQL (the per-day grouping and the JSON format
read differ between them): the chart's numbers are the signings and refusals made, scoped
like the reports; the filtered CSV equals 'signgate report signatures' with the same
filters; the scanner health shows a clamd going from unreachable to reachable."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import unique
from tests.support.clamd import Clamd
from tests.support.server import Server, start_server
from tests.support.web import api, sign_in


class World:
    """Two projects: 3 signatures (2 raw, 1 cms) on p, 1 on q, and 2 refused signings on p
    (the signer has no grant on p/other)."""

    def __init__(self, server: Server) -> None:
        self.p, self.q = unique("ov-p"), unique("ov-q")
        self.signer, self.auditor = unique("ov-signer"), unique("ov-aud")
        for name in (self.p, self.q):
            api(server, "POST", "/projects", json={"name": name})
        for ref in (f"{self.p}/k", f"{self.p}/other", f"{self.q}/k"):
            project, key = ref.split("/")
            api(server, "POST", f"/projects/{project}/keys", json={"name": key})
        self.signer_token, self.auditor_token = (
            api(server, "POST", "/identities", json={"name": n})["token"]
            for n in (self.signer, self.auditor))
        for scope in (f"{self.p}/k", f"{self.q}/k"):
            api(server, "POST", "/grants", json={"identity": self.signer, "role": "signer",
                                                 "scope": scope})
        api(server, "POST", "/grants", json={"identity": self.auditor, "role": "auditor",
                                             "scope": self.p})
        for n, fmt in enumerate(["raw", "cms", "raw"]):
            self.sign(server, f"{self.p}/k", f"p{n}", fmt)
        self.sign(server, f"{self.q}/k", "q0", "raw")
        for n in range(2):
            self.sign(server, f"{self.p}/other", f"refused-{n}", "raw", ok=(403,))

    def sign(self, server: Server, ref: str, name: str, fmt: str,
             ok: tuple[int, ...] = (200,)) -> None:
        project, key = ref.split("/")
        api(server, "POST", f"/projects/{project}/keys/{key}/sign", self.signer_token, ok=ok,
            json={"digest": hashlib.sha256(name.encode()).hexdigest(),
                  "artifact_name": f"{name}.bin", "format": fmt})


@pytest.fixture(scope="module")
def world(server: Server) -> World:
    return World(server)


def daily_table(html: str) -> dict[str, int]:
    """The hidden table's column sums: project (or "Refused") -> count over the 30 days."""
    table = html.split('id="daily-table"')[1].split("</table>")[0]
    heads = re.findall(r'<th scope="col">([^<]*)</th>', table)[1:]
    sums = dict.fromkeys(heads, 0)
    for row in re.findall(r"<tr><th scope=\"row\">[^<]*</th>(.*?)</tr>", table):
        for head, cell in zip(heads, re.findall(r"<td>(\d+)</td>", row), strict=True):
            sums[head] += int(cell)
    return sums


def test_the_chart_counts_each_projects_signatures_and_refusals(server: Server,
                                                                world: World) -> None:
    with sign_in(server, world.auditor_token) as c:  # an auditor of p: p's numbers only
        page = c.get("/ui/overview").text
    assert daily_table(page) == {world.p: 3, "Refused": 2}
    assert world.q not in page
    svg = page.split("<svg")[1].split("</svg>")[0]
    assert f'data-project="{world.p}" data-count="3"' in svg
    assert 'class="bar refused"' in svg
    assert 'data-count="2"' in svg
    assert "3 signatures and 2 refused signings" in svg  # the <desc>
    assert " style=" not in page  # the CSP forbids inline style
    with sign_in(server, server.admin_token) as c:
        every = daily_table(c.get("/ui/overview").text)
    assert every[world.p] == 3
    assert every[world.q] == 1
    with sign_in(server, world.signer_token) as c:  # no audit grant: no chart
        assert 'id="daily-chart"' not in c.get("/ui/overview").text


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize(("web", "cli"), [
    ("format=cms", ["--signature-format", "cms"]),
    ("format=raw", ["--signature-format", "raw"]),
    ("outcome=refused", ["--outcome", "refused"]),
])
def test_format_and_outcome_filters_export_what_the_cli_reports(
        server: Server, world: World, web: str, cli: list[str]) -> None:
    with sign_in(server, world.auditor_token) as c:
        web_csv = c.get(f"/ui/signatures.csv?project={world.p}&{web}").text
        web_json = json.loads(c.get(f"/ui/signatures.json?project={world.p}&{web}").text)
        page = c.get(f"/ui/signatures?project={world.p}&{web}").text
    cli_csv = server.cli("report", "signatures", "--project", world.p, *cli, "--format",
                         "csv", token=world.auditor_token).stdout
    assert web_csv == cli_csv
    assert web_json == server.cli("report", "signatures", "--project", world.p, *cli,
                                  "--json", token=world.auditor_token).json()
    rows = csv_rows(cli_csv)
    if web == "outcome=refused":
        assert len(rows) == 2 == web_json["totals"]["signatures"]
        assert {r["outcome"] for r in rows} == {"refused"}
        assert all("no signer grant" in r["reason"] for r in rows)
        assert {r["key"] for r in rows} == {f"{world.p}/other"}
        assert {r["signature_id"] for r in rows} == {""}
        assert 'id="refusals"' in page
        assert "no signer grant" in page
    else:
        fmt = web.split("=")[1]
        assert len(rows) == (1 if fmt == "cms" else 2) == web_json["totals"]["signatures"]
        assert {r["format"] for r in rows} == {fmt}
        assert {r["outcome"] for r in rows} == {"allowed"}
        assert f'<option value="{fmt}" selected>' in page


def test_a_filtered_page_is_a_full_page(server: Server, world: World) -> None:
    """The format is filtered in the query, not after it: a page of 1 raw signature skips
    the cms one between them and still says where the next starts."""
    first = api(server, "GET", f"/reports/signatures?project={world.p}&format=raw&limit=1")
    assert [r["format"] for r in first["signatures"]] == ["raw"]
    second = api(server, "GET", f"/reports/signatures?project={world.p}&format=raw&limit=1"
                                f"&after={first['next_after']}")
    assert [r["format"] for r in second["signatures"]] == ["raw"]
    assert second["signatures"][0]["audit_seq"] - first["next_after"] > 1  # skipped cms
    assert second["next_after"] is None


def test_format_with_refused_and_unknown_outcomes_are_refused(server: Server,
                                                              world: World) -> None:
    with sign_in(server, server.admin_token) as c:
        assert c.get("/ui/signatures?outcome=refused&format=raw").status_code == 400
        assert c.get("/ui/signatures.csv?outcome=maybe").status_code == 400
        assert c.get("/ui/signatures.csv?format=rpm").status_code == 400
    r = server.cli("report", "signatures", "--outcome", "refused", "--signature-format", "raw",
                   check=False)
    assert r.returncode != 0
    assert "not both" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.fixture(scope="module")
def scanning_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("ov-scan") / "data"
    socket = data_dir.parent / "clamd.sock"  # made a link to the real clamd's, later
    srv = start_server(data_dir, None, config=f'scan_clamd_socket = "{socket}"')
    try:
        yield srv
    finally:
        srv.stop()


def test_scanner_health_is_asked_each_time(scanning_server: Server, clamd: Clamd) -> None:
    link = Path(str(scanning_server.data_dir.parent / "clamd.sock"))

    def engines(c: httpx.Client) -> str:
        page = c.get("/ui/overview").text
        assert "Database and key store: <span class=\"state state-active\">ok" in page
        return page.split('id="scanners"')[1].split("</table>")[0]

    with sign_in(scanning_server, scanning_server.admin_token) as c:
        down = engines(c)
        assert "<td>clamav</td>" in down
        assert "unreachable" in down
        link.symlink_to(clamd.socket)
        up = engines(c)
        assert "unreachable" not in up
        assert re.search(r"<td>ClamAV \d+\.\d+[^<]*</td>", up), up
        assert "<td>denylist</td>" in up
