"""`sign --format jar` against the JDK's own tools: a JAR compiled here (javac, jar cfe),
signed through the real CLI and server, checked by `jarsigner -verify -strict` and run by
`java -jar`. jarsigner's exit code mixes trust and keystore bookkeeping, so these tests
read what it prints."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import signal
import subprocess
import threading
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.conftest import unique
from tests.support.server import Server, init_data_dir, start_server

PASS = "changeit"
HELLO = 'public class Hello { public static void main(String[] a) { ' \
        'System.out.println("hello from a signed jar"); } }\n'


def run(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(list(args), capture_output=True, text=True, cwd=cwd, timeout=120)
    assert not check or out.returncode == 0, out
    return out


def truststore(cwd: Path, name: str, *pems: Path) -> Path:
    for i, pem in enumerate(pems):
        run("keytool", "-importcert", "-alias", f"ca{i}", "-file", str(pem), "-keystore",
            name, "-storetype", "PKCS12", "-storepass", PASS, "-noprompt", cwd=cwd)
    return cwd / name


def verify(jar: Path, store: Path) -> subprocess.CompletedProcess[str]:
    return run("jarsigner", "-verify", "-strict", "-verbose", "-certs", "-keystore",
               str(store), "-storepass", PASS, str(jar), cwd=jar.parent, check=False)


@pytest.fixture(scope="module")
def pki(sqlite_server: Server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A compiled JAR, a project, and truststores: our root alone, our root with the
    project's issuing CA, and an unrelated root."""
    d = tmp_path_factory.mktemp("jar")
    (d / "Hello.java").write_text(HELLO)
    run("javac", "Hello.java", cwd=d)
    (d / "res.txt").write_text("x" * 200 + "\n")
    run("jar", "cfe", "app.jar", "Hello", "Hello.class", "res.txt", cwd=d)
    project = unique("jar")
    sqlite_server.cli("project", "create", project)
    sqlite_server.cli("grant", "add", "admin", "signer", project)
    sqlite_server.cli("key", "create", f"{project}/release", "--algorithm", "ecdsa-p256")
    (d / "root.pem").write_text(sqlite_server.cli("ca", "cert").stdout)
    chain = sqlite_server.cli("key", "cert", f"{project}/release").stdout
    (d / "issuing.pem").write_text(chain[chain.index("-----BEGIN", 1):])
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-subj", "/CN=other root", "-keyout", "other.key", "-out", "other.pem",
        cwd=d)
    return {"dir": d, "jar": d / "app.jar", "project": Path(project),
            "root": truststore(d, "root.p12", d / "root.pem"),
            "trusted": truststore(d, "trusted.p12", d / "root.pem", d / "issuing.pem"),
            "other": truststore(d, "other.p12", d / "other.pem")}


def assert_trusted(out: subprocess.CompletedProcess[str], ref: str) -> None:
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "jar verified." in text
    assert f'Signed by "CN={ref} v1' in text
    assert 'Timestamped by "CN=signgate time-stamp authority, O=signgate"' in text
    for warning in ("certificate chain is invalid", "TSA certificate chain is invalid",
                    "unsigned entries", "not signed by alias", "self-signed"):
        assert warning not in text, text


@pytest.mark.parametrize(("alg", "padding", "digest", "block"), [
    ("ecdsa-p256", "pss", "sha256", "EC"), ("ecdsa-p384", "pss", "sha384", "EC"),
    ("rsa-3072", "pss", "sha256", "RSA"), ("rsa-3072", "pkcs1v15", "sha512", "RSA")])
def test_jarsigner_verifies_every_supported_algorithm(
        sqlite_server: Server, pki: dict[str, Path], alg: str, padding: str, digest: str,
        block: str) -> None:
    d, project = pki["dir"], str(pki["project"])
    name = unique(f"{alg[:3]}-{padding[:2]}")
    ref = f"{project}/{name}"
    sqlite_server.cli("key", "create", ref, "--algorithm", alg, "--rsa-padding", padding)
    out = d / f"{name}.jar"
    receipt = sqlite_server.cli("sign", str(pki["jar"]), "--key", ref, "--format", "jar",
                                "--digest", digest, "-o", str(out), "--json").json()
    assert receipt["format"] == "jar"
    assert receipt["signature_file"] == str(out)
    signer = name.upper()[:8]
    with zipfile.ZipFile(out) as z:
        assert z.namelist()[:3] == ["META-INF/MANIFEST.MF", f"META-INF/{signer}.SF",
                                    f"META-INF/{signer}.{block}"]
        sf = z.read(f"META-INF/{signer}.SF").decode()
    assert f"SHA-{digest[3:]}-Digest-Manifest: " in sf
    assert_trusted(verify(out, pki["root"]), ref)
    assert run("java", "-jar", str(out), cwd=d).stdout == "hello from a signed jar\n"


