"""The error-code catalogue: every code is bound to one class of the tree, survives the
trip server -> problem+json -> client as the same class with the same code and sentence,
and is listed in the README's table of error codes.

The server side is the real exception handler of ``api/problems.py`` in a FastAPI app;
the client is the real :class:`SigngateClient` over an in-process ASGI transport.

``python -m tests.unit.test_error_codes`` prints the README table.
"""

from __future__ import annotations

import ast
import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from signgate import errors
from signgate.api import problems
from signgate.cli.output import exit_code_for
from signgate.client.client import SigngateClient
from signgate.crypto.algorithms import DigestAlgorithm
from signgate.errors import CATALOGUE, ErrorCode
from signgate.formats import jar
from tests.unit.test_jar import key_info, make_jar

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "signgate"
README = ROOT / "README.md"
BEGIN, END = "<!-- error-codes: begin -->", "<!-- error-codes: end -->"

# Codes answered by a handler of api/problems.py for what the framework refuses itself,
# not from an exception's class: their HTTP status is the handler's.
HANDLER_STATUS = {
    ErrorCode.INVALID_REQUEST: "422",
    ErrorCode.METHOD_NOT_ALLOWED: "405",
    ErrorCode.HTTP_ERROR: "4xx",
    ErrorCode.VAULT_SEALED: "503 (`/healthz`)",
    ErrorCode.IDENTITY_DISABLED: "401 as `authentication_failed`",
}


class ASGIClientTransport(httpx.BaseTransport):
    """A synchronous httpx transport that runs an ASGI app in process."""

    def __init__(self, app: FastAPI) -> None:
        self._inner = httpx.ASGITransport(app=app, raise_app_exceptions=False)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def run() -> httpx.Response:
            sent = httpx.Request(request.method, request.url, headers=request.headers,
                                 content=request.read())
            answer = await self._inner.handle_async_request(sent)
            return httpx.Response(answer.status_code, headers=answer.headers,
                                  content=await answer.aread())

        return asyncio.run(run())


def server_error(code: ErrorCode, message: str) -> errors.SigngateError:
    """The error a server raises for ``code``, made with its class's own constructor."""
    cls = CATALOGUE[code].cls
    if cls is errors.AuthenticationThrottled:
        return errors.AuthenticationThrottled(7)
    if cls is errors.ScannerUnavailable:
        return errors.ScannerUnavailable("clamav", message)
    if cls is errors.AuthenticationFailed and code in (ErrorCode.AUTHENTICATION_FAILED,
                                                       ErrorCode.IDENTITY_DISABLED):
        return errors.AuthenticationFailed(identity="ci-build")
    return cls(message, code=code)


def app_raising(error: errors.SigngateError) -> FastAPI:
    app = FastAPI()
    problems.install(app)

    @app.get("/raise")
    def _raise() -> None:
        raise error

    return app


def client_error(error: errors.SigngateError) -> errors.SigngateError:
    """What SigngateClient raises when the server raised ``error``."""
    with SigngateClient("http://signgate.test", transport=ASGIClientTransport(
            app_raising(error))) as client, pytest.raises(errors.SigngateError) as info:
        client.request("GET", "/raise")
    return info.value


def test_the_catalogue_binds_every_code_and_each_family_to_its_own_code() -> None:
    assert set(CATALOGUE) == set(ErrorCode)
    for code, entry in CATALOGUE.items():
        assert entry.meaning, code
    for cls in {entry.cls for entry in CATALOGUE.values()}:
        assert CATALOGUE[cls.code].cls is cls, cls


@pytest.mark.parametrize("code", list(ErrorCode), ids=str)
def test_every_code_round_trips_to_the_same_class(code: ErrorCode) -> None:
    raised = server_error(code, f"the sentence of {code}")
    got = client_error(raised)
    assert type(got) is CATALOGUE[code].cls
    assert str(got) == str(raised)
    if code is ErrorCode.IDENTITY_DISABLED:
        # One answer whatever the cause (README, HTTP API): this code is the audit's only.
        assert got.code is ErrorCode.AUTHENTICATION_FAILED
    else:
        assert got.code is code


def test_a_422_verification_failed_comes_back_as_verification_failed() -> None:
    got = client_error(errors.VerificationFailed("the audit chain is broken at entry 7"))
    assert type(got) is errors.VerificationFailed
    assert got.code is ErrorCode.VERIFICATION_FAILED
    assert str(got) == "the audit chain is broken at entry 7"
    assert exit_code_for(got) == 8


def test_a_keystore_500_comes_back_as_keystore_error() -> None:
    got = client_error(errors.KeyStoreError("the master key does not open soft:1",
                                            code=ErrorCode.KEYSTORE_UNSEAL_FAILED))
    assert type(got) is errors.KeyStoreError
    assert got.code is ErrorCode.KEYSTORE_UNSEAL_FAILED
    assert str(got) == "the master key does not open soft:1"


def problem_answer(status: int, body: object) -> errors.SigngateError:
    def answer(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body)

    with SigngateClient("http://signgate.test", transport=httpx.MockTransport(answer)) as c, \
            pytest.raises(errors.SigngateError) as info:
        c.request("GET", "/x")
    return info.value


