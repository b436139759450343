"""public_url: the CRL URLs in signgate's certificates name where the server really is.
`init --public-url` sets it; when it changes, `serve` re-issues the TSA's, the CAs' and the
live keys' certificates (same keys and subjects) so that old signatures still chain and new
ones verify online with only the root, as `osslsigncode verify` does when given no CRLs."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
from cryptography import x509

from tests.e2e.test_authenticode import trust, verify
from tests.support.pe import hello_exe
from tests.support.server import SIGNGATE, Server, base_env, free_port


def init(data_dir: Path, *args: str) -> str:
    subprocess.run([SIGNGATE, "init", "--data-dir", str(data_dir), *args], check=True,
                   capture_output=True, env=base_env(None), timeout=60)
    return (data_dir / "admin.token").read_text().strip()


def serve(data_dir: Path, token: str, port: int, env: dict[str, str] | None = None) -> Server:
    env = {**base_env(None), **(env or {})}
    log_path = data_dir.parent / f"serve-{port}.log"
    proc = subprocess.Popen([SIGNGATE, "serve", "--data-dir", str(data_dir), "--port",
                             str(port)], stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
                            env=env)
    server = Server(f"http://127.0.0.1:{port}", data_dir, None, token, proc, log_path,
                    base_env(None))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, server.server_log()
        try:
            if httpx.get(server.url + "/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.stop()
    raise AssertionError(server.server_log())


def verify_online(exe: Path, root: Path) -> str:
    """osslsigncode with the root only: it fetches every CRL from the certificates."""
    out = subprocess.run(["osslsigncode", "verify", "-in", str(exe), "-CAfile", str(root),
                          "-TSA-CAfile", str(root)], capture_output=True, text=True, timeout=60)
    return out.stdout + out.stderr


def crl_url(pem: str, index: int = 0) -> str:
    """The CRL URL of the certificate at ``index`` in a PEM chain."""
    cert = x509.load_pem_x509_certificates(pem.encode())[index]
    points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    return str(points[0].full_name[0].value)  # type: ignore[index]


def signed_exe(server: Server, ref: str, path: Path) -> Path:
    hello_exe(path)
    server.cli("sign", str(path), "--key", ref, "--format", "authenticode")
    return path


def assert_verified(printed: str) -> None:
    assert "Signature verification: ok" in printed, printed
    assert "Timestamp Server Signature verification: ok" in printed, printed
    assert "Succeeded" in printed, printed


def test_non_default_port_verifies_with_the_root_only(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    token = init(data, "--public-url", f"http://127.0.0.1:{port}")
    assert f'public_url = "http://127.0.0.1:{port}"' in (data / "config.toml").read_text()
    server = serve(data, token, port)
    try:
        server.cli("project", "create", "app")
        server.cli("grant", "add", "admin", "signer", "app")
        server.cli("key", "create", "app/release", "--algorithm", "ecdsa-p256")
        exe = signed_exe(server, "app/release", tmp_path / "hello.exe")
        root = tmp_path / "root.pem"
        root.write_text(server.cli("ca", "cert").stdout)
        printed = verify_online(exe, root)
        assert f"Connecting to http://127.0.0.1:{port}/ca/root.crl" in printed, printed
        assert f"Connecting to http://127.0.0.1:{port}/crl/app.crl" in printed, printed
        assert_verified(printed)
    finally:
        server.stop()


def test_changed_public_url_reissues_certificates(tmp_path: Path) -> None:
    old_port, new_port = free_port(), free_port()
    old_url, new_url = f"http://127.0.0.1:{old_port}", f"http://127.0.0.1:{new_port}"
    data = tmp_path / "data"
    token = init(data, "--public-url", old_url)
    server = serve(data, token, old_port)
    try:
        server.cli("project", "create", "app")
        server.cli("grant", "add", "admin", "signer", "app")
        server.cli("key", "create", "app/release", "--algorithm", "ecdsa-p256")
        old_exe = signed_exe(server, "app/release", tmp_path / "old.exe")
        old_tsa = server.cli("ca", "tsa-cert").stdout
        old_leaf = server.cli("key", "cert", "app/release").stdout
        assert crl_url(old_tsa) == f"{old_url}/ca/root.crl"
        assert crl_url(old_leaf) == f"{old_url}/crl/app.crl"
        root = tmp_path / "root.pem"
        root.write_text(server.cli("ca", "cert").stdout)
    finally:
        server.stop()

    # The server moves: the same data directory, public_url from the environment.
    server = serve(data, token, new_port, {"SIGNGATE_PUBLIC_URL": new_url})
    try:
        assert "re-issued 3 certificates" in server.server_log()  # TSA, app CA, app/release
        tsa = server.cli("ca", "tsa-cert").stdout
        leaf_chain = server.cli("key", "cert", "app/release").stdout
        assert crl_url(tsa) == f"{new_url}/ca/root.crl"
        assert crl_url(leaf_chain) == f"{new_url}/crl/app.crl"
        assert crl_url(leaf_chain, 1) == f"{new_url}/ca/root.crl"  # the issuing CA's
        new_cert = x509.load_pem_x509_certificate(tsa.encode())
        old_cert = x509.load_pem_x509_certificate(old_tsa.encode())
        assert new_cert.subject == old_cert.subject
        assert new_cert.public_key() == old_cert.public_key()
        assert new_cert.serial_number != old_cert.serial_number

        entries = server.cli("audit", "log", "--action", "certificate.reissue",
                             "--json").json()
        entries = entries.get("entries", entries) if isinstance(entries, dict) else entries
        assert len(entries) == 3, entries
        assert {e["details"]["crl_url"] for e in entries} == {
            f"{new_url}/ca/root.crl", f"{new_url}/crl/app.crl"}
        assert {e["details"]["previous_crl_url"] for e in entries} == {
            f"{old_url}/ca/root.crl", f"{old_url}/crl/app.crl"}

        # A new signature verifies online; the old one with the CRLs the server publishes
        # now (its certificates name the old address, where nothing answers any more).
        assert_verified(verify_online(signed_exe(server, "app/release", tmp_path / "new.exe"),
                                      root))
        assert_verified(verify(old_exe, trust(server, "app", tmp_path)))
        assert server.cli("verify", str(old_exe), "--ca", str(root)).returncode == 0
        assert server.cli("audit", "verify").returncode == 0
    finally:
        server.stop()

    # Started again with the same public_url: nothing to re-issue.
    server = serve(data, token, new_port, {"SIGNGATE_PUBLIC_URL": new_url})
    try:
        assert "re-issued" not in server.server_log()
    finally:
        server.stop()