def test_root_alone_is_trusted(sqlite_server: Server, pki: dict[str, Path]) -> None:
    """A truststore holding only signgate's root is enough for -strict: the block carries
    the whole chain, root included, as jarsigner's own blocks do."""
    ref = f"{pki['project']}/release"
    out = pki["dir"] / "root-only.jar"
    sqlite_server.cli("sign", str(pki["jar"]), "--key", ref, "--format", "jar", "-o",
                      str(out))
    assert_trusted(verify(out, pki["root"]), ref)


def test_tampering_and_another_root_fail(sqlite_server: Server, pki: dict[str, Path]) -> None:
    d = pki["dir"]
    ref = f"{pki['project']}/release"
    signed = d / "signed.jar"
    sqlite_server.cli("sign", str(pki["jar"]), "--key", ref, "--format", "jar", "-o",
                      str(signed))
    assert_trusted(verify(signed, pki["trusted"]), ref)

    def rewrite(target: Path, change: dict[str, bytes]) -> None:
        with zipfile.ZipFile(signed) as a, zipfile.ZipFile(target, "w",
                                                          zipfile.ZIP_DEFLATED) as b:
            for info in a.infolist():
                b.writestr(info, change.pop(info.filename, a.read(info)))
            for name, data in change.items():
                b.writestr(name, data)

    rewrite(d / "tampered.jar", {"res.txt": b"y" * 200 + b"\n"})
    tampered = verify(d / "tampered.jar", pki["trusted"])
    assert tampered.returncode != 0
    assert "jar verified" not in tampered.stdout
    assert "digest error for res.txt" in tampered.stdout + tampered.stderr

    rewrite(d / "added.jar", {"Evil.class": b"\xca\xfe\xba\xbe"})
    added = verify(d / "added.jar", pki["trusted"])
    assert added.returncode != 0
    assert "This jar contains unsigned entries which have not been integrity-checked" \
        in added.stdout

    other = verify(signed, pki["other"])
    assert other.returncode != 0
    assert "This jar contains entries whose certificate chain is invalid" in other.stdout
    assert "TSA certificate chain is invalid" in other.stdout


def test_resigning_leaves_one_signer(sqlite_server: Server, pki: dict[str, Path]) -> None:
    d = pki["dir"]
    ref = f"{pki['project']}/release"
    jar = d / "twice.jar"
    jar.write_bytes(pki["jar"].read_bytes())
    for digest in ("sha256", "sha512"):  # in place, the second time over a signed JAR
        sqlite_server.cli("sign", str(jar), "--key", ref, "--format", "jar", "--digest",
                          digest)
    with zipfile.ZipFile(jar) as z:
        signature_files = [n for n in z.namelist()
                           if re.fullmatch(r"META-INF/[^/]+\.(SF|EC|RSA|DSA)", n)]
    assert signature_files == ["META-INF/RELEASE.SF", "META-INF/RELEASE.EC"]
    assert_trusted(verify(jar, pki["trusted"]), ref)
    assert [p.name for p in d.iterdir() if p.name.startswith(".twice.jar")] == []


def test_ed25519_is_refused(sqlite_server: Server, pki: dict[str, Path]) -> None:
    ref = f"{pki['project']}/ed"
    sqlite_server.cli("key", "create", ref, "--algorithm", "ed25519")
    refused = sqlite_server.cli("sign", str(pki["jar"]), "--key", ref, "--format", "jar",
                                "-o", str(pki["dir"] / "ed.jar"), check=False)
    assert refused.returncode == 7
    assert "ed25519" in refused.stderr
    assert not (pki["dir"] / "ed.jar").exists()


