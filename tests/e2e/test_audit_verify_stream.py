"""`signgate audit verify` on a log that takes longer to check than the client waits for
one answer: the verification streams progress lines (api/progress.py), so neither the
client library nor the CLI gives up (issue 14, item 8)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from signgate import errors
from signgate.audit.model import Action, Outcome, Record
from signgate.client import SigngateClient
from signgate.config import load_settings
from signgate.service.factory import build_context
from tests.support.server import Server, init_data_dir, start_server

# Enough entries that the server's check (one process under api/../verify.PARALLEL_FROM)
# takes well over the 1 s this test's client waits for a line.
ENTRIES = 120_000
READ_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def big_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("biglog") / "data"
    init_data_dir(data, None)
    ctx = build_context(load_settings(data))
    try:
        start = datetime(2026, 1, 1, tzinfo=UTC)
        for first in range(0, ENTRIES, 10_000):  # as the service appends them, in bulk
            with ctx.transaction() as session:
                for i in range(first, first + 10_000):
                    ctx.record(session, Record("admin", Action.AUDIT_READ, Outcome.ALLOWED,
                                               f"audit log page {i}"),
                               start + timedelta(seconds=i))
    finally:
        ctx.close()
    server = start_server(data, None, init=False)
    try:
        yield server
    finally:
        server.stop()


def test_a_verification_longer_than_the_read_timeout_succeeds(big_log: Server) -> None:
    with SigngateClient(big_log.url, big_log.admin_token, timeout=READ_TIMEOUT) as client:
        # The plain JSON answer comes only at the end: this client gives up on it ...
        with pytest.raises(errors.Unavailable, match="timed out"):
            client.request("GET", "/api/v1/audit/verify")
        # ... but not on the stream, which sends a line at least every half second.
        seen: list[tuple[int, int]] = []
        began = time.monotonic()
        result = client.audit_verify(lambda done, total: seen.append((done, total)))
        took = time.monotonic() - began
    assert result["ok"] is True, result
    assert result["entries"] == result["head_seq"] > ENTRIES
    assert took > READ_TIMEOUT  # what the test is about: longer than the client waits
    total = result["head_seq"]
    assert seen[0] == (0, total)
    assert seen[-1] == (total, total)
    done = [d for d, _ in seen]
    assert done == sorted(done)
    assert len(seen) > 2


def test_the_cli_prints_progress_on_stderr_and_the_result_on_stdout(big_log: Server) -> None:
    out = big_log.cli("audit", "verify", "--json", "--progress", timeout=300)
    report = json.loads(out.stdout)
    assert report["ok"] is True
    assert report["entries"] > ENTRIES
    # --progress: from the start (by default only once a check has taken two seconds).
    lines = out.stderr.splitlines()
    assert lines, "no progress was printed"
    assert all(line.startswith("audit verify: ") and line.endswith(" entries checked")
               for line in lines), lines
    assert lines[-1] == f"audit verify: {report['head_seq']:,} of {report['head_seq']:,} " \
                        "entries checked"
    text = big_log.cli("audit", "verify", timeout=300)
    assert text.stdout.startswith(f"audit log intact: {report['entries']} entries")


def test_a_refusal_keeps_its_status_when_the_stream_was_asked_for(big_log: Server) -> None:
    token = big_log.new_identity("no-grants")
    with big_log.http(token) as http:
        r = http.get("/api/v1/audit/verify", headers={"Accept": "application/x-ndjson"})
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "audit" in r.json()["detail"]


def test_the_plain_answer_is_unchanged_for_clients_that_do_not_ask(big_log: Server) -> None:
    with big_log.http() as http:
        r = http.get("/api/v1/audit/verify", timeout=300)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json()["ok"] is True
