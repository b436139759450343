"""signgate's own PKI end to end: the root CA, one issuing CA per project and a code-signing
certificate for every key version, fetched with the real CLI from a real server and
checked by the real 'openssl' (and, independently, by the cryptography library)."""

from __future__ import annotations

import re
import subprocess
import tomllib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from tests.conftest import unique

# SQLite alone: openssl judges the certificates, which the database does not shape
from tests.support.backends import sqlite_only as sqlite_only
from tests.support.server import Server, openssl

PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----\n.+?\n-----END CERTIFICATE-----\n", re.S)

# (algorithm, --rsa-padding or None); RSA-4096 once per backend.
ALGORITHMS = [
    ("ecdsa-p256", None),
    ("ecdsa-p384", None),
    ("ed25519", None),
    ("rsa-3072", "pss"),
    ("rsa-4096", "pkcs1v15"),
]

# What 'openssl x509 -text' says about the subject public key of each algorithm.
KEY_TEXT = {
    "ecdsa-p256": "NIST CURVE: P-256",
    "ecdsa-p384": "NIST CURVE: P-384",
    "ed25519": "Public Key Algorithm: ED25519",
    "rsa-3072": "Public-Key: (3072 bit)",
    "rsa-4096": "Public-Key: (4096 bit)",
}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60)


def split_pem(text: str) -> list[str]:
    certs = PEM_CERT.findall(text)
    assert "".join(certs) == text, text  # nothing but certificates, in order
    return certs


def load(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def der_sha256(pem: str) -> str:
    return load(pem).fingerprint(hashes.SHA256()).hex()


def spki(pem: str) -> bytes:
    """A public key (PEM, or certificate PEM) as canonical SubjectPublicKeyInfo DER."""
    key = (load(pem).public_key() if "CERTIFICATE" in pem
           else serialization.load_pem_public_key(pem.encode()))
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def x509_text(pem_file: Path) -> str:
    out = run(openssl(), "x509", "-in", str(pem_file), "-noout", "-text")
    assert out.returncode == 0, out
    return out.stdout


def extensions(text: str) -> dict[str, tuple[bool, list[str]]]:
    """The X509v3 extensions of 'openssl x509 -text': name -> (critical, value lines)."""
    result: dict[str, tuple[bool, list[str]]] = {}
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "X509v3 extensions:")
    indent = len(lines[start + 1]) - len(lines[start + 1].lstrip())
    current: list[str] = []
    for line in lines[start + 1:]:
        depth = len(line) - len(line.lstrip())
        if depth < indent:
            break
        if depth == indent:
            name, _, flag = line.strip().partition(":")
            current = []
            result[name] = (flag.strip() == "critical", current)
        else:
            current.append(line.strip())
    return result


def subject_line(text: str) -> str:
    return next(line.strip() for line in text.splitlines()
                if line.strip().startswith("Subject:"))


