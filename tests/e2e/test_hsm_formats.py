"""Every signature format with keys in an HSM, proven by the same external verifiers as the
software keys: one ``init --store hsm`` server (root CA, issuing CAs, TSA and log key on
a SoftHSM2 token, and every new key), signing through the real CLI, checked by openssl
(raw, CMS, DSSE, RFC 3161), osslsigncode, jarsigner, gpg and sqop, @sigstore/verify, and
ssh-keygen (SSH signatures).

Lean on purpose (the interop matrix of the software keys is in test_cms.py,
test_authenticode.py, test_jar.py, test_openpgp.py, test_dsse.py, test_sigstore.py,
test_sshsig.py and test_keys_and_signing.py, whose helpers these tests reuse): four HSM
keys made once, ECDSA P-256 for every format, RSA-3072 with PSS where the format takes it
(raw, CMS, DSSE) and PKCS#1 v1.5 where it does not (Authenticode, JAR, OpenPGP, Sigstore,
SSH), Ed25519 where the format has it (raw, OpenPGP, DSSE, SSH). The timestamps inside
CMS, Authenticode, JAR and Sigstore come from the TSA key on the token; a raw or DSSE
signature's token is verified on its own by ``openssl ts -verify``; a one-time key (a
session object) makes a Sigstore bundle; tampered files fail every verifier (the PE and
the JAR tampered inside).
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import unique
from tests.e2e import test_authenticode as authenticode
from tests.e2e import test_cms as cms
from tests.e2e import test_dsse as dsse
from tests.e2e import test_jar as jar
from tests.e2e import test_keys_and_signing as raw
from tests.e2e import test_openpgp as openpgp
from tests.e2e import test_sigstore as sigstore
from tests.e2e import test_sshsig as sshsig
from tests.e2e.test_sigstore import node_verifier as node_verifier  # the fixture
from tests.e2e.test_timestamped_signing import ts_verify
from tests.support.pe import hello_exe
from tests.support.server import Server

# name -> (algorithm, --rsa-padding)
KEYS: dict[str, tuple[str, str | None]] = {
    "ec": ("ecdsa-p256", None), "pss": ("rsa-3072", "pss"), "pkcs1": ("rsa-3072", "pkcs1v15"),
    "ed": ("ed25519", None)}


@dataclass(frozen=True)
class World:
    server: Server
    project: str
    root: Path
    dir: Path

    def ref(self, name: str) -> str:
        return f"{self.project}/{name}"

    def artifact(self, name: str, data: bytes = b"release" * 5000) -> Path:
        path = self.dir / unique("a") / name
        path.parent.mkdir()
        path.write_bytes(data)
        return path


@pytest.fixture(scope="module")
def world(hsm_sqlite_server: Server, tmp_path_factory: pytest.TempPathFactory) -> World:
    """A project whose four keys are on the token (checked: ``key show`` says so)."""
    server = hsm_sqlite_server
    project = unique("hsmfmt")
    server.cli("project", "create", project)
    server.cli("grant", "add", "admin", "signer", project)
    for name, (algorithm, padding) in KEYS.items():
        ref = f"{project}/{name}"
        extra = ("--rsa-padding", padding) if padding else ()
        server.cli("key", "create", ref, "--algorithm", algorithm, *extra)
        [version] = server.cli("key", "show", ref, "--json").json()["versions"]
        assert version["store"] == "hsm", version
        assert version["attributes"]["extractable"] is False
    d = tmp_path_factory.mktemp("hsm-formats")
    (d / "root.pem").write_text(server.cli("ca", "cert").stdout)
    return World(server, project, d / "root.pem", d)


def test_raw_signatures_and_their_timestamp_verify_with_openssl(world: World) -> None:
    artifact = world.artifact("app.bin")
    for name, digest in (("ec", "sha256"), ("pss", "sha512"), ("ed", "sha256")):
        algorithm, padding = KEYS[name]
        sig = world.dir / f"raw-{name}.sig"
        world.server.cli("sign", str(artifact), "--key", world.ref(name), "--format", "raw",
                         "--digest", digest, "-o", str(sig))
        pub = world.dir / f"raw-{name}.pem"
        pub.write_text(world.server.cli("key", "public", world.ref(name)).stdout)
        raw.assert_openssl_ok(raw.openssl_verify(algorithm, padding, digest, pub, sig,
                                                 artifact, world.dir), algorithm)
        tampered = raw.tamper(artifact, world.dir / f"tampered-{name}.bin")
        raw.assert_openssl_fails(raw.openssl_verify(algorithm, padding, digest, pub, sig,
                                                    tampered, world.dir))

    # A timestamp by the TSA key on the token, over the signature value.
    receipt = world.server.cli("sign", str(artifact), "--key", world.ref("ec"), "--timestamp",
                               "--json").json()
    sig, tsr = Path(receipt["signature_file"]), Path(receipt["timestamp_file"])
    ok = ts_verify(sig, tsr, world.root)
    assert ok.stdout.strip().endswith("Verification: OK"), ok
    forged = world.dir / "forged.sig"
    forged.write_bytes(sig.read_bytes()[:-1] + bytes([sig.read_bytes()[-1] ^ 1]))
    bad = ts_verify(forged, tsr, world.root)
    assert "Verification: FAILED" in bad.stdout + bad.stderr, bad


def test_cms_verifies_with_openssl(world: World) -> None:
    artifact = world.artifact("release.tar.gz")
    for name in ("ec", "pss"):
        receipt = world.server.cli("sign", str(artifact), "--key", world.ref(name),
                                   "--format", "cms", "--json").json()
        p7s = Path(receipt["signature_file"])
        ok = cms.cms_verify(p7s, artifact, world.root, "-purpose", "any")
        assert "CMS Verification successful" in ok.stderr, (name, ok)
        printed = subprocess.run(["openssl", "cms", "-cmsout", "-print", "-inform", "DER",
                                  "-in", str(p7s)], capture_output=True, text=True).stdout
        assert "id-smime-aa-timeStampToken" in printed
        if name == "pss":
            assert "rsassaPss" in printed, printed
        tampered = raw.tamper(artifact, world.dir / f"cms-tampered-{name}.bin")
        bad = cms.cms_verify(p7s, tampered, world.root, "-purpose", "any")
        assert "CMS Verification successful" not in bad.stderr


def test_authenticode_verifies_with_osslsigncode(world: World) -> None:
    t = authenticode.trust(world.server, world.project, world.dir)
    for name in ("ec", "pkcs1"):
        exe = hello_exe(world.dir / f"{name}.exe", overlay=b"odd overlay")
        signed = world.dir / f"{name}-signed.exe"
        world.server.cli("sign", str(exe), "--key", world.ref(name), "--format",
                         "authenticode", "-o", str(signed))
        printed = authenticode.verify(signed, t)
        current, calculated = authenticode.digests(printed)
        assert current == calculated, printed
        assert "Signature verification: ok" in printed, (name, printed)
        assert "Timestamp Server Signature verification: ok" in printed, (name, printed)
        assert "Signature CRL verification: ok" in printed, (name, printed)
        assert "Succeeded" in printed, (name, printed)

        data = bytearray(signed.read_bytes())
        data[0x400] ^= 0x01  # a byte of the first section
        tampered = world.dir / f"{name}-tampered.exe"
        tampered.write_bytes(bytes(data))
        printed = authenticode.verify(tampered, t)
        current, calculated = authenticode.digests(printed)
        assert current != calculated
        assert "Succeeded" not in printed
        assert "Failed" in printed


def test_jar_verifies_with_jarsigner(world: World) -> None:
    d = world.dir / "jar"
    d.mkdir()
    (d / "Hello.java").write_text(jar.HELLO)
    jar.run("javac", "Hello.java", cwd=d)
    (d / "res.txt").write_text("x" * 200 + "\n")
    jar.run("jar", "cfe", "app.jar", "Hello", "Hello.class", "res.txt", cwd=d)
    store = jar.truststore(d, "root.p12", world.root)
    for name in ("ec", "pkcs1"):
        out = d / f"{name}.jar"
        world.server.cli("sign", str(d / "app.jar"), "--key", world.ref(name), "--format",
                         "jar", "-o", str(out))
        jar.assert_trusted(jar.verify(out, store), world.ref(name))
        assert jar.run("java", "-jar", str(out), cwd=d).stdout == "hello from a signed jar\n"

        tampered = d / f"{name}-tampered.jar"
        with zipfile.ZipFile(out) as a, zipfile.ZipFile(tampered, "w",
                                                        zipfile.ZIP_DEFLATED) as b:
            for info in a.infolist():
                b.writestr(info, b"y" * 200 + b"\n" if info.filename == "res.txt"
                           else a.read(info))
        bad = jar.verify(tampered, store)
        assert bad.returncode != 0
        assert "jar verified" not in bad.stdout
        assert "digest error for res.txt" in bad.stdout + bad.stderr


def test_openpgp_verifies_with_gpg_and_sqop(world: World,
                                            new_gpg_home: Callable[[], Path]) -> None:
    artifact = world.artifact("release.tar.gz")
    tampered = raw.tamper(artifact, world.dir / "pgp-tampered.tar.gz")
    for name, digest in (("ec", "sha256"), ("ed", "sha256"), ("pkcs1", "sha512")):
        view = world.server.cli("key", "public", world.ref(name), "--openpgp", "--user-id",
                                f"Release {name} <{name}@example.org>", "--json").json()
        fingerprint = view["fingerprint"]
        key_asc = world.dir / f"{name}.asc"
        key_asc.write_text(view["armored"])
        home = new_gpg_home()
        imported = openpgp.gpg(home, "--status-fd", "1", "--import", str(key_asc))
        assert f"IMPORT_OK 1 {fingerprint}" in imported.stdout, (name, imported)
        receipt = world.server.cli("sign", str(artifact), "--key", world.ref(name),
                                   "--format", "openpgp", "--digest", digest,
                                   "--json").json()
        asc = Path(receipt["signature_file"])
        status = openpgp.gpg_verify(home, asc, artifact)
        assert f"[GNUPG:] VALIDSIG {fingerprint} " in status, (name, status)
        ok = openpgp.sqop_verify(asc, key_asc, artifact)
        assert ok.returncode == 0, (name, ok)
        assert fingerprint.encode() in ok.stdout, (name, ok)
        bad = openpgp.gpg_verify(home, asc, tampered)
        assert "[GNUPG:] BADSIG" in bad, (name, bad)
        assert "VALIDSIG" not in bad
        assert openpgp.sqop_verify(asc, key_asc, tampered).returncode != 0


def test_dsse_verifies_with_openssl(world: World) -> None:
    artifact = world.artifact("release.tar.gz")
    for name in ("ec", "pss", "ed"):
        algorithm, padding = KEYS[name]
        public = world.dir / f"dsse-{name}.pem"
        public.write_text(world.server.cli("key", "public", world.ref(name)).stdout)
        receipt = world.server.cli("sign", str(artifact), "--key", world.ref(name),
                                   "--format", "dsse", "--json").json()
        envelope = dsse.envelope_of(Path(receipt["signature_file"]))
        [signature] = envelope["signatures"]
        body = base64.b64decode(envelope["payload"])
        statement = json.loads(body)
        assert statement["subject"][0]["digest"]["sha256"] == \
            hashlib.sha256(artifact.read_bytes()).hexdigest()
        sig = base64.b64decode(signature["sig"])
        ok = dsse.openssl_verify(algorithm, padding or "", "sha256", public,
                                 dsse.pae(envelope["payloadType"], body), sig, world.dir)
        assert dsse.verified(ok), (name, ok)
        statement["subject"][0]["name"] = "evil.tar.gz"
        forged = json.dumps(statement).encode()
        bad = dsse.openssl_verify(algorithm, padding or "", "sha256", public,
                                  dsse.pae(envelope["payloadType"], forged), sig, world.dir)
        assert not dsse.verified(bad), (name, bad)
        # The sidecar token (from the TSA key on the token) covers the signature value.
        value = world.dir / f"dsse-{name}.sigvalue"
        value.write_bytes(sig)
        stamped = ts_verify(value, Path(receipt["timestamp_file"]), world.root)
        assert stamped.stdout.strip().endswith("Verification: OK"), (name, stamped)


def test_sigstore_verifies_with_sigstore_js(world: World, node_verifier: Path) -> None:
    root_path = world.dir / "trusted_root.json"
    document = sigstore.trusted_root(world.server, root_path)
    # The log key (Ed25519, on the token) and the TSA are what the trust root lists.
    [tlog] = document["tlogs"]
    assert tlog["publicKey"]["keyDetails"] == "PKIX_ED25519"
    assert len(document["timestampAuthorities"]) == 1
    artifact = world.artifact("release.tar.gz")
    for name in ("ec", "pkcs1"):
        bundle = world.dir / f"{name}.sigstore.json"
        world.server.cli("sign", str(artifact), "--key", world.ref(name), "--format",
                         "sigstore", "-o", str(bundle))
        ok = sigstore.node_verify(node_verifier, bundle, artifact, root_path)
        assert ok.startswith("OK:"), (name, ok)
        assert f"CN={world.ref(name)} v1" in ok

    # A one-time key: a session object on the token, used once, its certificate issued
    # by the project's CA on the token.
    once = world.ref(unique("once"))
    world.server.cli("key", "create", once, "--one-time")
    bundle = world.dir / "once.sigstore.json"
    world.server.cli("sign", str(artifact), "--key", once, "--format", "sigstore", "-o",
                     str(bundle))
    [version] = world.server.cli("key", "show", once, "--json").json()["versions"]
    assert version["store"] == "hsm"
    ok = sigstore.node_verify(node_verifier, bundle, artifact, root_path)
    assert ok.startswith("OK:"), ok
    assert f"CN={once} v1" in ok

    tampered = raw.tamper(artifact, world.dir / "sigstore-tampered.tar.gz")
    bad = sigstore.node_verify(node_verifier, bundle, tampered, root_path)
    sigstore.assert_failed(bad, "SIGNATURE_ERROR")


def test_ssh_signatures_verify_with_ssh_keygen(world: World) -> None:
    """sshsig from keys on the token: Ed25519 (CKM_EDDSA over the SSHSIG data), ECDSA
    P-256 and RSA PKCS#1 v1.5 (rsa-sha2-512), checked by ``ssh-keygen -Y verify``."""
    content = b"release" * 5000
    artifact = world.artifact("release.tar.gz", content)
    signers = world.dir / "allowed_signers"
    signers.write_text("".join(
        "release@example " + world.server.cli("key", "public", world.ref(name), "--ssh").stdout
        for name in ("ed", "ec", "pkcs1")))
    for name in ("ed", "ec", "pkcs1"):
        sig = world.dir / f"{name}.sig"
        world.server.cli("sign", str(artifact), "--key", world.ref(name), "--format", "sshsig",
                         "--namespace", "file", "--no-timestamp", "-o", str(sig))
        code, out = sshsig.ssh_verify(signers, sig, content)
        assert code == 0, (name, out)
        assert 'Good "file" signature for release@example' in out, (name, out)
        code, out = sshsig.ssh_verify(signers, sig, content + b"tampered")
        assert code != 0, (name, out)
        assert "Good" not in out, (name, out)
