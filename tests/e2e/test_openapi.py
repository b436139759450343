"""The served OpenAPI schema describes the API that is actually served."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import unique
from tests.support.server import Server, init_data_dir, start_server


def _resolve(spec: dict, schema: dict) -> dict:  # type: ignore[type-arg]
    ref = schema.get("$ref")
    if ref:
        return spec["components"]["schemas"][ref.rsplit("/", 1)[1]]  # type: ignore[no-any-return]
    return schema


def test_schema_lists_every_route_and_matches_a_real_signing(server: Server) -> None:
    with server.http(token="") as anon:
        spec = anon.get("/openapi.json").json()
        assert anon.get("/healthz").json()["status"] == "ok"
    paths = spec["paths"]
    key = "/api/v1/projects/{project}/keys/{key}"
    for path, method in [
        ("/api/v1/projects", "post"), ("/api/v1/projects", "get"), ("/api/v1/keys", "get"),
        (key, "get"), (key + "/public", "get"), (key + "/rotate", "post"),
        (key + "/disable", "post"), (key + "/enable", "post"), (key + "/revoke", "post"),
        (key + "/sign", "post"), (key + "/verify", "post"), ("/api/v1/identities", "post"),
        ("/api/v1/identities/{name}/rotate-token", "post"), ("/api/v1/grants", "delete"),
        ("/api/v1/audit", "get"), ("/api/v1/audit/verify", "get"), ("/api/v1/whoami", "get"),
        ("/healthz", "get"),
    ]:
        assert method in paths.get(path, {}), f"{method.upper()} {path} missing from schema"

    sign_op = paths[key + "/sign"]["post"]
    request = _resolve(spec, sign_op["requestBody"]["content"]["application/json"]["schema"])
    assert {"digest", "artifact_name"} <= set(request["required"])
    response = _resolve(spec, sign_op["responses"]["200"]["content"]["application/json"]
                        ["schema"])
    receipt = _resolve(spec, response["properties"]["receipt"])

    project = unique("oas")
    server.cli("project", "create", project)
    server.cli("key", "create", f"{project}/k")
    server.cli("grant", "add", "admin", "signer", f"{project}/k")
    with server.http() as c:
        r = c.post(f"/api/v1/projects/{project}/keys/k/sign",
                   json={"digest": hashlib.sha256(b"x").hexdigest(), "artifact_name": "x"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == set(response["properties"])
    assert set(body["receipt"]) == set(receipt["properties"])


# -- every operation declares its refusals (issue 9, item 12) ------------------------------

PROBLEM = "application/problem+json"


def test_every_operation_declares_its_problem_responses(sqlite_server: Server) -> None:
    with sqlite_server.http(token="") as anon:
        spec = anon.get("/openapi.json").json()
    assert spec["components"]["schemas"]["Problem"]["required"] == [
        "type", "title", "status", "detail", "code"]
    operations = [(path, method, op) for path, ops in spec["paths"].items()
                  for method, op in ops.items()]
    assert len(operations) > 30
    for path, method, op in operations:
        expected = {"400", "404", "408", "413", "422", "429", "503", "507"}
        if path.startswith("/api/v1/"):
            expected |= {"401", "403", "409"}
        if path == "/api/v1/scan" or path.endswith("/sign-upload"):
            expected |= {"411"}
        declared = op["responses"]
        assert expected <= set(declared), (method, path, expected - set(declared))
        for status in expected:
            content = declared[status]["content"]
            if path == "/tsa" and status in {"400", "413", "503"}:
                assert set(content) == {"application/timestamp-reply"}, (path, status)
                continue
            assert set(content) == {PROBLEM}, (method, path, status, content)
            assert content[PROBLEM]["schema"] == {"$ref": "#/components/schemas/Problem"}


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("TRACE", "/tsa", "POST"),
    ("TRACE", "/api/v1/projects", "GET, HEAD, POST"),
    ("DELETE", "/api/v1/projects", "GET, HEAD, POST"),
    ("PUT", "/api/v1/deny-list/abc", "DELETE"),
    ("POST", "/crl/p.crl", "GET, HEAD"),
])
def test_wrong_method_says_what_is_allowed(sqlite_server: Server, method: str, path: str,
                                           allow: str) -> None:
    with sqlite_server.http() as c:
        r = c.request(method, path)
    assert r.status_code == 405, r.text
    assert r.headers["content-type"] == PROBLEM
    assert r.headers["allow"] == allow


def test_oversized_time_stamp_request_gets_a_timestamp_rejection(sqlite_server: Server) -> None:
    """Over the server's JSON body limit (1 MiB) as well as the TSA's own (64 KiB): a time-stamp
    client must still get a TimeStampResp it can read (RFC 3161 §2.4.2)."""
    from signgate.pki.tsa import TimeStampResp

    with sqlite_server.http(token="") as anon:
        for size in (70_000, 2 << 20):
            r = anon.post("/tsa", content=b"\x30" * size,
                          headers={"content-type": "application/timestamp-query"})
            assert r.status_code == 413, (size, r.status_code)
            assert r.headers["content-type"] == "application/timestamp-reply", r.headers
            status = TimeStampResp.load(r.content)["status"]
            assert status["status"].native == "rejection"
            assert "at most 65536 bytes" in status["status_string"].native[0]


# -- a bounded schemathesis run against a real server --------------------------------------

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,unsupported_method"


@pytest.fixture(scope="module")
def scanning_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of its own (the fuzzer creates, disables and revokes at random) with a YARA
    rule configured, so that uploads are scanned instead of refused with 503."""
    base = tmp_path_factory.mktemp("schemathesis")
    rules = base / "yara"
    rules.mkdir()
    (rules / "never.yar").write_text(
        'rule never_matches { strings: $a = "signgate-no-such-marker-0123456789" '
        "condition: $a }\n")
    data = base / "data"
    init_data_dir(data, None)
    with (data / "config.toml").open("a") as f:
        f.write(f'scan_yara_dir = "{rules}"\n')
    srv = start_server(data, None, init=False)
    try:
        yield srv
    finally:
        srv.stop()


