"""The hash deny-list: global admins manage it, everyone else is refused, all audited."""

from __future__ import annotations

import hashlib

from tests.conftest import unique
from tests.support.server import Server


def test_deny_list_lifecycle(sqlite_server: Server) -> None:
    server = sqlite_server
    digest = hashlib.sha256(b"known malware").hexdigest()
    added = server.cli("scan", "deny", "add", digest.upper(), "--reason", "incident 42",
                       "--json").json()
    assert added["sha256"] == digest
    assert added["created_by"] == "admin"
    listed = server.cli("scan", "deny", "list", "--json").json()
    assert [(e["sha256"], e["reason"]) for e in listed] == [(digest, "incident 42")]
    again = server.cli("scan", "deny", "add", digest, "--reason", "x", check=False)
    assert again.returncode == 6

    bad = server.cli("scan", "deny", "add", "abc", "--reason", "x", check=False)
    assert bad.returncode == 7
    assert "64 hex digits" in bad.stderr
    empty = server.cli("scan", "deny", "add", digest[:-1] + "0", "--reason", " ", check=False)
    assert empty.returncode == 7

    # A project admin is not a global admin: the deny-list spans every project.
    project = unique("deny")
    server.cli("project", "create", project)
    name = unique("padmin")
    token = server.new_identity(name)
    server.cli("grant", "add", name, "admin", project)
    refused = server.cli("scan", "deny", "remove", digest, token=token, check=False)
    assert refused.returncode == 4
    assert server.cli("scan", "deny", "list", token=token, check=False).returncode == 4

    assert server.cli("scan", "deny", "remove", digest).stdout.startswith("removed ")
    assert server.cli("scan", "deny", "remove", digest, check=False).returncode == 5
    assert server.cli("scan", "deny", "list", "--json").json() == []

    log = server.cli("audit", "log", "--json").json()
    mine = [(e["action"], e["outcome"], e["actor"]) for e in log if e["subject"] == digest]
    assert ("denylist.add", "allowed", "admin") in mine
    assert ("denylist.add", "refused", "admin") in mine  # the duplicate
    assert ("denylist.remove", "refused", name) in mine
    assert ("denylist.remove", "allowed", "admin") in mine