def verify(leaf: Path, root: Path, untrusted: Path | None,
           strict: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = [openssl(), "verify"] + (["-x509_strict"] if strict else []) + [
        "-CAfile", str(root)]
    if untrusted is not None:
        cmd += ["-untrusted", str(untrusted)]
    return subprocess.run([*cmd, leaf.name], capture_output=True, text=True, timeout=60,
                          cwd=leaf.parent)


def assert_verified(proc: subprocess.CompletedProcess[str], name: str = "leaf.pem") -> None:
    assert proc.returncode == 0, proc
    assert proc.stdout == f"{name}: OK\n", proc


def assert_not_verified(proc: subprocess.CompletedProcess[str], reason: str) -> None:
    assert proc.returncode != 0, proc
    assert ": OK" not in proc.stdout, proc
    assert "verification failed" in proc.stdout + proc.stderr, proc
    assert reason in proc.stdout + proc.stderr, proc


def api(server: Server, method: str, path: str, **kwargs: Any) -> Any:
    with server.http() as http:
        r = http.request(method, "/api/v1" + path, **kwargs)
    assert r.status_code in (200, 201), r.text
    return r.json()


def cert_path(ref: str) -> str:
    project, name = ref.split("/")
    return f"/projects/{project}/keys/{name}/certificate"


def organization(server: Server) -> str:
    config = tomllib.loads((server.data_dir / "config.toml").read_text())
    org = config.get("organization", "signgate")
    assert isinstance(org, str)
    return org


def make_project(server: Server, prefix: str) -> str:
    name = unique(prefix)
    assert server.cli("project", "create", name).stdout.strip() == f"created project {name}"
    return name


def key_chain(server: Server, ref: str, tmp: Path, *extra: str) -> tuple[Path, Path, str]:
    """'signgate key cert': the leaf and the issuing CA, written to tmp."""
    out = server.cli("key", "cert", ref, *extra).stdout
    leaf, issuing = split_pem(out)
    tmp.mkdir(parents=True, exist_ok=True)
    return write(tmp / "leaf.pem", leaf), write(tmp / "issuing.pem", issuing), out


def other_root(tmp: Path, subject: str = "/CN=other") -> Path:
    """A throw-away self-signed root that has nothing to do with signgate."""
    tmp.mkdir(parents=True, exist_ok=True)
    out = run(openssl(), "req", "-x509", "-newkey", "ec", "-pkeyopt",
              "ec_paramgen_curve:P-256", "-nodes", "-subj", subject, "-days", "30",
              "-keyout", str(tmp / "other.key"), "-out", str(tmp / "other.pem"))
    assert out.returncode == 0, out
    return tmp / "other.pem"


@pytest.fixture(scope="module")
def root_pem(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("root") / "root.pem"
    path.write_text(server.cli("ca", "cert").stdout)
    return path


@pytest.fixture(scope="module")
def project(server: Server) -> str:
    return make_project(server, "pki")


# -- the root --------------------------------------------------------------------------


def test_root_certificate(server: Server, root_pem: Path) -> None:
    pem = root_pem.read_text()
    assert split_pem(pem) == [pem]
    assert_verified(run(openssl(), "verify", "-CAfile", str(root_pem), str(root_pem)),
                    str(root_pem))
    strict = run(openssl(), "verify", "-x509_strict", "-check_ss_sig", "-CAfile",
                 str(root_pem), str(root_pem))
    assert_verified(strict, str(root_pem))

    cert = load(pem)
    assert cert.issuer == cert.subject
    cert.verify_directly_issued_by(cert)  # self-signed, and the signature is good
    org = organization(server)
    assert org == "signgate"  # the default
    text = x509_text(root_pem)
    assert subject_line(text) == f"Subject: O = {org}, CN = signgate root CA"
    assert f"Issuer: O = {org}, CN = signgate root CA" in text
    assert "Signature Algorithm: ecdsa-with-SHA384" in text
    ext = extensions(text)
    assert ext["X509v3 Basic Constraints"] == (True, ["CA:TRUE"])
    assert ext["X509v3 Key Usage"] == (True, ["Certificate Sign, CRL Sign"])
    assert "X509v3 Extended Key Usage" not in ext
    assert "X509v3 Subject Key Identifier" in ext
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert timedelta(days=20 * 365) <= lifetime <= timedelta(days=20 * 366)

    info = server.cli("ca", "cert", "--json").json()
    assert set(info) == {"subject", "serial", "sha256", "not_before", "not_after", "pem",
                         "chain_pem"}
    assert info["pem"] == pem
    assert info["chain_pem"] == pem
    assert int(info["serial"], 16) == cert.serial_number
    assert info["sha256"] == der_sha256(pem)
    assert "signgate root CA" in info["subject"]
    assert datetime.fromisoformat(info["not_before"]) == cert.not_valid_before_utc
    assert datetime.fromisoformat(info["not_after"]) == cert.not_valid_after_utc
    # The same over the API, and it stays the same.
    assert api(server, "GET", "/ca/certificate") == info
    assert server.cli("ca", "cert").stdout == pem


# -- key certificates ------------------------------------------------------------------


@pytest.mark.parametrize(("algorithm", "padding"), ALGORITHMS,
                         ids=[a for a, _ in ALGORITHMS])
def test_key_certificate_every_algorithm(server: Server, project: str, root_pem: Path,
                                         tmp_path: Path, algorithm: str,
                                         padding: str | None) -> None:
    name = unique(algorithm)
    ref = f"{project}/{name}"
    extra = ["--algorithm", algorithm] + (["--rsa-padding", padding] if padding else [])
    server.cli("key", "create", ref, *extra)
    leaf, issuing, chain = key_chain(server, ref, tmp_path)

    assert_verified(verify(leaf, root_pem, issuing))
    # The issuing CA is needed: the leaf alone does not reach the root.
    assert_not_verified(verify(leaf, root_pem, None),
                        "unable to get local issuer certificate")

    org = organization(server)
    text = x509_text(leaf)
    assert subject_line(text) == f"Subject: O = {org}, OU = {project}, CN = {ref} v1"
    assert f"Issuer: O = {org}, OU = {project}, CN = signgate {project} issuing CA" in text
    assert KEY_TEXT[algorithm] in text, text
    assert "Signature Algorithm: ecdsa-with-SHA384" in text  # the issuing CA's P-384 key
    ext = extensions(text)
    assert ext["X509v3 Basic Constraints"] == (True, ["CA:FALSE"])
    assert ext["X509v3 Key Usage"] == (True, ["Digital Signature"])
    assert ext["X509v3 Extended Key Usage"] == (False, ["Code Signing"])
    assert "X509v3 Subject Key Identifier" in ext
    assert "X509v3 Authority Key Identifier" in ext
    assert ext["X509v3 CRL Distribution Points"][1][-1] == (
        f"URI:http://127.0.0.1:8080/crl/{project}.crl")

    ca_text = x509_text(issuing)
    assert subject_line(ca_text) == (
        f"Subject: O = {org}, OU = {project}, CN = signgate {project} issuing CA")
    ca_ext = extensions(ca_text)
    assert ca_ext["X509v3 Basic Constraints"] == (True, ["CA:TRUE, pathlen:0"])
    assert ca_ext["X509v3 Key Usage"] == (True, ["Certificate Sign, CRL Sign"])
    assert ca_ext["X509v3 Extended Key Usage"] == (False, ["Code Signing"])

    # The chain links up by key identifiers, too.
    leaf_cert = load(leaf.read_text())
    ca_cert = load(issuing.read_text())
    root_cert = load(root_pem.read_text())
    leaf_cert.verify_directly_issued_by(ca_cert)
    ca_cert.verify_directly_issued_by(root_cert)
    aki = leaf_cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert aki.value.key_identifier == ski.value.digest

    # The certificate's key is exactly the version's public key.
    public = server.cli("key", "public", ref, "--version", "1").stdout
    pubkey = run(openssl(), "x509", "-in", str(leaf), "-noout", "-pubkey")
    assert pubkey.returncode == 0, pubkey
    assert spki(pubkey.stdout) == spki(public)
    assert spki(leaf.read_text()) == spki(public)

    # --json, the API and --version 1 all give the same certificate.
    info = server.cli("key", "cert", ref, "--json").json()
    assert info["pem"] == leaf.read_text()
    assert info["chain_pem"] == chain
    assert int(info["serial"], 16) == leaf_cert.serial_number
    assert info["sha256"] == der_sha256(leaf.read_text())
    assert f"{ref} v1" in info["subject"]
    assert datetime.fromisoformat(info["not_after"]) == leaf_cert.not_valid_after_utc
    assert api(server, "GET", cert_path(ref)) == info
    assert api(server, "GET", cert_path(ref), params={"version": 1}) == info
    assert server.cli("key", "cert", ref, "--version", "1").stdout == chain


def test_chain_refused_by_other_anchors(server: Server, project: str, root_pem: Path,
                                        tmp_path: Path) -> None:
    ref = f"{project}/{unique('anchored')}"
    server.cli("key", "create", ref)
    leaf, issuing, chain = key_chain(server, ref, tmp_path)
    assert_verified(verify(leaf, root_pem, issuing))
    # The whole chain as printed works as the untrusted bundle, too.
    assert_verified(verify(leaf, root_pem, write(tmp_path / "chain.pem", chain)))

    # Another root: nothing leads there.
    stranger = other_root(tmp_path / "stranger")
    assert_not_verified(verify(leaf, stranger, issuing),
                        "unable to get local issuer certificate")
    # Another root that even claims signgate's root name: its key (identifier) is not the
    # one that signed the issuing CA.
    root_subject = "/O=signgate/CN=signgate root CA"
    impostor = other_root(tmp_path / "impostor", root_subject)
    assert load(impostor.read_text()).subject == load(root_pem.read_text()).subject
    assert_not_verified(verify(leaf, impostor, issuing),
                        "unable to get local issuer certificate")

    # Another project's issuing CA as the intermediate.
    other = make_project(server, "pki-other")
    server.cli("key", "create", f"{other}/k")
    _, other_issuing, _ = key_chain(server, f"{other}/k", tmp_path / "other")
    assert other_issuing.read_text() != issuing.read_text()
    assert_verified(verify(tmp_path / "other" / "leaf.pem", root_pem,
                           other_issuing))
    assert_not_verified(verify(leaf, root_pem, other_issuing),
                        "unable to get local issuer certificate")


def test_issuing_ca_per_project(server: Server, root_pem: Path, tmp_path: Path) -> None:
    a, b = make_project(server, "pki-a"), make_project(server, "pki-b")
    server.cli("key", "create", f"{a}/one")
    server.cli("key", "create", f"{a}/two", "--algorithm", "ed25519")
    server.cli("key", "create", f"{b}/one")
    leaf_a1, ca_a1, _ = key_chain(server, f"{a}/one", tmp_path / "a1")
    leaf_a2, ca_a2, _ = key_chain(server, f"{a}/two", tmp_path / "a2")
    leaf_b, ca_b, _ = key_chain(server, f"{b}/one", tmp_path / "b")

    assert ca_a1.read_text() == ca_a2.read_text()
    assert ca_a1.read_text() != ca_b.read_text()
    ca_a, ca_bc = load(ca_a1.read_text()), load(ca_b.read_text())
    assert ca_a.serial_number != ca_bc.serial_number
    assert spki(ca_a1.read_text()) != spki(ca_b.read_text())
    assert ca_a.subject != ca_bc.subject
    assert ca_a.issuer == ca_bc.issuer == load(root_pem.read_text()).subject
    # Same name in two projects, different leaves, each issued by its own project's CA.
    assert load(leaf_a1.read_text()).issuer == ca_a.subject
    assert load(leaf_b.read_text()).issuer == ca_bc.subject
    assert load(leaf_a2.read_text()).issuer == ca_a.subject
    for leaf, ca in ((leaf_a1, ca_a1), (leaf_a2, ca_a2), (leaf_b, ca_b)):
        assert_verified(verify(leaf, root_pem, ca))
    assert_not_verified(verify(leaf_b, root_pem, ca_a1),
                        "unable to get local issuer certificate")


# -- versions --------------------------------------------------------------------------


def test_rotation_issues_a_new_certificate(server: Server, project: str, root_pem: Path,
                                           tmp_path: Path) -> None:
    ref = f"{project}/{unique('rotating')}"
    server.cli("key", "create", ref, "--algorithm", "ecdsa-p384")
    v1_leaf, v1_ca, v1_chain = key_chain(server, ref, tmp_path / "v1")
    server.cli("key", "rotate", ref)
    v2_leaf, v2_ca, v2_chain = key_chain(server, ref, tmp_path / "v2")

    assert v2_chain != v1_chain
    assert v2_ca.read_text() == v1_ca.read_text()  # same project, same issuing CA
    c1, c2 = load(v1_leaf.read_text()), load(v2_leaf.read_text())
    assert c1.serial_number != c2.serial_number
    assert spki(v1_leaf.read_text()) != spki(v2_leaf.read_text())
    assert spki(v1_leaf.read_text()) == spki(server.cli("key", "public", ref, "--version",
                                                        "1").stdout)
    assert spki(v2_leaf.read_text()) == spki(server.cli("key", "public", ref).stdout)
    org = organization(server)
    assert subject_line(x509_text(v2_leaf)) == (
        f"Subject: O = {org}, OU = {project}, CN = {ref} v2")
    assert_verified(verify(v1_leaf, root_pem, v1_ca))
    assert_verified(verify(v2_leaf, root_pem, v2_ca))

    # The old version keeps its own certificate.
    assert server.cli("key", "cert", ref, "--version", "1").stdout == v1_chain
    assert server.cli("key", "cert", ref, "--version", "2").stdout == v2_chain
    assert api(server, "GET", cert_path(ref), params={"version": 1})["serial"] == (
        format(c1.serial_number, "x"))
    missing = server.cli("key", "cert", ref, "--version", "3", check=False)
    assert missing.returncode == 5, missing
    assert missing.stderr == f"signgate: key {ref} has no version 3\n"


def test_automatic_rotation_issues_a_certificate(server: Server, project: str,
                                                 root_pem: Path, tmp_path: Path) -> None:
    """A version made by reaching --max-signatures gets its certificate too, and signatures
    of that version verify with the certificate's key."""
    ref = f"{project}/{unique('limited')}"
    server.cli("key", "create", ref, "--max-signatures", "1")
    signer_name = unique("pki-signer")
    token = server.new_identity(signer_name)
    api(server, "POST", "/grants", json={"identity": signer_name, "role": "signer",
                                         "scope": ref})
    receipts = []
    for i in range(2):
        artifact = write(tmp_path / f"build-{i}.bin", f"build {i} " * 100)
        receipts.append(server.cli("sign", str(artifact), "--key", ref, "--json",
                                   token=token).json())
    assert [r["key_version"] for r in receipts] == [1, 2]

    leaf, issuing, _ = key_chain(server, ref, tmp_path / "v2")
    assert subject_line(x509_text(leaf)).endswith(f"CN = {ref} v2")
    assert_verified(verify(leaf, root_pem, issuing))
    pub = tmp_path / "v2-pub.pem"
    out = run(openssl(), "x509", "-in", str(leaf), "-noout", "-pubkey", "-out", str(pub))
    assert out.returncode == 0, out
    ok = run(openssl(), "dgst", "-sha256", "-verify", str(pub), "-signature",
             receipts[1]["signature_file"], str(tmp_path / "build-1.bin"))
    assert (ok.returncode, ok.stdout) == (0, "Verified OK\n"), ok
    # The version-1 signature does not verify with the version-2 certificate's key.
    bad = run(openssl(), "dgst", "-sha256", "-verify", str(pub), "-signature",
              receipts[0]["signature_file"], str(tmp_path / "build-0.bin"))
    assert bad.returncode != 0, bad
    assert server.cli("key", "cert", ref, "--version", "1").stdout != (
        server.cli("key", "cert", ref).stdout)


def test_cert_validity(server: Server, project: str, tmp_path: Path) -> None:
    short, default = f"{project}/{unique('short')}", f"{project}/{unique('default')}"
    server.cli("key", "create", short, "--cert-validity", "30")
    server.cli("key", "create", default)
    assert server.cli("key", "show", short, "--json").json()["cert_validity_days"] == 30
    assert server.cli("key", "show", default, "--json").json()["cert_validity_days"] == 365

    leaf, issuing, _ = key_chain(server, short, tmp_path / "short")
    cert = load(leaf.read_text())
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert abs(lifetime - timedelta(days=30)) <= timedelta(days=1), lifetime
    ca = load(issuing.read_text())
    assert ca.not_valid_after_utc - ca.not_valid_before_utc > timedelta(days=9 * 365)
    dleaf, _, _ = key_chain(server, default, tmp_path / "default")
    dcert = load(dleaf.read_text())
    lifetime = dcert.not_valid_after_utc - dcert.not_valid_before_utc
    assert abs(lifetime - timedelta(days=365)) <= timedelta(days=1), lifetime

    # Rotation keeps the key's validity.
    server.cli("key", "rotate", short)
    v2, _, _ = key_chain(server, short, tmp_path / "short-v2")
    c2 = load(v2.read_text())
    assert abs(c2.not_valid_after_utc - c2.not_valid_before_utc - timedelta(days=30)) <= (
        timedelta(days=1))

    for bad in ("0", "36501", "-5"):
        r = server.cli("key", "create", f"{project}/{unique('bad')}", "--cert-validity",
                       bad, check=False)
        assert r.returncode == 2, r
        assert "Invalid value for '--cert-validity'" in r.stderr
    with server.http() as http:
        refused = http.post(f"/api/v1/projects/{project}/keys",
                            json={"name": unique("bad"), "cert_validity_days": 0})
    assert refused.status_code == 422, refused.text


# -- who may see certificates ----------------------------------------------------------


def test_certificate_visibility(server: Server, project: str, tmp_path: Path) -> None:
    ref = f"{project}/{unique('hidden')}"
    neighbour = f"{project}/{unique('neighbour')}"
    server.cli("key", "create", ref)
    server.cli("key", "create", neighbour)
    outsider_name = unique("outsider")
    outsider = server.new_identity(outsider_name)
    next_door_name = unique("next-door")
    next_door = server.new_identity(next_door_name)
    api(server, "POST", "/grants", json={"identity": next_door_name, "role": "signer",
                                         "scope": neighbour})
    holder_name = unique("holder")
    holder = server.new_identity(holder_name)
    api(server, "POST", "/grants", json={"identity": holder_name, "role": "signer",
                                         "scope": ref})

    missing = f"{project}/does-not-exist"
    for token in (outsider, next_door):
        with server.http(token) as http:
            hidden = http.get("/api/v1" + cert_path(ref))
            absent = http.get("/api/v1" + cert_path(missing))
        assert hidden.status_code == 404, hidden.text
        assert absent.status_code == 404, absent.text
        assert hidden.json()["detail"] == f"no key {ref}"
        assert "BEGIN CERTIFICATE" not in hidden.text
        r = server.cli("key", "cert", ref, token=token, check=False)
        assert (r.returncode, r.stdout, r.stderr) == (5, "", f"signgate: no key {ref}\n"), r
    # The neighbour's own key is visible to it.
    with server.http(next_door) as http:
        assert http.get("/api/v1" + cert_path(neighbour)).status_code == 200

    # With a grant on the key: the same chain the admin sees.
    assert server.cli("key", "cert", ref, token=holder).stdout == (
        server.cli("key", "cert", ref).stdout)
    # The root is the trust anchor: any identity may fetch it.
    assert server.cli("ca", "cert", token=outsider).stdout == server.cli("ca", "cert").stdout


def test_certificates_need_authentication(server: Server, project: str) -> None:
    ref = f"{project}/{unique('authn')}"
    server.cli("key", "create", ref)
    for token in ("", "sgt_" + "C" * 43):
        with server.http(token) as http:
            for path in ("/api/v1/ca/certificate", "/api/v1" + cert_path(ref),
                         "/api/v1" + cert_path(ref) + "?version=1"):
                r = http.get(path)
                assert r.status_code == 401, (path, r.text)
                assert "BEGIN CERTIFICATE" not in r.text
    for args in (("ca", "cert"), ("key", "cert", ref)):
        out = server.cli(*args, token="sgt_" + "C" * 43, check=False)
        assert out.returncode == 3, out
        assert out.stdout == ""


# -- audit -----------------------------------------------------------------------------


def test_ca_creation_is_audited(server: Server, tmp_path: Path) -> None:
    projects = [make_project(server, "pki-audit"), make_project(server, "pki-audit")]
    admin = server.cli("whoami", "--json").json()["name"]
    entries = server.cli("audit", "log", "--action", "ca.create", "--json").json()
    assert all(e["action"] == "ca.create" for e in entries)
    assert all(e["outcome"] == "allowed" for e in entries)

    root = server.cli("ca", "cert", "--json").json()
    roots = [e for e in entries if e["subject"] == "root CA"]
    assert len(roots) == 1  # made once at 'signgate init', not again at 'serve'
    assert roots[0]["actor"] == "signgate"
    assert roots[0]["project"] is None
    assert roots[0]["details"]["serial"] == root["serial"]
    assert roots[0]["details"]["sha256"] == root["sha256"]
    assert roots[0]["details"]["key_uri"].startswith("soft:")

    for p in projects:
        mine = [e for e in entries if e["project"] == p]
        assert len(mine) == 1, mine
        entry = mine[0]
        assert entry["subject"] == f"{p} issuing CA"
        assert entry["actor"] == admin
        assert entry["seq"] > roots[0]["seq"]
        # It records exactly the certificate that issues the project's keys.
        server.cli("key", "create", f"{p}/k")
        _, issuing, _ = key_chain(server, f"{p}/k", tmp_path / p)
        assert entry["details"]["sha256"] == der_sha256(issuing.read_text())
        assert int(entry["details"]["serial"], 16) == load(issuing.read_text()).serial_number
        assert entry["details"]["key_uri"] != roots[0]["details"]["key_uri"]
        by_project = server.cli("audit", "log", "--action", "ca.create", "--project", p,
                                "--json").json()
        assert [e["seq"] for e in by_project] == [entry["seq"]]
    # Creating keys makes no further CAs.
    again = server.cli("audit", "log", "--action", "ca.create", "--json").json()
    assert [e["seq"] for e in again] == [e["seq"] for e in entries]