def test_schemathesis_finds_no_undeclared_answer(scanning_server: Server,
                                                  tmp_path: Path) -> None:
    """Generated requests over every operation: no 5xx, every status and content type is
    the one the document declares, undeclared methods get 405 with Allow. Bounded: a few
    examples per operation, a fixed seed (a failure reproduces), a time limit."""
    srv = scanning_server
    # A global admin of the fuzzer's own: it may disable or rotate anyone, and a name it
    # cannot guess keeps its own token valid for the whole run.
    name = unique("fuzz-admin")
    token = srv.new_identity(name)
    srv.cli("grant", "add", name, "admin", "*")
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root),
           "SCHEMATHESIS_HOOKS": "tests.support.schemathesis_hooks"}
    cmd = [SCHEMATHESIS, "run", f"{srv.url}/openapi.json", "--checks", CHECKS,
           "-H", f"Authorization: Bearer {token}", "--phases", "examples,coverage,fuzzing",
           "--max-examples", "5", "--seed", "1", "--generation-database", "none",
           "--workers", "1", "--request-timeout", "30", "--no-color",
           "--report-dir", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=240)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout, proc.stdout
    assert "failures" not in proc.stdout.lower(), proc.stdout
    assert "Traceback" not in srv.server_log()


# -- the documentation pages work offline (issue 9, item 20) -------------------------------


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_documentation_pages_need_no_outside_host(sqlite_server: Server, page: str) -> None:
    import re
    from urllib.parse import urljoin, urlsplit

    with sqlite_server.http(token="") as anon:
        r = anon.get(page)
        assert r.status_code == 200, r.text
        html = r.text
        # Every URL the page loads: src/href attributes and the quoted URLs of its script.
        refs = set(re.findall(r'(?:src|href)\s*=\s*["\']([^"\']+)["\']', html))
        refs |= set(re.findall(r'["\'](https?://[^"\']+|/[^"\'\s]*)["\']', html))
        assert refs, html
        assert not re.search(r"(https?:)?//(?!127\.0\.0\.1)[a-z0-9.-]+\.[a-z]{2,}", html), html
        for ref in refs:
            url = urljoin(sqlite_server.url + page, ref)
            assert urlsplit(url).netloc == urlsplit(sqlite_server.url).netloc, ref
            asset = anon.get(url)
            assert asset.status_code == 200, (ref, asset.status_code)
            assert len(asset.content) > 100, ref
        scripts = [ref for ref in refs if ref.endswith(".js")]
        assert scripts, refs  # the page's own code is among them, served by signgate
