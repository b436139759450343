"""The five-minute tour, end to end, on each backend."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import unique
from tests.support.server import Server


def test_tour(server: Server, tmp_path: Path) -> None:
    project = unique("tour")
    server.cli("project", "create", project)
    server.cli("key", "create", f"{project}/release")
    ci = unique("ci")
    token = server.new_identity(ci)
    server.cli("grant", "add", ci, "signer", f"{project}/release")
    artifact = tmp_path / "app.tar.gz"
    artifact.write_bytes(b"release bits" * 1000)
    receipt = server.cli("sign", str(artifact), "--key", f"{project}/release", "--json",
                         token=token).json()
    assert receipt["key_version"] == 1
    pem = tmp_path / "pub.pem"
    pem.write_text(server.cli("key", "public", f"{project}/release").stdout)
    out = subprocess.run(["openssl", "dgst", "-sha256", "-verify", str(pem), "-signature",
                          str(artifact) + ".sig", str(artifact)], capture_output=True, text=True)
    assert out.stdout.strip() == "Verified OK", out
    log = server.cli("audit", "log", "--key", f"{project}/release", "--json").json()
    assert [e["action"] for e in log] == ["key.create", "grant.add", "signature.create"]
    assert server.cli("audit", "verify").returncode == 0
