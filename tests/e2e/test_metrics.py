"""GET /metrics, request ids and the access log, against a real 'signgate serve'.

The counters are read before and after signings, a refusal and scans, and must have moved
by exactly what was done; labels name route templates, never raw paths; the access log
has one JSON line per request with its id and the identity, never a token; several
workers answer a scrape with the whole server's numbers.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import unique
from tests.support.server import Server, start_server

SIGN_ROUTE = "/api/v1/projects/{project}/keys/{key}/sign"
MARKER = "SIGNGATE-METRICS-TEST-MARKER"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    """Every sample of a scrape, by name and labels (parsed by prometheus_client's own
    parser: the text must be valid exposition format)."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def total(found: Samples, name: str, **labels: str) -> float:
    """The sum over every series of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in found.items() if n == name and want <= ls)


def scrape(server: Server, token: str | None) -> Samples:
    with server.http(token or "") as c:
        r = c.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return samples(r.text)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("metrics")
    rules = base / "yara"
    rules.mkdir()
    (rules / "marker.yar").write_text(
        f'rule TestMarker {{ strings: $a = "{MARKER}" condition: $a }}\n')
    srv = start_server(base / "data", None,
                       config=f'scan_yara_dir = "{rules}"\naccess_log = true')
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def world(server: Server) -> dict[str, str]:
    """A project and key, a signer on it and a global auditor (who may scrape)."""
    project = unique("metrics")
    key = f"{project}/release"
    server.cli("project", "create", project)
    server.cli("key", "create", key, "--scan", "off")
    ci, auditor = unique("ci"), unique("auditor")
    ci_token = server.new_identity(ci)
    auditor_token = server.new_identity(auditor)
    server.cli("grant", "add", ci, "signer", key)
    server.cli("grant", "add", auditor, "auditor", "*")
    return {"project": project, "key": key, "ci": ci, "ci_token": ci_token,
            "auditor": auditor, "auditor_token": auditor_token}


def sign(server: Server, token: str, key: str, artifact: str) -> httpx.Response:
    project, name = key.split("/")
    with server.http(token) as c:
        return c.post(f"/api/v1/projects/{project}/keys/{name}/sign", json={
            "digest_algorithm": "sha256", "artifact_name": artifact,
            "digest": hashlib.sha256(artifact.encode()).hexdigest()})


def test_counters_move_by_exactly_what_was_done(server: Server, world: dict[str, str],
                                                 tmp_path: Path) -> None:
    key, auditor = world["key"], world["auditor_token"]
    before = scrape(server, auditor)

    for i in range(3):
        assert sign(server, world["ci_token"], key, f"app-{i}.bin").status_code == 200
    # The auditor may see the key but not sign with it: a refusal by key and reason.
    refused = sign(server, auditor, key, "app-x.bin")
    assert refused.status_code == 403
    assert refused.json()["code"] == "denied"
    clean, flagged = tmp_path / "clean.bin", tmp_path / "flagged.bin"
    clean.write_bytes(b"nothing to see")
    flagged.write_bytes(f"xx {MARKER} xx".encode())
    server.cli("scan", str(clean), token=world["ci_token"])
    server.cli("scan", str(flagged), token=world["ci_token"], check=False)

    after = scrape(server, auditor)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("signgate_signatures_total", key=key, format="raw") == 3
    assert moved("signgate_refusals_total", key=key, action="signature.create",
                 reason="denied") == 1
    assert moved("signgate_scans_total", verdict="clean") == 1
    assert moved("signgate_scans_total", verdict="flagged") == 1
    assert moved("signgate_scanner_verdicts_total", scanner="yara", verdict="clean") == 1
    assert moved("signgate_scanner_verdicts_total", scanner="yara", verdict="flagged") == 1
    assert moved("signgate_scanner_seconds_count", scanner="yara") == 2
    assert moved("signgate_scan_seconds_count") == 2
    # The route template, with the status class: 3 signed, 1 refused.
    latency = "signgate_http_request_duration_seconds_count"
    assert moved(latency, route=SIGN_ROUTE, method="POST", status="2xx") == 3
    assert moved(latency, route=SIGN_ROUTE, method="POST", status="4xx") == 1
    # Four signing requests went through the group commit, however they were batched.
    assert moved("signgate_group_commit_batch_size_sum", committer="signgate-signer") == 4
    assert moved("signgate_group_commit_batch_size_count", committer="signgate-signer") >= 1
    assert value(after, "signgate_group_commit_queue_depth", committer="signgate-signer") >= 0
    assert total(after, "signgate_keystore_sign_seconds_count", store="soft") \
        - total(before, "signgate_keystore_sign_seconds_count", store="soft") >= 3
    assert moved("signgate_db_commit_seconds_count") >= 4
    # Six audit entries: three signatures, one refusal, two scans.
    assert moved("signgate_audit_log_entries") == 6
    # Labels name templates and keys, never raw paths.
    project = world["project"]
    routes = {dict(ls).get("route") for (_, ls) in after} - {None}
    assert SIGN_ROUTE in routes
    assert not any(project in r for r in routes if r), routes


def test_scraping_needs_a_global_auditor(server: Server, world: dict[str, str]) -> None:
    with server.http("") as c:
        assert c.get("/metrics").status_code == 401
    with server.http(world["ci_token"]) as c:
        r = c.get("/metrics")
    assert r.status_code == 403
    assert "may not read /metrics" in r.json()["detail"]
    # The refusal is on the record, like any other.
    entries = server.cli("audit", "log", "--identity", world["ci"], "--json").json()
    assert any(e["subject"] == "/metrics" and e["outcome"] == "refused" for e in entries)
    server.cli("grant", "add", world["ci"], "auditor", world["project"])
    try:
        with server.http(world["ci_token"]) as c:
            assert c.get("/metrics").status_code == 403  # a project is not everything
    finally:
        server.cli("grant", "remove", world["ci"], "auditor", world["project"])
    scrape(server, server.admin_token)  # a global admin may


def access_lines(server: Server) -> list[dict[str, object]]:
    lines = []
    for line in server.server_log().splitlines():
        if line.startswith("{") and '"request_id"' in line:
            lines.append(json.loads(line))
    return lines


def logged(server: Server, rid: str) -> list[dict[str, object]]:
    """The access log lines of request ``rid``, waiting a little for them: a line is
    written once the response is sent, so the client may see the response first."""
    deadline = time.monotonic() + 10
    while True:
        found = [x for x in access_lines(server) if x["request_id"] == rid]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def start_patiently(data: Path, **kwargs: Any) -> Server:
    """start_server, again if the machine is so loaded that two spawned workers take
    longer than its deadline to import the application."""
    for attempt in range(3):
        try:
            return start_server(data, None, **kwargs)
        except RuntimeError as exc:
            if "did not become healthy" not in str(exc) or attempt == 2:
                raise
            kwargs = {**kwargs, "init": False, "config": ""}
    raise AssertionError("unreachable")


def test_access_log_has_the_request_id_and_identity_never_the_token(
        server: Server, world: dict[str, str]) -> None:
    rid = unique("trace") + ".7:ab=/+"
    project, name = world["key"].split("/")
    with server.http(world["ci_token"]) as c:
        r = c.post(f"/api/v1/projects/{project}/keys/{name}/sign",
                   headers={"X-Request-Id": rid},
                   json={"digest_algorithm": "sha256", "artifact_name": "logged.bin",
                         "digest": "ab" * 32})
    assert r.status_code == 200
    assert r.headers["x-request-id"] == rid
    mine = logged(server, rid)
    assert len(mine) == 1, mine
    line = mine[0]
    assert line["method"] == "POST"
    assert line["path"] == f"/api/v1/projects/{project}/keys/{name}/sign"
    assert line["route"] == SIGN_ROUTE
    assert line["status"] == 200
    assert line["identity"] == world["ci"]  # learnt by the signing pipeline's thread
    assert line["remote"] == "127.0.0.1"
    assert isinstance(line["duration_ms"], float)
    assert line["duration_ms"] > 0
    assert str(line["time"]).endswith("Z")
    # A use case's authentication (another thread) tells the identity too.
    with server.http(world["auditor_token"]) as c:
        r = c.get("/api/v1/whoami")
    got = logged(server, r.headers["x-request-id"])
    assert got
    assert got[0]["identity"] == world["auditor"]
    text = server.server_log()
    for secret in (world["ci_token"], world["auditor_token"], server.admin_token):
        assert secret not in text
    assert "authorization" not in text.lower()


@pytest.mark.parametrize("bad", ["has space", "x" * 129, "-starts-with-dash",
                                 "quote\"d", "semi;colon", "ünïcode"])
def test_a_bad_request_id_is_replaced_not_echoed(server: Server, bad: str) -> None:
    with httpx.Client(base_url=server.url) as c:
        r = c.get("/healthz", headers={"X-Request-Id": bad.encode()})
    rid = r.headers["x-request-id"]
    assert rid != bad
    line = logged(server, rid)
    assert len(line) == 1
    assert line[0]["route"] == "/healthz"
    assert bad not in server.server_log()


def test_every_response_has_a_fresh_request_id(server: Server) -> None:
    with httpx.Client(base_url=server.url) as c:
        ids = {c.get(path).headers["x-request-id"]
               for path in ("/healthz", "/healthz", "/no/such/route", "/docs/static/x.css")}
    assert len(ids) == 4
    routes = {str(logged(server, i)[0]["route"]) for i in ids}
    assert routes == {"/healthz", "<unmatched>", "/docs/static/{path}"}


def test_several_workers_answer_with_the_whole_server(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """--workers 2: each worker counts in its own file, any of them sums them all; with
    metrics = "public" no token is needed."""
    data = tmp_path_factory.mktemp("workers") / "data"
    srv = start_patiently(data, workers=2, config='metrics = "public"')
    try:
        project = unique("mp")
        key = f"{project}/k"
        srv.cli("project", "create", project)
        srv.cli("key", "create", key)
        srv.cli("grant", "add", "admin", "signer", key)
        signed = 0
        pids: set[str] = set()
        # Concurrent connections until both workers have signed (each then has a file of
        # counters of its own): the kernel hands connections to whichever accepts first.
        with ThreadPoolExecutor(8) as pool:
            for _ in range(20):
                codes = list(pool.map(lambda i: sign(srv, srv.admin_token, key,
                                                     f"mp-{i}").status_code, range(8)))
                assert codes == [200] * 8
                signed += 8
                pids = {p.name.rsplit("_", 1)[1] for p in (data / "metrics").iterdir()
                        if p.name.startswith("counter_")}
                if len(pids) == 2:
                    break
        assert len(pids) == 2, pids  # both workers served
        counts = set()
        for _ in range(8):  # whichever worker answers, the same numbers
            with httpx.Client(base_url=srv.url) as c:
                found = samples(c.get("/metrics").text)
            counts.add(value(found, "signgate_signatures_total", key=key, format="raw"))
            counts.add(total(found, "signgate_http_request_duration_seconds_count",
                             route=SIGN_ROUTE) * 1000)
        assert counts == {signed, signed * 1000}, counts
    finally:
        srv.stop()
    # A new server starts counting at zero: the directory is emptied.
    srv = start_patiently(data, init=False, workers=2, config="")
    try:
        with httpx.Client(base_url=srv.url) as c:
            found = samples(c.get("/metrics").text)
        assert value(found, "signgate_signatures_total", key=key, format="raw") == 0
    finally:
        srv.stop()


def test_metrics_off(tmp_path_factory: pytest.TempPathFactory) -> None:
    data = tmp_path_factory.mktemp("off") / "data"
    srv = start_server(data, None, config='metrics = "off"')
    try:
        with srv.http() as c:
            r = c.get("/metrics")
            assert r.status_code == 404
            assert r.headers["x-request-id"]  # ids are given with metrics off too
    finally:
        srv.stop()
