"""signgate's PKI with its keys in an HSM: the same PKI tests as for the software vault
(test_pki.py, test_crl.py, test_tsa.py, called here with an ``init --store hsm`` server
whose root CA, issuing CAs, TSA and log key are on a SoftHSM2 token), plus what only the
token changes: the CRLs are signed by CA keys on the token (``openssl crl -verify``), and
``ca trusted-root`` lists the token's keys.

Lean: the root, the issuing CAs of two projects, a revocation with its CRL, and one TSA
round trip; the full matrix runs on the software vault.
"""

from __future__ import annotations

import base64
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import unique
from tests.e2e import test_crl as crl
from tests.e2e import test_pki as pki
from tests.e2e import test_tsa as tsa
from tests.e2e.test_sigstore import trusted_root
from tests.support.server import Server


@pytest.fixture(scope="module")
def server(hsm_sqlite_server: Server) -> Server:
    """Every key of this server is on the token (``init --store hsm``)."""
    return hsm_sqlite_server


@pytest.fixture(scope="module")
def root_pem(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hsm-root") / "root.pem"
    path.write_text(server.cli("ca", "cert").stdout)
    return path


def authority_uris(server: Server) -> list[str]:
    """The key URI of each authority (root, TSA, issuing CAs)."""
    with sqlite3.connect(server.data_dir / "signgate.db") as db:
        return [str(uri) for (uri,) in db.execute("SELECT key_uri FROM authorities")]


def subdir(tmp: Path, name: str) -> Path:
    """A directory of its own for each borrowed test (they write fixed file names)."""
    (tmp / name).mkdir()
    return tmp / name


def test_root_on_the_token_is_a_root_openssl_accepts(server: Server, root_pem: Path) -> None:
    pki.test_root_certificate(server, root_pem)


def test_issuing_cas_on_the_token_issue_per_project(server: Server, root_pem: Path,
                                                    tmp_path: Path) -> None:
    pki.test_issuing_ca_per_project(server, root_pem, tmp_path)
    uris = authority_uris(server)
    assert len(uris) >= 4  # root, TSA, the two projects' CAs
    assert all(u.startswith("pkcs11:token=signgate;") for u in uris), uris


def test_crl_of_an_hsm_ca_rejects_a_revoked_key(server: Server, tmp_path: Path) -> None:
    # key revoke -> the project's CA (on the token) signs a new CRL; openssl -crl_check
    # rejects the revoked certificate and accepts the others.
    crl.test_revoked_certificates_are_rejected_by_openssl(server, subdir(tmp_path, "revoke"))

    # The CRLs' signatures, by the CA keys on the token, checked on their own.
    project = unique("hsmcrl")
    server.cli("project", "create", project)
    server.cli("key", "create", f"{project}/leaked")
    root, issuing = tmp_path / "root.pem", tmp_path / "issuing.pem"
    root.write_text(server.cli("ca", "cert").stdout)
    issuing.write_text(crl.pem_blocks(server.cli("key", "cert", f"{project}/leaked").stdout)[1])
    time.sleep(1.1)  # a compromise time after the key was made
    when = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    server.cli("key", "revoke", f"{project}/leaked", "--compromised-at", when)
    for url, ca, name in ((f"{server.url}/crl/{project}.crl", issuing, "project"),
                          (f"{server.url}/ca/root.crl", root, "root")):
        pem = crl.crl_pem(url, tmp_path / f"{name}-crl.pem")
        checked = crl.openssl("crl", "-in", str(pem), "-noout", "-CAfile", str(ca), "-verify")
        assert checked.returncode == 0, checked
        assert "verify OK" in checked.stdout + checked.stderr, checked
        # ... and not by another CA: the root did not sign the project's CRL.
        other = root if ca == issuing else issuing
        refused = crl.openssl("crl", "-in", str(pem), "-noout", "-CAfile", str(other),
                              "-verify")
        assert "verify OK" not in refused.stdout + refused.stderr, refused


def test_tsa_on_the_token_answers_openssl(server: Server, tmp_path: Path) -> None:
    pems = tsa.Pems(tmp_path / "root.pem", tmp_path / "tsa.pem")
    pems.root.write_text(server.cli("ca", "cert").stdout)
    pems.tsa.write_text(server.cli("ca", "tsa-cert").stdout)
    tsa.test_openssl_query_is_granted_and_verifies(server, pems, subdir(tmp_path, "granted"))
    tsa.test_modified_data_fails_verification(server, pems, subdir(tmp_path, "modified"))


def test_trusted_root_lists_the_keys_on_the_token(server: Server, tmp_path: Path) -> None:
    project = unique("hsmroot")
    server.cli("project", "create", project)
    document = trusted_root(server, tmp_path / "trusted_root.json")
    [tlog] = document["tlogs"]
    log_key = server.cli("log", "public-key", "--json", token="").json()
    der = base64.b64decode("".join(log_key["public_key_pem"].strip().splitlines()[1:-1]))
    assert base64.b64decode(tlog["publicKey"]["rawBytes"]) == der
    [ca] = [c for c in document["certificateAuthorities"]
            if c["subject"]["commonName"] == f"signgate {project} issuing CA"]
    root_pem = server.cli("ca", "cert").stdout
    root_der = base64.b64decode("".join(root_pem.strip().splitlines()[1:-1]))
    assert base64.b64decode(ca["certChain"]["certificates"][1]["rawBytes"]) == root_der
    [authority] = document["timestampAuthorities"]
    tsa_pem = server.cli("ca", "tsa-cert").stdout
    tsa_der = base64.b64decode("".join(tsa_pem.strip().splitlines()[1:-1]))
    assert base64.b64decode(authority["certChain"]["certificates"][0]["rawBytes"]) == tsa_der
