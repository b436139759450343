"""Bring your own CA: a CSR signed through the key store, checked by openssl; a chain from
an external openssl CA imported and served; mismatched or unsuitable chains refused."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import unique

# SQLite alone: openssl judges the CSRs and chains, which the database does not shape
from tests.support.backends import sqlite_only as sqlite_only
from tests.support.server import Server


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(list(args), capture_output=True, text=True, cwd=cwd)
    assert out.returncode == 0, out
    return out


@pytest.fixture(scope="module")
def external_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("extca")
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-subj", "/O=Example Corp/CN=Example Code Signing CA", "-days", "30",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext",
        "keyUsage=critical,keyCertSign,cRLSign", "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    return d


def issue(ca: Path, csr: Path, out: Path, eku: str) -> None:
    ext = out.with_suffix(".cnf")
    ext.write_text(f"keyUsage=critical,digitalSignature\nextendedKeyUsage={eku}\n")
    run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca / "ca.pem"), "-CAkey",
        str(ca / "ca.key"), "-CAcreateserial", "-days", "10", "-extfile", str(ext),
        "-out", str(out), cwd=ca)


def test_csr_and_imported_chain(server: Server, external_ca: Path, tmp_path: Path) -> None:
    project = unique("byo")
    server.cli("project", "create", project)
    ref = f"{project}/release"
    server.cli("key", "create", ref)
    csr = tmp_path / "req.pem"
    csr.write_text(server.cli("key", "csr", ref).stdout)
    check = subprocess.run(["openssl", "req", "-in", str(csr), "-noout", "-verify", "-subject"],
                           capture_output=True, text=True)
    assert "verify OK" in check.stdout + check.stderr, check
    assert f"CN = {ref} v1" in check.stdout
    # The request carries the key version's public key.
    pub = subprocess.run(["openssl", "req", "-in", str(csr), "-noout", "-pubkey"],
                         capture_output=True, text=True).stdout
    assert pub == server.cli("key", "public", ref).stdout

    leaf = tmp_path / "leaf.pem"
    issue(external_ca, csr, leaf, "codeSigning")
    chain = tmp_path / "chain.pem"
    chain.write_text(leaf.read_text() + (external_ca / "ca.pem").read_text())
    attached = server.cli("key", "import-cert", ref, str(chain), "--json").json()
    assert "Example Corp" not in attached["subject"]  # the subject is the leaf's own
    served = server.cli("key", "cert", ref).stdout
    assert served.startswith(leaf.read_text().strip()[:64])
    assert (external_ca / "ca.pem").read_text().strip() in served
    served_file = tmp_path / "served.pem"
    served_file.write_text(served)
    ok = subprocess.run(["openssl", "verify", "-CAfile", str(external_ca / "ca.pem"),
                         str(served_file)], capture_output=True, text=True)
    assert ok.stdout.strip().endswith("served.pem: OK"), ok
    log = server.cli("audit", "log", "--key", ref, "--json").json()
    actions = [e["action"] for e in log]
    assert "certificate.request" in actions
    assert "certificate.import" in actions
    again = server.cli("key", "import-cert", ref, str(chain), check=False)
    assert again.returncode == 6


def test_unsuitable_chains_are_refused(server: Server, external_ca: Path,
                                       tmp_path: Path) -> None:
    project = unique("byo")
    server.cli("project", "create", project)
    mine, other = f"{project}/mine", f"{project}/other"
    server.cli("key", "create", mine)
    server.cli("key", "create", other)
    before = server.cli("key", "cert", mine).stdout

    other_csr = tmp_path / "other.csr"
    other_csr.write_text(server.cli("key", "csr", other).stdout)
    wrong_key = tmp_path / "wrong-key.pem"
    issue(external_ca, other_csr, wrong_key, "codeSigning")
    mine_csr = tmp_path / "mine.csr"
    mine_csr.write_text(server.cli("key", "csr", mine).stdout)
    tls = tmp_path / "tls.pem"
    issue(external_ca, mine_csr, tls, "serverAuth")
    good = tmp_path / "good.pem"
    issue(external_ca, mine_csr, good, "codeSigning")
    stranger = tmp_path / "stranger.pem"
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-subj", "/CN=stranger", "-keyout", "s.key", "-out", str(stranger),
        cwd=tmp_path)
    broken = tmp_path / "broken.pem"
    broken.write_text(good.read_text() + stranger.read_text())
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n"
                       "-----END CERTIFICATE-----\n")

    for path, needle in [(wrong_key, "another key"), (tls, "code signing"),
                         (broken, "is not issued by the next certificate"),
                         (garbage, "not a PEM certificate chain")]:
        r = server.cli("key", "import-cert", mine, str(path), check=False)
        assert r.returncode == 7, (path, r)
        assert needle in r.stderr, (path, r.stderr)
    assert server.cli("key", "cert", mine).stdout == before  # nothing was attached


def test_csr_for_every_algorithm_verifies(server: Server, tmp_path: Path) -> None:
    project = unique("byo")
    server.cli("project", "create", project)
    for alg in ("ecdsa-p256", "ecdsa-p384", "ed25519", "rsa-3072"):
        ref = f"{project}/{alg}"
        server.cli("key", "create", ref, "--algorithm", alg)
        csr = tmp_path / f"{alg}.csr"
        csr.write_text(server.cli("key", "csr", ref).stdout)
        check = subprocess.run(["openssl", "req", "-in", str(csr), "-noout", "-verify"],
                               capture_output=True, text=True)
        assert "verify OK" in check.stdout + check.stderr, (alg, check)
        pub = subprocess.run(["openssl", "req", "-in", str(csr), "-noout", "-pubkey"],
                             capture_output=True, text=True).stdout
        assert pub == server.cli("key", "public", ref).stdout
