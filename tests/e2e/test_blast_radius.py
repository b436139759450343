"""'signgate key blast-radius' and 'key revoke --blast-radius': exactly what the key signed
since a time, each with its log entry and inclusion proof, checked offline by
'signgate log check' (and refused when anything in the file was changed)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import unique
from tests.e2e.test_audit import api, api_sign
from tests.support.server import Server


@pytest.fixture(scope="module")
def signed(server: Server) -> dict[str, Any]:
    project = unique("blast")
    ref = f"{project}/release"
    api(server, "POST", "/projects", json={"name": project})
    api(server, "POST", f"/projects/{project}/keys", json={"name": "release"})
    api(server, "POST", f"/projects/{project}/keys", json={"name": "other"})
    ci = unique("blast-ci")
    token = api(server, "POST", "/identities", json={"name": ci})["token"]
    api(server, "POST", "/grants", json={"identity": ci, "role": "signer", "scope": project})
    receipts = [api_sign(server, ref, f"build {i}".encode(), token)["receipt"]
                for i in range(5)]
    api_sign(server, f"{project}/other", b"not this key", token)
    vkey = server.cli("log", "public-key", "--json", token="").json()["verifier_key"]
    return {"ref": ref, "ci": ci, "receipts": receipts, "vkey": vkey}


def test_blast_radius_lists_exactly_the_signatures_since(server: Server,
                                                         signed: dict[str, Any],
                                                         tmp_path: Path) -> None:
    since = signed["receipts"][2]["signed_at"]
    out = tmp_path / "radius.json"
    done = server.cli("key", "blast-radius", signed["ref"], "--since", since, "-o", str(out))
    assert done.stdout.startswith(f"3 signatures of {signed['ref']} since ")
    radius = json.loads(out.read_text())
    assert [s["signature_id"] for s in radius["signatures"]] == [
        r["signature_id"] for r in signed["receipts"][2:]]
    assert {s["identity"] for s in radius["signatures"]} == {signed["ci"]}
    assert radius["log_key"] == signed["vkey"]
    checked = server.cli("log", "check", str(out), "--log-key", signed["vkey"])
    assert checked.stdout.startswith(f"3 signatures of {signed['ref']} verified in the log's "
                                     "tree of size ")


def test_log_check_refuses_a_changed_file(server: Server, signed: dict[str, Any],
                                          tmp_path: Path) -> None:
    radius = server.cli("key", "blast-radius", signed["ref"], "--since",
                        signed["receipts"][0]["signed_at"]).json()
    assert len(radius["signatures"]) == 5

    def check(doc: dict[str, Any], key: str = signed["vkey"]) -> Any:
        path = tmp_path / "changed.json"
        path.write_text(json.dumps(doc))
        return server.cli("log", "check", str(path), "--log-key", key, check=False)

    other_digest = json.loads(json.dumps(radius))
    other_digest["signatures"][1]["digest"] = "00" * 32
    refused = check(other_digest)
    assert refused.returncode == 8
    assert "the logged entry is not this signing" in refused.stderr

    edited_entry = json.loads(json.dumps(radius))
    entry = json.loads(base64.b64decode(edited_entry["signatures"][0]["entry"]))
    entry["actor"] = "someone-else"
    edited_entry["signatures"][0]["entry"] = base64.b64encode(
        json.dumps(entry, separators=(",", ":"), sort_keys=True).encode()).decode()
    edited_entry["signatures"][0]["identity"] = "someone-else"
    refused = check(edited_entry)
    assert refused.returncode == 8
    assert "is not in the log at that index" in refused.stderr

    other_key = json.loads(json.dumps(radius))
    other_key["key"] = signed["ref"].replace("/release", "/other")
    assert check(other_key).returncode == 8

    forged_log = "forged.example/log+01020304+AQ" + "A" * 42 + "="
    assert check(radius, forged_log).returncode in (7, 8)
    assert check(radius).returncode == 0


def test_revoke_writes_the_blast_radius(server: Server, signed: dict[str, Any],
                                        tmp_path: Path) -> None:
    out = tmp_path / "revoked.json"
    since = signed["receipts"][3]["signed_at"]
    done = server.cli("key", "revoke", signed["ref"], "--compromised-at", since,
                      "--reason", "laptop stolen", "--blast-radius", str(out))
    assert "2 signatures made since then" in done.stdout
    radius = json.loads(out.read_text())
    assert [s["signature_id"] for s in radius["signatures"]] == [
        r["signature_id"] for r in signed["receipts"][3:]]
    assert server.cli("log", "check", str(out), "--log-key", signed["vkey"]).returncode == 0
