"""A deployment that must use public TSAs: signature timestamps come from the first of
`tsa_urls` that answers (a dead one is skipped); when none answers, no signature is
handed out. The "public TSA" here is a second signgate server."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import unique
from tests.support.server import Server, free_port, init_data_dir, start_server


def _server_with_tsas(tmp_path: Path, urls: list[str]) -> Server:
    data = tmp_path / "data"
    init_data_dir(data, None)
    listed = ", ".join(f'"{u}"' for u in urls)
    with (data / "config.toml").open("a") as f:
        f.write(f"tsa_urls = [{listed}]\n")
    return start_server(data, None, init=False)


@pytest.fixture
def public_tsa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("public-tsa") / "data", None)
    yield srv
    srv.stop()


def test_first_tsa_that_answers_is_used(public_tsa: Server, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}/tsa"  # nothing listens there
    srv = _server_with_tsas(tmp_path, [dead, f"{public_tsa.url}/tsa"])
    try:
        project = unique("ext")
        srv.cli("project", "create", project)
        srv.cli("key", "create", f"{project}/k", "--require-timestamp")
        srv.cli("grant", "add", "admin", "signer", f"{project}/k")
        artifact = tmp_path / "a.bin"
        artifact.write_bytes(b"artifact" * 500)
        receipt = srv.cli("sign", str(artifact), "--key", f"{project}/k", "--json").json()
        tsr = Path(receipt["timestamp_file"])
        public_root = tmp_path / "public-root.pem"
        public_root.write_text(public_tsa.cli("ca", "cert").stdout)
        own_root = tmp_path / "own-root.pem"
        own_root.write_text(srv.cli("ca", "cert").stdout)
        ok = subprocess.run(["openssl", "ts", "-verify", "-data", receipt["signature_file"],
                             "-in", str(tsr), "-CAfile", str(public_root)],
                            capture_output=True, text=True)
        assert ok.stdout.strip().endswith("Verification: OK"), ok
        own = subprocess.run(["openssl", "ts", "-verify", "-data", receipt["signature_file"],
                              "-in", str(tsr), "-CAfile", str(own_root)],
                             capture_output=True, text=True)
        assert "Verification: OK" not in own.stdout  # not from the built-in TSA
        issued = public_tsa.cli("audit", "log", "--action", "timestamp.issue", "--json").json()
        assert format(int(receipt["timestamp_serial"], 16), "x") in {
            e["details"]["serial"] for e in issued}
    finally:
        srv.stop()


def test_no_tsa_answering_refuses_the_signature(tmp_path: Path) -> None:
    dead = [f"http://127.0.0.1:{free_port()}/tsa", f"http://127.0.0.1:{free_port()}/tsa"]
    srv = _server_with_tsas(tmp_path, dead)
    try:
        project = unique("ext")
        srv.cli("project", "create", project)
        srv.cli("key", "create", f"{project}/k", "--require-timestamp")
        srv.cli("grant", "add", "admin", "signer", f"{project}/k")
        artifact = tmp_path / "a.bin"
        artifact.write_bytes(b"artifact")
        r = srv.cli("sign", str(artifact), "--key", f"{project}/k", check=False)
        assert r.returncode != 0
        assert "no time-stamp authority answered" in r.stderr
        assert not (tmp_path / "a.bin.sig").exists()
        refused = srv.cli("audit", "log", "--action", "signature.create", "--json").json()
        assert [e["outcome"] for e in refused] == ["refused"]
        assert "no time-stamp authority answered" in refused[0]["details"]["reason"]
    finally:
        srv.stop()
