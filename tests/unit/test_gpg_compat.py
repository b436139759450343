"""signgate-gpg without a server: gpg's command line as git, rpm and apt tools write it,
the key names -u takes, and the cleartext canonicalisation of RFC 4880 §7 (what gpg
verifies is proven end to end by tests/e2e/test_gpg_compat.py)."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from signgate.cli.gpg_compat import run
from signgate.cli.gpg_options import UsageError, parse, wants_verify
from signgate.client.gpg_sign import key_id_of
from signgate.crypto.algorithms import DigestAlgorithm, KeyAlgorithm, RsaPadding
from signgate.errors import InvalidInput
from signgate.formats import openpgp as o
from signgate.formats.base import FormatRequest, SignerKey
from signgate.formats.openpgp.cleartext import (
    SIG_TEXT,
    canonical_text,
    cleartext_message,
    dash_escape,
)
from signgate.formats.registry import check_params

# --- the command line --------------------------------------------------------------------

def test_what_git_rpm_and_apt_tools_pass_is_understood() -> None:
    git = parse(["--status-fd=2", "-bsau", "ABCDEF0123456789"])
    assert git.flags == {"detach-sign", "sign", "armor"}
    assert git.values == {"status-fd": "2", "local-user": "ABCDEF0123456789"}
    assert git.files == []
    rpm = parse(["--no-verbose", "--no-armor", "--no-secmem-warning", "--digest-algo=sha512",
                 "-u", "acme/release", "-sbo", "-", "--", "-"])
    assert rpm.flags >= {"no-armor", "sign", "detach-sign"}
    assert rpm.values == {"digest-algo": "sha512", "local-user": "acme/release", "output": "-"}
    assert rpm.files == ["-"]
    apt = parse(["--batch", "--yes", "--pinentry-mode", "loopback", "--passphrase-file", "p",
                 "--homedir", "/h", "--clearsign", "-o", "InRelease", "Release"])
    assert "clearsign" in apt.flags
    assert apt.files == ["Release"]
    assert apt.value("output") == "InRelease"
    debsign = parse(["--local-user", "k/n", "--clearsign", "--list-options",
                     "no-show-policy-urls", "--armor", "--textmode", "--output", "o", "i"])
    assert debsign.files == ["i"]
    assert debsign.value("local-user") == "k/n"
    assert parse(["-uKEY", "-b"]).value("local-user") == "KEY"  # value glued to the letter
    # After --, even what looks like an option is a file.
    assert parse(["-b", "--", "--weird-name"]).files == ["--weird-name"]


def test_unknown_options_are_all_named_in_one_refusal() -> None:
    with pytest.raises(UsageError, match=r"unknown options --encrypt, -x, -e \("):
        parse(["--encrypt", "-bxe", "file"])
    with pytest.raises(UsageError, match=r"unknown option --sig-notation \("):
        parse(["-b", "--sig-notation", "a@b=c"])
    with pytest.raises(UsageError, match="needs a value"):
        parse(["-b", "-u"])
    with pytest.raises(UsageError, match="takes no value"):
        parse(["--armor=yes"])


def test_verification_goes_to_gpg_but_not_a_file_named_so() -> None:
    assert wants_verify(["--keyid-format=long", "--status-fd=1", "--verify", "s", "-"])
    assert wants_verify(["--verify-files", "a.sig"])
    assert not wants_verify(["-b", "--", "--verify"])


def test_refused_command_lines_exit_2_with_one_line(capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path) -> None:
    out = tmp_path / "out"
    for argv, said in ((["--encrypt", "-o", str(out)], "unknown option --encrypt"),
                       (["-s", "-u", "a/b", "f"], "inline signed message"),
                       (["-u", "a/b", "f"], "no command"),
                       (["-b", "--clearsign", "-u", "a/b"], "two commands"),
                       (["-bt", "-u", "a/b"], "--textmode detached"),
                       (["-b", "-u", "a/b", "f", "g"], "one file at a time"),
                       (["-b", "-u", "a/b", "--status-fd", "x"], "file descriptor number"),
                       (["-ab", "-u", "a/b", "--json"], "give -o FILE")):
        assert run(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("signgate-gpg: "), err
        assert err.count("\n") == 1, err
        assert said in err, (argv, err)
    assert not out.exists()
    assert run(["--version"]) == 0
    assert "signgate-gpg" in capsys.readouterr().out
    assert run(["--help"]) == 0
    assert "--clearsign" in capsys.readouterr().out


def test_key_names_that_are_fingerprints_or_key_ids() -> None:
    fpr = "9729CF74224A5BE51E8B623B8B5B6DD47EB69514"
    assert key_id_of(fpr) == fpr
    assert key_id_of(fpr.lower()) == fpr
    assert key_id_of("0x" + fpr[-16:].lower()) == fpr[-16:]
    assert key_id_of(fpr[-16:] + "!") == fpr[-16:]
    assert key_id_of("9729 CF74 224A 5BE5 1E8B  623B 8B5B 6DD4 7EB6 9514") == fpr
    for not_one in ("acme/release", "Dev <dev@acme.example>", fpr[:-1], "0x" + fpr[:12]):
        assert key_id_of(not_one) is None


# --- cleartext (RFC 4880 §7) -------------------------------------------------------------

def test_canonical_text_strips_trailing_white_space_and_uses_crlf() -> None:
    assert canonical_text(b"a  \nb\t\r\nc") == b"a\r\nb\r\nc"
    # The line ending before the signature is the framing's: with or without a final LF
    # the same text is signed.
    assert canonical_text(b"a\nb\n") == canonical_text(b"a\nb") == b"a\r\nb"
    assert canonical_text(b"a\n\n") == b"a\r\n"
    assert canonical_text(b"") == b""
    # Dash-escaping is shown, never signed.
    assert canonical_text(b"-x\n") == b"-x"


def test_dash_escaping_and_the_message() -> None:
    assert dash_escape(b"-----BEGIN PGP SIGNATURE-----\n- a\nplain") == \
        b"- -----BEGIN PGP SIGNATURE-----\n- - a\nplain\n"
    message = cleartext_message(b"x\n", DigestAlgorithm.SHA512, b"-----BEGIN PGP SIGNATURE")
    assert message == (b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nx\n"
                       b"-----BEGIN PGP SIGNATURE")


# --- the server's side of params.type ------------------------------------------------------

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def signer() -> SignerKey:
    pem = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return SignerKey("p/k", 1, KeyAlgorithm.ED25519, RsaPadding.PSS, pem,
                     datetime(2026, 1, 1, tzinfo=UTC))


def _request(signer: SignerKey, sig_type: int, params: dict[str, str]) -> FormatRequest:
    pgp = o.key_of(signer.public_key_pem, signer.created_at)
    hashed = o.hashed_part(sig_type, pgp.algorithm, DigestAlgorithm.SHA256,
                           o.data_subpackets(NOW, pgp))
    return FormatRequest(DigestAlgorithm.SHA256, b"\x01" * 32, "Release", NOW,
                         {"hashed": base64.b64encode(hashed).decode(), **params})


def test_a_text_signature_needs_params_type_text_and_the_reverse(signer: SignerKey) -> None:
    check_params("openpgp", {"hashed": "", "type": "text"})
    assert o.BUILDER.prepare(signer, _request(signer, SIG_TEXT, {"type": "text"})).prehashed
    o.BUILDER.prepare(signer, _request(signer, o.SIG_BINARY, {"type": "binary"}))
    with pytest.raises(InvalidInput, match="only binary document signatures"):
        o.BUILDER.prepare(signer, _request(signer, SIG_TEXT, {}))
    with pytest.raises(InvalidInput, match="canonical text signature"):
        o.BUILDER.prepare(signer, _request(signer, o.SIG_BINARY, {"type": "text"}))
    with pytest.raises(InvalidInput, match=r"params\.type 'inline'"):
        o.BUILDER.prepare(signer, _request(signer, SIG_TEXT, {"type": "inline"}))


def test_the_server_recomputes_a_text_digest_from_the_canonical_text(
        signer: SignerKey, tmp_path: Path) -> None:
    text = tmp_path / "Release"
    text.write_bytes(b"Origin: acme  \r\n-x\n")
    request = _request(signer, SIG_TEXT, {"type": "text"})
    hashed = base64.b64decode(request.params["hashed"])
    got = o.CLIENT.recompute(text, DigestAlgorithm.SHA256, request.params, lambda: None)  # type: ignore[arg-type, return-value]
    assert got == hashlib.sha256(b"Origin: acme\r\n-x" + o.trailer(hashed)).digest()
    binary = o.CLIENT.recompute(text, DigestAlgorithm.SHA256, replace(
        request, params={"hashed": request.params["hashed"]}).params, lambda: None)  # type: ignore[arg-type, return-value]
    assert binary == hashlib.sha256(text.read_bytes() + o.trailer(hashed)).digest()


def test_verify_goes_to_the_real_gpg_even_when_this_is_installed_as_gpg(
        tmp_path: Path) -> None:
    program = Path(sys.executable).with_name("signgate-gpg")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gpg").symlink_to(program)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "GNUPGHOME": str(tmp_path / "home")}
    env.pop("SIGNGATE_GPG_VERIFIER", None)
    (tmp_path / "home").mkdir(mode=0o700)
    try:
        for argv0 in ("gpg", str(program)):
            done = subprocess.run([argv0, "--batch", "--verify", str(tmp_path / "none.sig")],
                                  capture_output=True, text=True, env=env, timeout=60)
            # The real gpg answered (its own words), not signgate-gpg, and not in a loop.
            assert done.returncode == 2, done
            assert done.stderr.startswith("gpg: "), done.stderr
        # Pointed at itself: refused, not executed again.
        done = subprocess.run(["gpg", "--verify", "x"], capture_output=True, text=True,
                              env={**env, "SIGNGATE_GPG_VERIFIER": str(bin_dir / "gpg")},
                              timeout=60)
        assert done.returncode == 2
        assert done.stderr.startswith("signgate-gpg: verification is done by gpg"), done.stderr
    finally:
        subprocess.run(["gpgconf", "--homedir", str(tmp_path / "home"), "--kill", "all"],
                       capture_output=True, check=False, timeout=30)
