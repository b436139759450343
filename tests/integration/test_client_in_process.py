"""SigngateClient.sign_file / verify_file and the click CLI, in-process over the real app.

The app is the one 'signgate serve' runs (real service context on a SQLite data directory
made by the real 'signgate init'), reached through starlette's TestClient transport instead
of a socket; the CLI gets the same transport as its click context object. What the client
writes is still proven with the ecosystem's verifiers (openssl, osslsigncode)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from signgate import errors
from signgate.api.app import create_app
from signgate.cli.main import cli
from signgate.client import SigngateClient
from signgate.config import load_settings
from signgate.formats.base import Progress
from signgate.service.factory import build_context
from tests.support.pe import hello_exe

URL = "http://testserver"


@dataclass(frozen=True)
class App:
    transport: httpx.BaseTransport
    admin_token: str
    signer_token: str
    outsider_token: str
    project: str

    def client(self, token: str) -> SigngateClient:
        return SigngateClient(URL, token, transport=self.transport)

    def cli(self, *args: str, token: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(cli, [*args, "--url", URL], obj=self.transport,
                                    env={"SIGNGATE_TOKEN": token})
        return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    data_dir = tmp_path_factory.mktemp("inprocess") / "data"
    umask = os.umask(0o022)  # 'signgate init' sets the process's umask: give it back
    try:
        done = CliRunner().invoke(cli, ["init", "--data-dir", str(data_dir), "--json"],
                                  env={"SIGNGATE_MASTER_KEY": None, "SIGNGATE_DATABASE_URL":
                                       None})
    finally:
        os.umask(umask)
    assert done.exit_code == 0, done.output
    admin = (data_dir / "admin.token").read_text().strip()
    ctx = build_context(load_settings(data_dir))
    with TestClient(create_app(ctx), base_url=URL) as http:
        transport = http._transport  # starlette's sync transport over the ASGI app
        with SigngateClient(URL, admin, transport=transport) as c:
            c.create_project("inproc")
            c.create_key("inproc/ec")
            signer = c.create_identity("ci-inproc", "service")["token"]
            outsider = c.create_identity("stranger", "service")["token"]
            c.add_grant("ci-inproc", "signer", "inproc")
        yield App(transport, admin, signer, outsider, "inproc")


def _root(app: App, tmp: Path) -> Path:
    root = tmp / "root.pem"
    with app.client(app.admin_token) as c:
        root.write_text(c.ca_certificate()["pem"])
    return root


def test_sign_file_raw_writes_signature_and_timestamp(app: App, tmp_path: Path) -> None:
    artifact = tmp_path / "app.tar.gz"
    artifact.write_bytes(b"release " * 1000)
    with app.client(app.signer_token) as c:
        signed = c.sign_file(artifact, "inproc/ec", "raw", metadata={"commit": "abc"})
        pem = c.public_key("inproc/ec")["public_key_pem"]
    assert signed.signature_path == tmp_path / "app.tar.gz.sig"
    assert signed.timestamp_path == tmp_path / "app.tar.gz.sig.tsr"
    assert signed.timestamp_path.stat().st_size > 0
    assert signed.certificate_path is None
    assert signed.receipt["key"] == "inproc/ec"
    assert signed.summary()["signature_file"] == str(signed.signature_path)
    public = tmp_path / "pub.pem"
    public.write_text(pem)
    ok = subprocess.run(["openssl", "dgst", "-sha256", "-verify", str(public), "-signature",
                         str(signed.signature_path), str(artifact)],
                        capture_output=True, text=True)
    assert ok.stdout.strip() == "Verified OK", ok
    with app.client(app.signer_token) as c:
        online = c.verify_raw_file(artifact, signed.signature_path, "inproc/ec")
    assert online.valid, online.reason
    assert "version 1" in online.reason
    artifact.write_bytes(b"tampered")
    with app.client(app.signer_token) as c:
        assert not c.verify_raw_file(artifact, signed.signature_path, "inproc/ec").valid
    bad = subprocess.run(["openssl", "dgst", "-sha256", "-verify", str(public), "-signature",
                          str(signed.signature_path), str(artifact)],
                         capture_output=True, text=True)
    assert "Verified OK" not in bad.stdout


def test_sign_file_cms_and_verify_file(app: App, tmp_path: Path) -> None:
    artifact = tmp_path / "lib.so"
    artifact.write_bytes(b"\x7fELF" + bytes(range(256)) * 40)
    stages: list[str] = []

    def progress(stage: str, path: Path) -> AbstractContextManager[Progress | None]:
        stages.append(stage)
        return nullcontext(None)

    with app.client(app.signer_token) as c:
        signed = c.sign_file(artifact, "inproc/ec", "cms", progress=progress)
        assert signed.signature_path == tmp_path / "lib.so.p7s"
        assert signed.timestamp_path is None  # cms embeds its timestamp
        assert stages == ["hashing"]
        report = c.verify_file(artifact)  # signgate's root, fetched from the server
        assert report.valid, report.reason
        assert report.key == "inproc/ec"
        assert report.timestamped_at is not None
    root = _root(app, tmp_path)
    ok = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in",
                         str(signed.signature_path), "-content", str(artifact), "-CAfile",
                         str(root), "-purpose", "any", "-out", "/dev/null"],
                        capture_output=True, text=True)
    assert "CMS Verification successful" in ok.stderr, ok
    artifact.write_bytes(artifact.read_bytes() + b"!")
    with app.client(app.signer_token) as c:
        tampered = c.verify_file(artifact, ca_files=[root])
    assert not tampered.valid
    assert "\n" not in tampered.reason


def test_sign_file_authenticode_rewrites_the_pe(app: App, tmp_path: Path) -> None:
    exe = hello_exe(tmp_path / "hello.exe")
    signed_exe = tmp_path / "signed.exe"
    with app.client(app.signer_token) as c:
        signed = c.sign_file(exe, "inproc/ec", "authenticode", output=signed_exe)
        assert signed.signature_path == signed_exe
        assert c.verify_file(signed_exe).valid
    root = _root(app, tmp_path)
    printed = subprocess.run(["osslsigncode", "verify", "-in", str(signed_exe), "-CAfile",
                              str(root), "-TSA-CAfile", str(root), "-ignore-crl"],
                             capture_output=True, text=True, timeout=60)
    out = printed.stdout + printed.stderr
    assert "Signature verification: ok" in out, out
    assert "Timestamp Server Signature verification: ok" in out, out
    assert "Succeeded" in out, out


def test_sign_file_refusal_is_the_servers_error(app: App, tmp_path: Path) -> None:
    artifact = tmp_path / "app.bin"
    artifact.write_bytes(b"x" * 100)
    with app.client(app.outsider_token) as c, pytest.raises(errors.Denied) as refused:
        c.sign_file(artifact, "inproc/ec", "cms")
    assert "no signer grant" in str(refused.value)
    assert not (tmp_path / "app.bin.p7s").exists()
    with app.client(app.signer_token) as c, pytest.raises(errors.NotFound):
        c.sign_file(artifact, "inproc/missing", "raw")


def test_cli_sign_in_process(app: App, tmp_path: Path) -> None:
    artifact = tmp_path / "tool.zip"
    artifact.write_bytes(b"PK" * 500)
    code, out, err = app.cli("sign", str(artifact), "--key", "inproc/ec", "--format", "cms",
                             "--json", token=app.signer_token)
    assert code == 0, err
    receipt = json.loads(out)
    assert receipt["signature_file"] == str(tmp_path / "tool.zip.p7s")
    assert receipt["format"] == "cms"
    assert receipt["key"] == "inproc/ec"
    code, out, err = app.cli("verify", str(artifact), token=app.signer_token)
    assert code == 0, err
    assert out.startswith("tool.zip: valid")
    code, out, err = app.cli("sign", str(artifact), "--key", "inproc/ec", "--no-progress",
                             token=app.signer_token)
    assert code == 0, err
    assert f"-> {tmp_path / 'tool.zip.sig'} (raw, signature " in out
    raw = ("verify", str(artifact), "--key", "inproc/ec", "--signature",
           str(tmp_path / "tool.zip.sig"), "--json")
    code, out, err = app.cli(*raw, token=app.signer_token)
    assert code == 0, err
    assert json.loads(out)["valid"] is True
    artifact.write_bytes(artifact.read_bytes() + b"!")
    code, out, err = app.cli(*raw, token=app.signer_token)
    assert code == 8
    assert json.loads(out)["valid"] is False
    code, out, err = app.cli("sign", str(artifact), "--key", "inproc/ec",
                             token=app.outsider_token)
    assert code == 4  # Denied
    assert err.count("\n") == 1
    assert "no signer grant" in err