def _bomb(path: Path) -> None:
    chunk = bytes(1 << 20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z, z.open("zeros", "w") as f:
        for _ in range(64):
            f.write(chunk)


def _duplicates(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("a.class", b"one")
        with pytest.warns(UserWarning, match="Duplicate name"):
            z.writestr("a.class", b"two")


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: p.write_bytes(b"hello, not a zip\n" * 20), "not a zip archive"),
    (lambda p: p.write_bytes(p.with_name("app.jar").read_bytes()[:-30]), "not a zip"),
    (_bomb, "refused as a zip bomb"),
    (_duplicates, "two entries named 'a.class'"),
])
def test_bad_input_is_refused_untouched(sqlite_server: Server, pki: dict[str, Path],
                                        tmp_path: Path, make: object, message: str) -> None:
    (tmp_path / "app.jar").write_bytes(pki["jar"].read_bytes())
    bad = tmp_path / "bad.jar"
    make(bad)  # type: ignore[operator]
    before = bad.read_bytes()
    refused = sqlite_server.cli("sign", str(bad), "--key", f"{pki['project']}/release",
                                "--format", "jar", check=False)
    assert refused.returncode == 7, refused
    assert message in refused.stderr
    assert bad.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.jar", "bad.jar"]


# --- the attack corpus: each JAR built here from a genuine signgate signature, with
# jarsigner -strict's verdict beside signgate verify's ------------------------------------

EVIL = b"\xca\xfe\xba\xbe evil code"


def b64sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def rebuild(source: Path, target: Path, replace: dict[str, bytes],
            add: dict[str, bytes]) -> Path:
    """``source``'s entries in order (some replaced), then ``add``."""
    with zipfile.ZipFile(source) as a, zipfile.ZipFile(target, "w",
                                                      zipfile.ZIP_DEFLATED) as b:
        for info in a.infolist():
            b.writestr(info, replace.get(info.filename, a.read(info)))
        for name, data in add.items():
            b.writestr(name, data)
    return target


def self_signed(d: Path, name: str, *extensions: str) -> tuple[Path, Path]:
    """A key and a self-signed certificate made by openssl (not signgate)."""
    args = [f"-addext={e}" for e in extensions]
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-subj", f"/CN={name}", "-days", "30", *args, "-keyout", f"{name}.key",
        "-out", f"{name}.pem", cwd=d)
    return d / f"{name}.key", d / f"{name}.pem"


def add_signer(signed: Path, out: Path, key: Path, cert: Path, *chain: Path,
               signer: str = "ZZZ") -> Path:
    """The multi-signer attack: ``com/x/Evil.class`` with its own manifest section, and
    META-INF/ZZZ.SF + ZZZ.EC over it, a detached CMS signature made by ``openssl cms``."""
    with zipfile.ZipFile(signed) as z:
        manifest = z.read("META-INF/MANIFEST.MF")
    section = f"Name: com/x/Evil.class\r\nSHA-256-Digest: {b64sha256(EVIL)}\r\n\r\n".encode()
    manifest += section
    sf = (f"Signature-Version: 1.0\r\nCreated-By: attacker\r\n"
          f"SHA-256-Digest-Manifest: {b64sha256(manifest)}\r\n\r\n"
          f"Name: com/x/Evil.class\r\nSHA-256-Digest: {b64sha256(section)}\r\n\r\n").encode()
    work = out.with_suffix(".sf")
    work.write_bytes(sf)
    extra = [a for c in chain for a in ("-certfile", str(c))]
    run("openssl", "cms", "-sign", "-binary", "-md", "sha256", "-in", str(work), "-signer",
        str(cert), "-inkey", str(key), *extra, "-outform", "DER", "-out", f"{work}.ec",
        cwd=out.parent)
    return rebuild(signed, out, {"META-INF/MANIFEST.MF": manifest},
                   {f"META-INF/{signer}.SF": sf,
                    f"META-INF/{signer}.EC": Path(f"{work}.ec").read_bytes(),
                    "com/x/Evil.class": EVIL})


def signgate_verify(server: Server, jar: Path, *cas: Path) -> dict[str, object]:
    out = server.cli("verify", str(jar), *(a for ca in cas for a in ("--ca", str(ca))),
                     "--json", check=False)
    report: dict[str, object] = out.json()
    assert out.returncode == (0 if report["valid"] else 8), out
    return report


@pytest.fixture(scope="module")
def genuine(sqlite_server: Server, pki: dict[str, Path]) -> Path:
    """app.jar signed by signgate (P/release), valid to both verifiers."""
    out = pki["dir"] / "genuine.jar"
    sqlite_server.cli("sign", str(pki["jar"]), "--key", f"{pki['project']}/release",
                      "--format", "jar", "-o", str(out))
    assert signgate_verify(sqlite_server, out, pki["dir"] / "root.pem")["valid"] is True
    return out


