"""Keys in an HSM, end to end: a real 'signgate serve' over a real SoftHSM2 token (each test
its own token directory), signatures checked by the real 'openssl'.

- ``init --store hsm`` puts the root CA, the issuing CAs, the TSA and the log key into the
  token, new keys go there, ``key show`` reports their security attributes;
- ``key rotate --store hsm`` moves a software key onto the token, its old version still
  verifying;
- ``serve`` refuses a wrong PIN with one sentence;
- with the token gone, signing answers 503 ``keystore_unavailable`` and nothing is signed;
  the refusal is recorded, also when the log key is on that token (then unsigned until
  the next checkpoint).
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import unique
from tests.support.server import SIGNGATE, Server, base_env, openssl
from tests.support.softhsm import PIN_ENV, SoftHsm, make_softhsm, start_hsm_server

SECURE = {"sensitive": True, "extractable": False, "never_extractable": True,
          "always_sensitive": True, "local": True}


def _verify_raw(server: Server, ref: str, artifact: Path, sig: Path, tmp: Path,
                version: int | None = None, pss: bool = False) -> None:
    pub = tmp / f"{artifact.name}.pub.pem"
    extra = ("--version", str(version)) if version else ()
    pub.write_text(server.cli("key", "public", ref, *extra).stdout)
    cmd = [openssl(), "dgst", "-sha256", "-verify", str(pub), "-signature", str(sig)]
    if pss:
        cmd += ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:-1"]
    done = subprocess.run([*cmd, str(artifact)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert (done.returncode, done.stdout.strip()) == (0, "Verified OK"), done


def _signer(server: Server, project: str) -> str:
    name = unique("ci")
    token = server.new_identity(name)
    server.cli("grant", "add", name, "signer", project)
    return token


def _uris(server: Server, sql: str) -> list[str]:
    with sqlite3.connect(server.data_dir / "signgate.db") as db:
        return [row[0] for row in db.execute(sql)]


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> SoftHsm:
    return make_softhsm(tmp_path_factory.mktemp("e2e-softhsm"), ["signgate", "doomed"])


def test_init_store_puts_the_authorities_and_the_log_key_into_the_token(
        hsm_sqlite_server: Server, tmp_path: Path) -> None:
    config = (hsm_sqlite_server.data_dir / "config.toml").read_text()
    assert config.startswith('default_store = "hsm"')
    assert hsm_sqlite_server.env[PIN_ENV] not in config  # the PIN is never in config.toml
    project = unique("hsm")
    hsm_sqlite_server.cli("project", "create", project)
    authorities = _uris(hsm_sqlite_server, "SELECT key_uri FROM authorities")
    log_keys = _uris(hsm_sqlite_server, "SELECT key_uri FROM log_keys")
    # the root CA, the TSA, the project's issuing CA; the log key
    assert len(authorities) >= 3
    assert len(log_keys) == 1
    assert all(u.startswith("pkcs11:token=signgate;id=%") for u in authorities + log_keys)
    assert _uris(hsm_sqlite_server, "SELECT uri FROM vault_entries") == []  # no sealed blob at all

    # New keys go into the token; key show reports where and the token's attributes.
    token = _signer(hsm_sqlite_server, project)
    for algorithm, padding in (("ecdsa-p256", None), ("rsa-3072", "pss"),
                               ("rsa-3072", "pkcs1v15")):
        ref = f"{project}/{algorithm}-{padding or 'ec'}"
        args = ("--rsa-padding", padding) if padding else ()
        hsm_sqlite_server.cli("key", "create", ref, "--algorithm", algorithm, *args)
        shown = hsm_sqlite_server.cli("key", "show", ref, "--json").json()
        [version] = shown["versions"]
        assert (version["store"], version["attributes"]) == ("hsm", SECURE)
        artifact = tmp_path / f"{algorithm}-{padding}.bin"
        artifact.write_bytes(b"release bits " * 1000)
        hsm_sqlite_server.cli("sign", str(artifact), "--key", ref, "--format", "raw", token=token)
        _verify_raw(hsm_sqlite_server, ref, artifact, Path(f"{artifact}.sig"), tmp_path,
                    pss=padding == "pss")
    # The PKI on the token: a CMS signature by an HSM key, its certificate issued by the
    # project's CA (on the token) under the root (on the token), timestamped by the TSA
    # (on the token), verified by openssl against the root.
    root = tmp_path / "root.pem"
    root.write_text(hsm_sqlite_server.cli("ca", "cert").stdout)
    artifact = tmp_path / "release.tar.gz"
    artifact.write_bytes(b"release" * 5000)
    for ref in (f"{project}/ecdsa-p256-ec", f"{project}/rsa-3072-pkcs1v15"):
        receipt = hsm_sqlite_server.cli("sign", str(artifact), "--key", ref, "--format",
                                        "cms", "--json", token=token).json()
        done = subprocess.run(
            [openssl(), "cms", "-verify", "-binary", "-inform", "DER", "-in",
             receipt["signature_file"], "-content", str(artifact), "-CAfile", str(root),
             "-purpose", "any", "-out", "/dev/null"], capture_output=True, text=True,
            timeout=60, check=False)
        assert "CMS Verification successful" in done.stderr, (ref, done)
        printed = subprocess.run([openssl(), "cms", "-cmsout", "-print", "-inform", "DER",
                                  "-in", receipt["signature_file"]], capture_output=True,
                                 text=True, timeout=60, check=False).stdout
        assert "id-smime-aa-timeStampToken" in printed
    text = hsm_sqlite_server.cli("key", "show", f"{project}/ecdsa-p256-ec").stdout
    assert ("version 1 on the HSM: sensitive=yes  extractable=no  never_extractable=yes  "
            "always_sensitive=yes  local=yes") in text
    listed = hsm_sqlite_server.cli("key", "list", project).stdout.splitlines()
    assert listed[0].split()[-1] == "STORE"
    assert all(line.split()[-1] == "hsm" for line in listed[1:])
    # A one-time key: a session object on the token, destroyed after its one signing.
    once = f"{project}/once"
    hsm_sqlite_server.cli("key", "create", once, "--one-time")
    artifact = tmp_path / "once.bin"
    artifact.write_bytes(b"once")
    hsm_sqlite_server.cli("sign", str(artifact), "--key", once, "--format", "raw", token=token)
    [version] = hsm_sqlite_server.cli("key", "show", once, "--json").json()["versions"]
    assert version["store"] == "hsm"
    _verify_raw(hsm_sqlite_server, once, artifact, Path(f"{artifact}.sig"), tmp_path, version=1)
    # Nothing of the keys is in the database but URIs and public keys.
    uris = _uris(hsm_sqlite_server, "SELECT uri FROM key_versions")
    assert all(u.startswith("pkcs11:token=signgate;") for u in uris)


def test_key_rotate_moves_a_software_key_onto_the_token(hsm: SoftHsm, tmp_path: Path) -> None:
    server = start_hsm_server(tmp_path / "data", None, hsm, init_store=False)
    try:
        project = unique("move")
        server.cli("project", "create", project)
        token = _signer(server, project)
        ref = f"{project}/release"
        server.cli("key", "create", ref)
        old = tmp_path / "old.bin"
        old.write_bytes(b"signed by the software key")
        server.cli("sign", str(old), "--key", ref, "--format", "raw", token=token)

        out = server.cli("key", "rotate", ref, "--store", "hsm").stdout
        assert out.strip() == f"rotated {ref}: version 2 is now current (key store hsm)"
        new = tmp_path / "new.bin"
        new.write_bytes(b"signed inside the HSM")
        server.cli("sign", str(new), "--key", ref, "--format", "raw", token=token)

        versions = server.cli("key", "show", ref, "--json").json()["versions"]
        assert [(v["version"], v["store"], v["current"]) for v in versions] == [
            (1, "soft", False), (2, "hsm", True)]
        assert versions[0]["attributes"] is None
        assert versions[1]["attributes"] == SECURE
        # Both verify: the old signature with version 1, the new one with version 2.
        _verify_raw(server, ref, old, Path(f"{old}.sig"), tmp_path, version=1)
        _verify_raw(server, ref, new, Path(f"{new}.sig"), tmp_path, version=2)
        for artifact in (old, new):
            server.cli("verify", str(artifact), "--signature", f"{artifact}.sig", "--key", ref)
        # A scheduled rotation keeps the key where it is; an unknown store is refused.
        server.cli("key", "rotate", ref)
        assert server.cli("key", "show", ref, "--json").json()["versions"][2]["store"] == "hsm"
        bad = server.cli("key", "rotate", ref, "--store", "hsm2", check=False)
        assert (bad.returncode, bad.stderr) == (
            7, "signgate: no key store named 'hsm2'; configured: hsm, soft\n")
        rotations = server.cli("audit", "log", "--key", ref, "--action", "key.rotate",
                               "--json").json()
        assert [(e["outcome"], e["details"].get("store")) for e in rotations] == [
            ("allowed", "hsm"), ("allowed", "hsm"), ("refused", None)]
    finally:
        server.stop()


def test_serve_refuses_a_wrong_pin_and_a_missing_module(hsm: SoftHsm, tmp_path: Path) -> None:
    server = start_hsm_server(tmp_path / "data", None, hsm)
    server.stop()

    def serve(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        clean = {k: v for k, v in base_env(None).items()  # not the softhsm fixture's PIN
                 if k not in (PIN_ENV, "SOFTHSM2_CONF")}
        return subprocess.run([SIGNGATE, "serve", "--data-dir", str(server.data_dir),
                               "--port", "0"], capture_output=True, text=True, timeout=60,
                              env={**clean, **env}, check=False)

    wrong = serve({**hsm.env(), PIN_ENV: "00000000"})
    assert (wrong.returncode, wrong.stderr) == (
        10, "signgate: key store 'hsm': cannot log in to the token 'signgate': wrong PIN\n")
    unset = serve({"SOFTHSM2_CONF": str(hsm.conf)})
    assert (unset.returncode, unset.stderr) == (
        10, f"signgate: key store 'hsm': the environment variable {PIN_ENV} (pin_env) is "
            "not set\n")
    config = server.data_dir / "config.toml"
    config.write_text(config.read_text().replace(hsm.module, "/nonexistent/libsofthsm2.so"))
    missing = serve(hsm.env())
    assert (missing.returncode, missing.stderr) == (
        10, "signgate: key store 'hsm': the PKCS#11 module /nonexistent/libsofthsm2.so does "
            "not exist\n")
    for out in (wrong, unset, missing):
        assert hsm.pin not in out.stdout + out.stderr


def test_a_removed_token_is_503_keystore_unavailable_recorded(
        hsm: SoftHsm, tmp_path: Path) -> None:
    # The log and the CAs stay in the software vault: the refusal can be recorded.
    server = start_hsm_server(tmp_path / "data", None, hsm, label="doomed", init_store=False)
    try:
        project = unique("gone")
        server.cli("project", "create", project)
        token = _signer(server, project)
        ref = f"{project}/release"
        server.cli("key", "create", ref, "--store", "hsm")
        ok = tmp_path / "ok.bin"
        ok.write_bytes(b"before")
        server.cli("sign", str(ok), "--key", ref, "--format", "raw", token=token)

        shutil.rmtree(hsm.token_dir("doomed"))
        artifact = tmp_path / "after.bin"
        artifact.write_bytes(b"after the token went away")
        with server.http(token) as http:
            r = http.post(f"/api/v1/projects/{project}/keys/release/sign",
                          json={"digest": "00" * 32, "artifact_name": "after.bin"})
        assert r.status_code == 503, r.text
        problem = r.json()
        assert problem["code"] == "keystore_unavailable"
        assert "'doomed'" in problem["detail"]
        assert hsm.pin not in r.text
        refused = server.cli("sign", str(artifact), "--key", ref, "--format", "raw",
                             token=token, check=False)
        assert refused.returncode == 9
        assert refused.stderr.startswith("signgate: the HSM key store 'hsm' could not")
        assert refused.stderr.count("\n") == 1
        assert not Path(f"{artifact}.sig").exists()  # nothing half-signed
        entries = server.cli("audit", "log", "--key", ref, "--action", "signature.create",
                             "--json").json()
        assert [e["outcome"] for e in entries] == ["allowed", "refused", "refused"]
        assert {e["details"]["code"] for e in entries[1:]} == {"keystore_unavailable"}
        server.cli("audit", "verify")
        health = httpx.get(server.url + "/healthz", timeout=30)
        assert health.status_code == 503
        assert health.json()["detail"].startswith("key store 'hsm' cannot use this database's")
    finally:
        server.stop()


def test_with_the_log_key_on_a_failing_token_nothing_is_signed_and_the_refusal_is_recorded(
        tmp_path: Path) -> None:
    """The log key cannot sign a checkpoint either: the refusal is committed all the same
    (a transaction of refusals only may), covered by the next checkpoint the key signs."""
    hsm = make_softhsm(tmp_path / "softhsm", ["all"])
    server = start_hsm_server(tmp_path / "data", None, hsm, label="all")
    try:
        project = unique("all")
        server.cli("project", "create", project)
        token = _signer(server, project)
        ref = f"{project}/release"
        server.cli("key", "create", ref)
        before = server.cli("audit", "log", "--json").json()
        shutil.rmtree(hsm.token_dir("all"))
        artifact = tmp_path / "a.bin"
        artifact.write_bytes(b"not to be signed")
        refused = server.cli("sign", str(artifact), "--key", ref, "--format", "raw",
                             token=token, check=False)
        assert refused.returncode == 9, refused
        assert refused.stderr.startswith("signgate: the HSM key store 'hsm' could not ")
        assert not Path(f"{artifact}.sig").exists()
        after = server.cli("audit", "log", "--json").json()
        assert after[:len(before)] == before
        [refusal] = after[len(before):]
        assert (refusal["action"], refusal["outcome"]) == ("signature.create", "refused")
        assert refusal["details"]["code"] == "keystore_unavailable"
        checkpoint = httpx.get(server.url + "/log/checkpoint", timeout=30).text
        assert int(checkpoint.split("\n")[1]) == len(before)  # signed before, not since
        assert "intact" in server.cli("audit", "verify").stdout
    finally:
        server.stop()


def test_init_store_needs_its_table(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    done = subprocess.run([SIGNGATE, "init", "--data-dir", str(data_dir), "--store", "hsm"],
                          capture_output=True, text=True, timeout=60, env=base_env(None),
                          check=False)
    config = data_dir.resolve() / "config.toml"
    assert (done.returncode, done.stderr) == (
        10, f"signgate: --store hsm: {config} has no [stores.hsm] table (write it before "
            "'signgate init': see README, 'Keys in an HSM')\n")
    assert not (data_dir / "admin.token").exists()
