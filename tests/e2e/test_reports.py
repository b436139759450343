"""'signgate report signatures': who signed what, when, with which key, scoped like the
audit log, in every output format, against the audit entries it points to."""

from __future__ import annotations

import csv
import hashlib
import io
from typing import Any

import pytest

from tests.conftest import unique
from tests.e2e.test_audit import api, api_sign, audit_json
from tests.support.server import Server


def report(server: Server, *args: str, token: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = server.cli("report", "signatures", "--format", "json", *args,
                                     token=token).json()
    return out


@pytest.fixture(scope="module")
def signed(server: Server) -> dict[str, Any]:
    """Two projects; ci signs three builds with p/release (one timestamped), the key
    rotates, ci signs once more; other signs once with q/nightly and is refused once on
    p/release (a refusal is not a signature)."""
    p, q = unique("rep-p"), unique("rep-q")
    ci, other, auditor = unique("rep-ci"), unique("rep-other"), unique("rep-aud")
    for name in (p, q):
        api(server, "POST", "/projects", json={"name": name})
    api(server, "POST", f"/projects/{p}/keys", json={"name": "release"})
    api(server, "POST", f"/projects/{q}/keys", json={"name": "nightly", "algorithm": "ed25519"})
    tokens = {n: api(server, "POST", "/identities", json={"name": n})["token"]
              for n in (ci, other, auditor)}
    api(server, "POST", "/grants", json={"identity": ci, "role": "signer",
                                         "scope": f"{p}/release"})
    api(server, "POST", "/grants", json={"identity": other, "role": "signer", "scope": q})
    api(server, "POST", "/grants", json={"identity": auditor, "role": "auditor", "scope": p})
    receipts = [api_sign(server, f"{p}/release", f"build {i}".encode(), tokens[ci])["receipt"]
                for i in range(2)]
    receipts.append(api(server, "POST", f"/projects/{p}/keys/release/sign", tokens[ci],
                        json={"digest": hashlib.sha256(b"stamped").hexdigest(),
                              "artifact_name": "stamped.bin", "timestamp": True})["receipt"])
    api(server, "POST", f"/projects/{p}/keys/release/rotate")
    receipts.append(api_sign(server, f"{p}/release", b"after rotation", tokens[ci])["receipt"])
    nightly = api_sign(server, f"{q}/nightly", b"nightly", tokens[other])["receipt"]
    api_sign(server, f"{p}/release", b"nope", tokens[other], ok=(403,))
    return {"p": p, "q": q, "ci": ci, "other": other, "auditor": auditor, "tokens": tokens,
            "release": receipts, "nightly": nightly}


def test_rows_are_the_signatures_and_point_at_their_audit_entries(
        server: Server, signed: dict[str, Any]) -> None:
    p, ci = signed["p"], signed["ci"]
    rows = report(server, "--key", f"{p}/release")["signatures"]
    made = signed["release"]
    assert [r["signature_id"] for r in rows] == [r["signature_id"] for r in made]
    assert [r["key_version"] for r in rows] == [1, 1, 1, 2]
    assert {r["identity"] for r in rows} == {ci}
    assert [r["digest"] for r in rows] == [r["digest"] for r in made]
    assert [r["artifact_name"] for r in rows][2] == "stamped.bin"
    assert [r["timestamp_time"] is not None for r in rows] == [False, False, True, False]
    assert all(r["log_index"] == r["audit_seq"] - 1 for r in rows)
    entries = {e["seq"]: e for e in audit_json(server, "--key", f"{p}/release",
                                               "--action", "signature.create")}
    for r in rows:
        entry = entries[r["audit_seq"]]
        assert entry["outcome"] == "allowed"
        assert entry["actor"] == ci
        assert entry["details"]["digest"] == r["digest"]
        assert entry["details"]["signature_id"] == r["signature_id"]


def test_filters_and_totals(server: Server, signed: dict[str, Any]) -> None:
    p, q, ci, other = signed["p"], signed["q"], signed["ci"], signed["other"]
    by_project = report(server, "--project", p)
    assert len(by_project["signatures"]) == 4
    assert by_project["totals"]["signatures"] == 4
    assert [(t["name"], t["signatures"]) for t in by_project["totals"]["by_key"]] == [
        (f"{p}/release", 4)]
    assert [(t["name"], t["signatures"]) for t in by_project["totals"]["by_identity"]] == [
        (ci, 4)]

    by_other = report(server, "--identity", other)
    assert [r["key"] for r in by_other["signatures"]] == [f"{q}/nightly"]
    assert by_other["totals"]["signatures"] == 1

    rows = by_project["signatures"]
    later = report(server, "--project", p, "--since", rows[1]["signed_at"])
    since = later["signatures"]
    assert [r["signature_id"] for r in since] == [r["signature_id"] for r in rows[1:]]
    assert later["totals"]["signatures"] == 3
    assert later["totals"]["by_key"][0]["first"] == rows[1]["signed_at"]
    until = report(server, "--project", p, "--until", rows[1]["signed_at"])["signatures"]
    assert [r["signature_id"] for r in until] == [rows[0]["signature_id"]]  # exclusive


def test_an_auditor_sees_only_their_scope(server: Server, signed: dict[str, Any]) -> None:
    p, q, token = signed["p"], signed["q"], signed["tokens"][signed["auditor"]]
    mine = report(server, token=token)
    assert {r["key"] for r in mine["signatures"]} == {f"{p}/release"}
    assert mine["totals"]["signatures"] == 4
    refused = server.cli("report", "signatures", "--project", q, token=token, check=False)
    assert refused.returncode == 4
    assert "no auditor grant" in refused.stderr
    signer = server.cli("report", "signatures", token=signed["tokens"][signed["ci"]],
                        check=False)
    assert signer.returncode == 4


def test_csv_and_table(server: Server, signed: dict[str, Any]) -> None:
    p = signed["p"]
    out = server.cli("report", "signatures", "--project", p, "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["signature_id"] for r in rows] == [r["signature_id"] for r in signed["release"]]
    assert rows[0]["key"] == f"{p}/release"
    assert rows[0]["key_version"] == "1"
    text = server.cli("report", "signatures", "--project", p).stdout
    assert "4 signatures" in text
    assert f"{p}/release v2" in text
    assert signed["ci"] in text


def test_bad_filters_are_refused(server: Server) -> None:
    bad = server.cli("report", "signatures", "--key", "no-slash", check=False)
    assert bad.returncode == 7
    backwards = server.cli("report", "signatures", "--since", "2026-02-01T00:00:00Z",
                           "--until", "2026-01-01T00:00:00Z", check=False)
    assert backwards.returncode == 7
    assert "--until must be later than --since" in backwards.stderr