def test_a_foreign_signer_cannot_add_code(sqlite_server: Server, pki: dict[str, Path],
                                          genuine: Path) -> None:
    """V1: a self-signed key signs an added class; signgate's signer still covers the rest.
    Every signer is checked, so the foreign one makes the JAR invalid."""
    d = pki["dir"]
    key, cert = self_signed(d, "intruder")
    attack = add_signer(genuine, d / "foreign.jar", key, cert)
    theirs = verify(attack, pki["root"])
    assert theirs.returncode != 0
    assert "jar verified." not in theirs.stdout, theirs.stdout
    assert "certificate chain is invalid" in theirs.stdout, theirs.stdout
    ours = signgate_verify(sqlite_server, attack, d / "root.pem")
    assert ours["valid"] is False
    assert str(ours["reason"]).startswith("signer ZZZ: "), ours


def test_a_signer_without_code_signing_cannot_add_code(
        sqlite_server: Server, pki: dict[str, Path], genuine: Path) -> None:
    """A signer whose chain is trusted (its CA is given as an anchor to both verifiers) but
    whose certificate has no codeSigning extended key usage."""
    d = pki["dir"]
    key, cert = self_signed(d, "webserver", "extendedKeyUsage=serverAuth",
                            "keyUsage=digitalSignature")
    attack = add_signer(genuine, d / "no-eku.jar", key, cert)
    store = truststore(d, "with-web.p12", d / "root.pem", cert)
    theirs = verify(attack, store)
    assert theirs.returncode != 0
    assert "jar verified." not in theirs.stdout, theirs.stdout
    assert "ExtendedKeyUsage extension doesn't allow code signing" in theirs.stdout, \
        theirs.stdout
    ours = signgate_verify(sqlite_server, attack, d / "root.pem", cert)
    assert ours["valid"] is False
    assert str(ours["reason"]).startswith("signer ZZZ: "), ours
    assert "1.3.6.1.5.5.7.3.3" in str(ours["reason"]), ours  # id-kp-codeSigning


@pytest.mark.parametrize(("name", "signed_by_jdk_rule"), [
    ("META-INF/SIG-evil.class", False), ("META-INF/SIG-notes.txt", True)])
def test_sig_entries_follow_the_jdk_rule(sqlite_server: Server, pki: dict[str, Path],
                                         genuine: Path, name: str,
                                         signed_by_jdk_rule: bool) -> None:
    """V2: META-INF/SIG-* is signature-related only with no extension or one of 1-3 letters
    or digits (SignatureFileVerifier.isSigningRelated); anything else is unsigned content."""
    d = pki["dir"]
    jar = rebuild(genuine, d / f"{name.rpartition('.')[2]}.jar", {}, {name: EVIL})
    theirs = verify(jar, pki["root"])
    ours = signgate_verify(sqlite_server, jar, d / "root.pem")
    if signed_by_jdk_rule:  # ignored by both, as a signature-related file
        assert_trusted(theirs, f"{pki['project']}/release")
        assert ours["valid"] is True, ours
    else:
        assert theirs.returncode != 0
        assert "This jar contains unsigned entries" in theirs.stdout
        assert ours["valid"] is False
        assert ours["reason"] == f"{name} is not signed (an entry added after signing, or " \
            "left out of the signature)"


def test_a_revoked_signer_cannot_add_code(sqlite_server: Server, pki: dict[str, Path],
                                          genuine: Path) -> None:
    """Two signgate keys sign one JAR (both valid to both verifiers); the second, which
    alone covers an added class, is then revoked from before its signature. jarsigner (JDK
    17, no revocation checking by default) still accepts the JAR; signgate does not."""
    d, project = pki["dir"], str(pki["project"])
    second = f"{project}/zz-{unique('late')}"
    sqlite_server.cli("key", "create", second, "--algorithm", "ecdsa-p256")
    time.sleep(1.1)
    compromised = datetime.now(UTC).replace(microsecond=0)
    time.sleep(1.1)  # timestamps are whole seconds: the signature comes after
    jar = rebuild(genuine, d / "two.jar", {}, {"com/x/Evil.class": EVIL})
    sqlite_server.cli("sign", str(jar), "--key", second, "--format", "jar")
    with zipfile.ZipFile(jar) as z:
        assert {"META-INF/RELEASE.SF", "META-INF/ZZ-LATE-.SF"} <= set(z.namelist()), \
            z.namelist()
    before = signgate_verify(sqlite_server, jar, d / "root.pem")
    assert before["valid"] is True, before
    assert before["details"]["signers"] == "RELEASE, ZZ-LATE-"  # type: ignore[index]
    assert "jar verified." in verify(jar, pki["root"]).stdout

    sqlite_server.cli("key", "revoke", second, "--compromised-at",
                      compromised.isoformat().replace("+00:00", "Z"))
    assert "jar verified." in verify(jar, pki["root"]).stdout
    after = signgate_verify(sqlite_server, jar, d / "root.pem")
    assert after["valid"] is False
    assert str(after["reason"]).startswith("signer ZZ-LATE-: "), after
    assert "revoked" in str(after["reason"]), after