def test_an_unknown_code_falls_back_to_the_family_of_its_status() -> None:
    got = problem_answer(422, {"code": "approval_pending", "detail": "two approvals missing"})
    assert type(got) is errors.InvalidInput
    assert got.code is ErrorCode.INVALID_INPUT
    assert got.details == {"server_code": "approval_pending"}
    assert str(got) == "two approvals missing"
    assert type(problem_answer(500, {"code": "hsm_gone", "detail": "x"})) is errors.SigngateError


def test_a_code_of_the_root_class_takes_its_family_from_the_status() -> None:
    got = problem_answer(400, {"code": "http_error", "detail": "malformed multipart body"})
    assert type(got) is errors.InvalidInput
    assert got.code is ErrorCode.HTTP_ERROR


def test_a_corrupt_jar_is_bad_input_to_sign_and_a_failed_verification_to_verify(
        tmp_path: Path) -> None:
    """One code, one class: the signer's ``bad_jar`` (exit 7) and the verifier's
    ``malformed_jar`` (exit 8) are two codes, not one code in two families."""
    manifest = b"Manifest-Version: 1.0\r\n\r\n" + b"".join(
        b"Name: e%d\r\nSHA-256-Digest: %s\r\n\r\n" % (i, bytes(range(i, i + 32)).hex().encode())
        for i in range(64))
    path = make_jar(tmp_path / "bad.jar", {"a.txt": b"a"}, manifest)
    data = bytearray(path.read_bytes())
    data[80] ^= 0xFF  # inside the manifest's deflated data: reading it fails
    path.write_bytes(bytes(data))
    with pytest.raises(errors.InvalidInput, match="corrupt JAR") as signing:
        jar.CLIENT.prepare(path, DigestAlgorithm.SHA256, None, key_info)
    assert signing.value.code is ErrorCode.BAD_JAR
    with pytest.raises(errors.VerificationFailed, match="corrupt JAR") as verifying:
        jar.VERIFIER.verify(path, None, ())
    assert verifying.value.code is ErrorCode.MALFORMED_JAR
    assert exit_code_for(verifying.value) == 8


# -- no free strings --------------------------------------------------------------------


def _sources() -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(SRC.rglob("*.py")):
        yield path, ast.parse(path.read_text("utf-8"))


def test_codes_set_in_the_source_belong_to_the_class_raised() -> None:
    """``X("...", code=ErrorCode.Y)`` only where the catalogue binds Y to X."""
    names = {entry.cls.__name__ for entry in CATALOGUE.values()}
    wrong = []
    for path, tree in _sources():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            for kw in node.keywords:
                if kw.arg != "code":
                    continue
                where = f"{path.relative_to(SRC)}:{node.lineno}"
                if isinstance(kw.value, ast.Constant):
                    wrong.append(f"{where}: a string code")
                func = ast.unparse(node.func).rpartition(".")[2]
                value = ast.unparse(kw.value)
                if func in names and value.startswith("ErrorCode."):
                    bound = CATALOGUE[ErrorCode[value.partition(".")[2]]].cls.__name__
                    if bound != func:
                        wrong.append(f"{where}: {value} is a {bound}, raised as {func}")
    assert not wrong


def _has_string(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return any(_has_string(e) for e in node.elts)
    return False


def test_no_control_flow_compares_a_code_with_a_string() -> None:
    """``exc.code == "..."`` breaks silently when a code is renamed; the enum does not."""
    found = []
    for path, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare):
                sides = [node.left, *node.comparators]
                text = [ast.unparse(s) for s in sides]
                if any(re.search(r"(\.code|\[.code.\])$", t) for t in text) and any(
                        _has_string(s) for s in sides):
                    found.append(f"{path.relative_to(SRC)}:{node.lineno}: {ast.unparse(node)}")
    assert not found


# -- the README's table -----------------------------------------------------------------


def _status(code: ErrorCode) -> str:
    if code in HANDLER_STATUS:
        return HANDLER_STATUS[code]
    return str(problems.status_for(errors.rebuild(CATALOGUE[code].cls, "", code)))


def _exit(code: ErrorCode) -> str:
    if code is ErrorCode.HTTP_ERROR:  # the client takes its family from the status
        return "by status"
    return str(exit_code_for(errors.rebuild(CATALOGUE[code].cls, "", code)))


def render_table() -> str:
    rows = ["| code | HTTP | exit | class | meaning |", "|---|---|---|---|---|"]
    for code in sorted(ErrorCode, key=str):
        entry = CATALOGUE[code]
        rows.append(f"| `{code}` | {_status(code)} | {_exit(code)} | {entry.cls.__name__} "
                    f"| {entry.meaning} |")
    return "\n".join(rows)


def _readme_table() -> str:
    text = README.read_text("utf-8")
    assert BEGIN in text, "README lost its error-code table markers"
    assert END in text, "README lost its error-code table markers"
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip()


def test_the_readme_lists_exactly_the_catalogue() -> None:
    listed = re.findall(r"^\| `([a-z_]+)` \|", _readme_table(), re.M)
    assert sorted(listed) == sorted(str(c) for c in ErrorCode)


def test_the_readme_table_is_the_generated_one() -> None:
    assert _readme_table() == render_table(), (
        "regenerate it with: python -m tests.unit.test_error_codes")


if __name__ == "__main__":
    print(render_table())