# --- the work one upload may cause (V3) -----------------------------------------------------

def many_entries(path: Path, count: int, manifest: bytes | None = None) -> bytes:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        if manifest is not None:
            z.writestr("META-INF/MANIFEST.MF", manifest)
        for i in range(count):
            z.writestr(f"e/{i}", b"x")
    return path.read_bytes()


def scanning_server(base: Path, config: str) -> Server:
    """A server with a scanner (YARA, one rule that never matches), so that its keys
    require a scan: the JAR is uploaded and examined by the server itself."""
    rules = base / "yara"
    rules.mkdir(parents=True)
    (rules / "never.yar").write_text("rule Never { condition: false }\n")
    data = base / "data"
    init_data_dir(data, None)
    with (data / "config.toml").open("a") as f:
        f.write(f'scan_yara_dir = "{rules}"\n{config}')
    server = start_server(data, None, init=False)
    server.cli("project", "create", "up")
    server.cli("grant", "add", "admin", "signer", "up")
    server.cli("key", "create", "up/jar", "--algorithm", "ecdsa-p256")
    return server


def upload(server: Server, body: bytes, timeout: float = 30) -> httpx.Response:
    with httpx.Client(base_url=server.url, timeout=timeout,
                      headers={"Authorization": f"Bearer {server.admin_token}"}) as http:
        return http.post("/api/v1/projects/up/keys/jar/sign-upload", content=body,
                         headers={"Signgate-Sign": json.dumps(
                             {"artifact_name": "many.jar", "format": "jar"})})


def test_upload_bounds_are_refused_and_recorded(tmp_path: Path) -> None:
    server = scanning_server(tmp_path, "jar_max_entries = 100\n"
                                       "jar_max_manifest_bytes = 2048\n")
    try:
        assert upload(server, many_entries(tmp_path / "ok.jar", 99)).status_code == 200
        too_many = upload(server, many_entries(tmp_path / "many.jar", 101))
        assert too_many.status_code == 413, too_many.text
        assert too_many.json()["code"] == "too_many_entries"
        assert "at most 100 (jar_max_entries)" in too_many.json()["detail"]
        big = b"Manifest-Version: 1.0\r\n\r\n" + b"".join(
            f"Name: e/{i}\r\nX-Note: {'n' * 40}\r\n\r\n".encode() for i in range(50))
        manifest = upload(server, many_entries(tmp_path / "big.jar", 50, big))
        assert manifest.status_code == 413, manifest.text
        assert manifest.json()["code"] == "manifest_too_large"
        log = server.cli("audit", "log", "--key", "up/jar", "--action", "signature.create",
                         "--json").json()
        assert [(e["outcome"], e["details"].get("code")) for e in log][-3:] == [
            ("allowed", None), ("refused", "too_many_entries"),
            ("refused", "manifest_too_large")], log
        assert not list((server.data_dir / "spool").glob("upload-*"))
    finally:
        server.stop()


def test_shutdown_ends_jar_work_and_cleans_the_spool(tmp_path: Path) -> None:
    """SIGTERM while the server examines a 65,000-entry JAR: the work ends at once, the
    client is told (503), the spool is emptied, and the server exits within seconds. (It
    used to keep a core busy for minutes and exit only when the request ended.)"""
    server = scanning_server(tmp_path, "")
    body = many_entries(tmp_path / "many.jar", 65000)
    spool = server.data_dir / "spool"
    answer: list[httpx.Response | BaseException] = []

    def send() -> None:
        try:
            answer.append(upload(server, body, timeout=600))
        except BaseException as exc:  # the test below says what happened
            answer.append(exc)

    sender = threading.Thread(target=send)
    sender.start()
    try:
        deadline = time.monotonic() + 60
        while not any(p.stat().st_size == len(body) for p in spool.glob("*/*")):
            assert not answer, answer
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert server.process is not None
        stopped = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(60)  # a generous bound that only catches a hang
        assert time.monotonic() - stopped < 15
        sender.join(30)
        assert not list(spool.glob("upload-*"))
        response = answer[0]
        assert isinstance(response, httpx.Response), response
        assert response.status_code == 503, response.text
        assert response.json()["code"] == "shutting_down"
    finally:
        server.stop()
        sender.join(5)
