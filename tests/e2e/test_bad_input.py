"""Bad input against the real server: every refusal is a 4xx problem+json that says what was
wrong, nothing is half-written, the audit chain stays intact and the server never crashes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import unique
from tests.support.server import SIGNGATE, CliResult, Server

MAX_BODY = 1 << 20
GOOD_DIGEST = hashlib.sha256(b"artifact").hexdigest()


@dataclass(frozen=True)
class World:
    """A project with one key, a signer for it and an identity without grants."""

    project: str
    key: str  # PROJECT/NAME
    signer: str
    signer_token: str

    @property
    def key_path(self) -> str:
        project, name = self.key.split("/")
        return f"/api/v1/projects/{project}/keys/{name}"


@pytest.fixture(scope="module")
def world(server: Server) -> World:
    project = unique("bad")
    server.cli("project", "create", project)
    server.cli("key", "create", f"{project}/release")
    signer = unique("signer")
    token = server.new_identity(signer)
    server.cli("grant", "add", signer, "signer", f"{project}/release")
    return World(project, f"{project}/release", signer, token)


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with server.http() as client:
        yield client


@pytest.fixture(autouse=True)
def server_stays_healthy(server: Server) -> Iterator[None]:
    """No test may leave a traceback in the server log or a dead server behind."""
    seen = len(server.server_log())
    yield
    assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200
    new = server.server_log()[seen:]
    assert "Traceback" not in new, new
    assert "Exception in ASGI application" not in new, new


def check_problem(r: httpx.Response, status: int, *needles: str) -> dict[str, Any]:
    """``r`` is the problem+json refusal ``status`` whose detail contains each needle."""
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].split(";")[0] == "application/problem+json", r.headers
    body = r.json()
    assert isinstance(body, dict), body
    for field in ("type", "title", "status", "detail", "code"):
        assert field in body, (field, body)
    assert body["status"] == status
    assert body["type"] == f"urn:signgate:problem:{body['code']}"
    assert isinstance(body["detail"], str)
    assert len(body["detail"]) > 10, body
    for needle in needles:
        assert needle.lower() in body["detail"].lower(), (needle, body)
    return body


def keys_of(server: Server, project: str) -> list[str]:
    return [k["ref"] for k in server.cli("key", "list", project, "--json").json()]


# -- malformed bodies ---------------------------------------------------------------------


JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(("raw", "status", "needle"), [
    (b'{"name": ', 422, "JSON decode error"),
    (b'{"name": "x",}', 422, "JSON decode error"),
    (b"\xff\xfe", 422, "JSON decode error"),
    (b"\xff\xfe\x00", 400, "error parsing the body"),  # not even text
    (b"nul", 422, "JSON decode error"),
    (b"", 422, "field required"),
])
def test_malformed_json(http: httpx.Client, raw: bytes, status: int, needle: str) -> None:
    r = http.post("/api/v1/projects", content=raw, headers=JSON)
    check_problem(r, status, needle)


@pytest.mark.parametrize(("path", "payload", "needle"), [
    ("/api/v1/projects", ["a"], "valid dictionary"),
    ("/api/v1/projects", "name", "valid dictionary"),
    ("/api/v1/projects", {"name": 5}, "name: Input should be a valid string"),
    ("/api/v1/projects", {"name": None}, "name: Input should be a valid string"),
    ("/api/v1/identities", {"name": ["x"]}, "name: Input should be a valid string"),
    ("KEYS", {"name": "k", "max_signatures": "ten"}, "max_signatures: Input should be a valid "
                                                    "integer"),
    ("KEYS", {"name": "k", "rotate_every_days": 1.5}, "rotate_every_days"),
    ("KEYS", {"name": "k", "rotate_every_days": 0}, "rotate_every_days"),
    ("KEYS", {"name": "k", "max_signatures": -1}, "max_signatures"),
    ("SIGN", {"digest": GOOD_DIGEST, "artifact_name": "a", "metadata": {"a": 1}}, "metadata.a"),
    ("SIGN", {"digest": GOOD_DIGEST, "artifact_name": "a", "metadata": ["a"]}, "metadata"),
    ("SIGN", {"digest": 12, "artifact_name": "a"}, "digest"),
    ("REVOKE", {"compromised_at": 1.5e300}, "compromised_at"),
])
def test_json_of_the_wrong_type(server: Server, world: World, http: httpx.Client, path: str,
                                payload: Any, needle: str) -> None:
    path = {"KEYS": f"/api/v1/projects/{world.project}/keys", "SIGN": world.key_path + "/sign",
            "REVOKE": world.key_path + "/revoke"}.get(path, path)
    check_problem(http.post(path, json=payload), 422, needle)
    assert keys_of(server, world.project) == [world.key]


@pytest.mark.parametrize(("path", "payload", "needles"), [
    ("/api/v1/projects", {}, ["name: Field required"]),
    ("/api/v1/identities", {"kind": "user"}, ["name: Field required"]),
    ("/api/v1/grants", {"identity": "x"}, ["role: Field required", "scope: Field required"]),
    ("KEYS", {"algorithm": "ed25519"}, ["name: Field required"]),
    ("SIGN", {}, ["digest: Field required", "artifact_name: Field required"]),
    ("VERIFY", {"digest": GOOD_DIGEST}, ["signature: Field required"]),
    ("REVOKE", {"reason": "x"}, ["compromised_at: Field required"]),
])
def test_missing_fields(world: World, http: httpx.Client, path: str, payload: Any,
                        needles: list[str]) -> None:
    path = {"KEYS": f"/api/v1/projects/{world.project}/keys", "SIGN": world.key_path + "/sign",
            "VERIFY": world.key_path + "/verify", "REVOKE": world.key_path + "/revoke",
            }.get(path, path)
    check_problem(http.post(path, json=payload), 422, *needles)


def test_extra_fields_are_forbidden(server: Server, world: World, http: httpx.Client) -> None:
    name = unique("extra")
    cases = [
        ("/api/v1/projects", {"name": name, "owner": "me"}, "owner"),
        ("/api/v1/identities", {"name": name, "admin": True}, "admin"),
        ("/api/v1/grants", {"identity": world.signer, "role": "admin", "scope": "*",
                            "force": True}, "force"),
        (f"/api/v1/projects/{world.project}/keys", {"name": name, "private_key": "x"},
         "private_key"),
        (world.key_path + "/sign", {"digest": GOOD_DIGEST, "artifact_name": "a",
                                    "key_version": 1}, "key_version"),
        (world.key_path + "/revoke", {"compromised_at": "2020-01-01T00:00:00Z", "now": 1},
         "now"),
    ]
    for path, payload, field in cases:
        check_problem(http.post(path, json=payload), 422,
                      f"{field}: Extra inputs are not permitted")
    # none of them happened
    projects = [p["name"] for p in server.cli("project", "list", "--json").json()]
    assert name not in projects
    assert name not in [i["name"] for i in server.cli("identity", "list", "--json").json()]
    assert keys_of(server, world.project) == [world.key]
    assert server.cli("key", "show", world.key, "--json").json()["state"] == "active"
    grants = server.cli("grant", "list", "--identity", world.signer, "--json").json()
    assert [(g["role"], g["scope"]) for g in grants] == [("signer", world.key)]


# -- digests and algorithms ---------------------------------------------------------------


@pytest.mark.parametrize(("alg", "digest", "code", "needles"), [
    ("sha256", "ab" * 31, "bad_digest_length",
     ["sha256 digest is 32 bytes (64 hex characters), got 31 bytes"]),
    ("sha256", "ab" * 48, "bad_digest_length", ["32 bytes", "got 48 bytes"]),
    ("sha512", GOOD_DIGEST, "bad_digest_length", ["sha512 digest is 64 bytes", "got 32"]),
    ("sha256", "", "bad_digest_length", ["got 0 bytes"]),
    ("sha256", "zz" * 32, "bad_digest", ["hexadecimal"]),
    ("sha256", "0x" + "ab" * 31, "bad_digest", ["hexadecimal"]),
    ("sha256", GOOD_DIGEST[:-1], "bad_digest", ["hexadecimal"]),
    ("md5", "ab" * 16, "unknown_digest_algorithm", ["unknown digest algorithm 'md5'"]),
    ("sha1", "ab" * 20, "unknown_digest_algorithm", ["sha256, sha384 or sha512"]),
])
def test_bad_digests(server: Server, world: World, alg: str, digest: str, code: str,
                     needles: list[str]) -> None:
    with server.http(world.signer_token) as signer:
        r = signer.post(world.key_path + "/sign", json={
            "digest_algorithm": alg, "digest": digest, "artifact_name": "a.bin"})
        assert check_problem(r, 400, *needles)["code"] == code
        r = signer.post(world.key_path + "/verify", json={
            "digest_algorithm": alg, "digest": digest, "signature": "AAAA"})
        assert check_problem(r, 400, *needles)["code"] == code
    versions = server.cli("key", "show", world.key, "--json").json()["versions"]
    assert [v["signatures"] for v in versions] == [0]


def test_overlong_digest_is_refused_by_the_schema(world: World, http: httpx.Client) -> None:
    r = http.post(world.key_path + "/sign", json={"digest": "ab" * 65, "artifact_name": "a"})
    check_problem(r, 422, "digest", "at most 128 characters")


@pytest.mark.parametrize(("field", "value", "code", "needle"), [
    ("algorithm", "rsa-1024", "unknown_algorithm", "unknown key algorithm 'rsa-1024'"),
    ("algorithm", "ECDSA-P256", "unknown_algorithm", "expected one of ecdsa-p256"),
    ("rsa_padding", "oaep", "unknown_padding", "unknown RSA padding 'oaep'"),
])
def test_unknown_key_algorithm_or_padding(server: Server, world: World, http: httpx.Client,
                                          field: str, value: str, code: str,
                                          needle: str) -> None:
    name = unique("k")
    r = http.post(f"/api/v1/projects/{world.project}/keys",
                  json={"name": name, "algorithm": "rsa-3072", field: value})
    assert check_problem(r, 400, needle)["code"] == code
    assert keys_of(server, world.project) == [world.key]


def test_bad_signature_encoding(world: World, http: httpx.Client) -> None:
    r = http.post(world.key_path + "/verify", json={"digest": GOOD_DIGEST, "signature": "!!"})
    assert check_problem(r, 400, "signature must be base64")["code"] == "bad_signature_encoding"
    r = http.post(world.key_path + "/verify", json={"digest": GOOD_DIGEST, "signature": ""})
    check_problem(r, 400, "signature")


# -- names --------------------------------------------------------------------------------


BAD_NAMES = [
    pytest.param("Upper", 400, id="upper"),
    pytest.param("-lead", 400, id="leading-dash"),
    pytest.param("a" * 64, 422, id="64-chars"),
    pytest.param("a/b", 400, id="slash"),
    pytest.param("ünïcode", 400, id="unicode"),
    pytest.param("a b", 400, id="space"),
    pytest.param("", 400, id="empty"),
    pytest.param("trailing\n", 400, id="newline"),
    pytest.param("under_score", 400, id="underscore"),
]


def _name_problem(r: httpx.Response, status: int, kind: str, name: str) -> None:
    if status == 422:
        check_problem(r, 422, "name", "at most 63 characters")
    else:
        body = check_problem(r, 400, f"invalid {kind} name {name!r}", "lower-case letters")
        assert body["code"] == "bad_name"


@pytest.mark.parametrize(("name", "status"), BAD_NAMES)
def test_bad_project_names(server: Server, http: httpx.Client, name: str, status: int) -> None:
    _name_problem(http.post("/api/v1/projects", json={"name": name}), status, "project", name)
    assert name not in [p["name"] for p in server.cli("project", "list", "--json").json()]


@pytest.mark.parametrize(("name", "status"), BAD_NAMES)
def test_bad_key_names(server: Server, world: World, http: httpx.Client, name: str,
                       status: int) -> None:
    r = http.post(f"/api/v1/projects/{world.project}/keys", json={"name": name})
    _name_problem(r, status, "key", name)
    assert keys_of(server, world.project) == [world.key]


@pytest.mark.parametrize(("name", "status"), BAD_NAMES)
def test_bad_identity_names(server: Server, http: httpx.Client, name: str, status: int) -> None:
    _name_problem(http.post("/api/v1/identities", json={"name": name}), status, "identity",
                  name)
    assert name not in [i["name"] for i in server.cli("identity", "list", "--json").json()]


def test_bad_names_in_paths(http: httpx.Client, world: World) -> None:
    check_problem(http.get(f"/api/v1/projects/{world.project}/keys/Release"), 400,
                  "invalid key name 'Release'")
    check_problem(http.get("/api/v1/projects/Bad/keys/release"), 400,
                  "invalid project name 'Bad'")
    check_problem(http.post(f"/api/v1/projects/{world.project}/keys/-x/rotate"), 400,
                  "invalid key name '-x'")
    check_problem(http.get("/api/v1/keys", params={"project": "Bad"}), 400,
                  "invalid project name 'Bad'")
    check_problem(http.post("/api/v1/projects/Bad/keys", json={"name": "k"}), 400,
                  "invalid project name 'Bad'")


def test_nul_characters_are_refused_not_crashes(world: World, http: httpx.Client,
                                                server: Server) -> None:
    """PostgreSQL cannot store NUL: such input must never be a 5xx database error."""
    lookups = [  # SQLite finds nothing; PostgreSQL cannot even compare: both fine, no 5xx
        http.get("/api/v1/projects/a%00b"),
        http.get("/api/v1/audit", params={"identity": "a\x00"}),
        http.get("/api/v1/grants", params={"identity": "a\x00"}),
        http.delete("/api/v1/grants", params={"identity": "a\x00", "role": "signer",
                                              "scope": world.project}),
        http.post("/api/v1/grants", json={"identity": "a\x00", "role": "signer",
                                          "scope": world.project}),
    ]
    for r in lookups:
        assert r.status_code < 500, (r.request.url, r.status_code, r.text)
        if r.status_code >= 400:
            check_problem(r, r.status_code)
    check_problem(http.post("/api/v1/identities", json={"name": "a\x00"}), 400,
                  "invalid identity name")
    refused = [e for e in server.cli("audit", "log", "--action", "identity.create",
                                     "--json").json() if e["outcome"] == "refused"]
    assert refused[-1]["subject"] == "a\\x00"  # recorded, NUL escaped
    assert refused[-1]["details"]["code"] == "bad_name"
    check_problem(http.post("/api/v1/projects", json={"name": "a\x00"}), 400,
                  "invalid project name")
    with server.http(world.signer_token) as signer:
        r = signer.post(world.key_path + "/sign", json={"digest": GOOD_DIGEST,
                                                        "artifact_name": "a\x00b"})
        check_problem(r, 400, "artifact name must not contain control characters")
    versions = server.cli("key", "show", world.key, "--json").json()["versions"]
    assert [v["signatures"] for v in versions] == [0]


# -- size limit ---------------------------------------------------------------------------


def test_oversized_body_with_content_length(server: Server, http: httpx.Client) -> None:
    body = b'{"name": "' + b"a" * MAX_BODY + b'"}'
    r = http.post("/api/v1/projects", content=body, headers=JSON)
    assert r.request.headers["content-length"] == str(len(body))
    assert check_problem(r, 413, f"limit of {MAX_BODY} bytes")["code"] == "payload_too_large"


def test_oversized_streamed_body(server: Server, http: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(20):
            yield b"a" * 65536
        yield b'"}'

    r = http.post("/api/v1/projects", content=chunks(), headers=JSON)
    assert r.request.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in r.request.headers
    assert check_problem(r, 413, f"limit of {MAX_BODY} bytes")["code"] == "payload_too_large"


def test_body_just_under_the_limit_is_read(http: httpx.Client) -> None:
    """The limit refuses only what is over it: a big but allowed body gets the usual 422."""
    body = b'{"name": "' + b"a" * (MAX_BODY - 100) + b'"}'
    check_problem(http.post("/api/v1/projects", content=body, headers=JSON), 422,
                  "at most 63 characters")


# -- unknown things and duplicates --------------------------------------------------------


def test_unknown_things_are_404(world: World, http: httpx.Client) -> None:
    ghost = unique("ghost")
    cases = [
        (http.get(f"/api/v1/projects/{ghost}"), f"no project named '{ghost}'"),
        (http.get(f"/api/v1/keys?project={ghost}"), f"no project named '{ghost}'"),
        (http.post(f"/api/v1/projects/{ghost}/keys", json={"name": "k"}),
         f"no project named '{ghost}'"),
        (http.get(f"/api/v1/projects/{world.project}/keys/{ghost}"),
         f"no key {world.project}/{ghost}"),
        (http.get(world.key_path + "/public?version=99"), "has no version 99"),
        (http.post(f"/api/v1/projects/{world.project}/keys/{ghost}/rotate"), "no key"),
        (http.post(f"/api/v1/projects/{world.project}/keys/{ghost}/revoke",
                   json={"compromised_at": "2020-01-01T00:00:00Z"}), "no key"),
        (http.post(f"/api/v1/identities/{ghost}/disable"), f"no identity named '{ghost}'"),
        (http.post(f"/api/v1/identities/{ghost}/rotate-token"), f"no identity named '{ghost}'"),
        (http.get("/api/v1/grants", params={"identity": ghost}), f"no identity named '{ghost}'"),
        (http.post("/api/v1/grants", json={"identity": ghost, "role": "signer",
                                           "scope": world.project}),
         f"no identity named '{ghost}'"),
        (http.post("/api/v1/grants", json={"identity": world.signer, "role": "signer",
                                           "scope": ghost}), f"no project named '{ghost}'"),
        (http.post("/api/v1/grants", json={"identity": world.signer, "role": "signer",
                                           "scope": f"{world.project}/{ghost}"}),
         f"no key {world.project}/{ghost}"),
        (http.delete("/api/v1/grants", params={"identity": world.signer, "role": "admin",
                                               "scope": world.project}),
         f"has no admin grant on {world.project}"),
    ]
    for r, needle in cases:
        assert check_problem(r, 404, needle)["code"] == "not_found"


def test_signing_with_an_unknown_key_tells_only_grant_holders(server: Server) -> None:
    """Without a grant covering the key, a missing key and an existing one are refused in
    the same words; a project-wide signer learns that the key does not exist."""
    project = unique("leak")
    server.cli("project", "create", project)
    server.cli("key", "create", f"{project}/granted")
    server.cli("key", "create", f"{project}/real")
    key_signer = unique("ksigner")
    key_token = server.new_identity(key_signer)
    server.cli("grant", "add", key_signer, "signer", f"{project}/granted")
    project_signer = unique("psigner")
    project_token = server.new_identity(project_signer)
    server.cli("grant", "add", project_signer, "signer", project)
    body = {"digest": GOOD_DIGEST, "artifact_name": "a"}
    with server.http(key_token) as c:
        missing = c.post(f"/api/v1/projects/{project}/keys/ghost/sign", json=body)
        real = c.post(f"/api/v1/projects/{project}/keys/real/sign", json=body)
        shown = c.get(f"/api/v1/projects/{project}/keys/real")
        absent = c.get(f"/api/v1/projects/{project}/keys/ghost")
    check_problem(missing, 403, f"may not sign with {project}/ghost: no signer grant")
    check_problem(real, 403, f"may not sign with {project}/real: no signer grant")
    check_problem(shown, 404, f"no key {project}/real")
    check_problem(absent, 404, f"no key {project}/ghost")
    with server.http(project_token) as c:
        r = c.post(f"/api/v1/projects/{project}/keys/ghost/sign", json=body)
        listed = c.get("/api/v1/keys").json()
    assert check_problem(r, 404, f"no key {project}/ghost")["code"] == "not_found"
    assert sorted(k["ref"] for k in listed) == [f"{project}/granted", f"{project}/real"]


def test_a_missing_key_is_named_to_those_who_may_see_it(server: Server) -> None:
    """Issue 9, item 18: a global or project admin (no signer grant) who names a missing
    key is told it is missing; for an existing key the refusal stays 'no signer grant'.
    Callers who may not see the key get the same refusal either way (existence does not
    leak), and every answer is on the record."""
    project = unique("seen")
    server.cli("project", "create", project)
    server.cli("key", "create", f"{project}/real")
    padmin = unique("padmin")
    padmin_token = server.new_identity(padmin)
    server.cli("grant", "add", padmin, "admin", project)
    outsider_token = server.new_identity(unique("outsider"))
    body = {"digest": GOOD_DIGEST, "artifact_name": "a"}
    base = f"/api/v1/projects/{project}/keys"
    for token in (server.admin_token, padmin_token):  # global admin, project admin
        with server.http(token) as c:
            ghost = c.post(f"{base}/ghost/sign", json=body)
            real = c.post(f"{base}/real/sign", json=body)
            policy = c.get(f"{base}/ghost/sign-policy")
            pgp = c.post(f"{base}/ghost/openpgp")
            upload = c.post(f"{base}/ghost/sign-upload", content=b"x",
                            headers={"Signgate-Sign": json.dumps({"artifact_name": "a"})})
        for r in (ghost, policy, pgp, upload):
            assert check_problem(r, 404, f"no key {project}/ghost")["code"] == "not_found"
        check_problem(real, 403, f"may not sign with {project}/real: no signer grant")
    with server.http(outsider_token) as c:
        ghost = c.post(f"{base}/ghost/sign", json=body)
        real = c.post(f"{base}/real/sign", json=body)
        upload = c.post(f"{base}/ghost/sign-upload", content=b"x",
                        headers={"Signgate-Sign": json.dumps({"artifact_name": "a"})})
    for r in (ghost, real, upload):
        check_problem(r, 403, "no signer grant")
    assert ghost.json()["detail"].replace("ghost", "real") == real.json()["detail"]
    log = server.cli("audit", "log", "--project", project, "--json").json()
    missing = [e for e in log if e["outcome"] == "refused"
               and e["details"].get("code") == "not_found"]
    actors = sorted(e["actor"] for e in missing if e["action"] == "signature.create")
    assert actors.count("admin") >= 2, missing  # signing and upload, both on the record
    assert actors.count(padmin) >= 2, missing


def test_duplicates_are_409(server: Server, world: World, http: httpx.Client) -> None:
    cases = [
        (http.post("/api/v1/projects", json={"name": world.project}),
         f"project '{world.project}' already exists"),
        (http.post(f"/api/v1/projects/{world.project}/keys",
                   json={"name": "release", "algorithm": "ed25519"}),
         f"key {world.key} already exists"),
        (http.post("/api/v1/identities", json={"name": world.signer}),
         f"identity '{world.signer}' already exists"),
        (http.post("/api/v1/grants", json={"identity": world.signer, "role": "signer",
                                           "scope": world.key}),
         f"identity {world.signer} already has signer on {world.key}"),
    ]
    for r, needle in cases:
        assert check_problem(r, 409, needle)["code"] == "conflict"
    # the duplicate key creation did not replace the key or add a version
    key = server.cli("key", "show", world.key, "--json").json()
    assert key["algorithm"] == "ecdsa-p256"
    assert [v["version"] for v in key["versions"]] == [1]
    assert keys_of(server, world.project) == [world.key]


@pytest.mark.parametrize(("role", "scope", "code", "needle"), [
    ("owner", "*", "unknown_role", "unknown role 'owner'"),
    ("Signer", "*", "unknown_role", "expected admin, signer, approver or auditor"),
    ("signer", "Bad", "bad_name", "invalid project name 'Bad'"),
    ("signer", "p/", "bad_name", "invalid key name ''"),
    ("signer", "p/k/x", "bad_name", "invalid key name 'k/x'"),
    ("signer", "**", "bad_name", "invalid project name '**'"),
    ("signer", "", "bad_name", "invalid project name ''"),
])
def test_unknown_role_or_scope(world: World, http: httpx.Client, role: str, scope: str,
                               code: str, needle: str) -> None:
    r = http.post("/api/v1/grants", json={"identity": world.signer, "role": role, "scope": scope})
    assert check_problem(r, 400, needle)["code"] == code
    r = http.delete("/api/v1/grants", params={"identity": world.signer, "role": role,
                                              "scope": scope})
    assert check_problem(r, 400, needle)["code"] == code


def test_unknown_identity_kind(http: httpx.Client) -> None:
    r = http.post("/api/v1/identities", json={"name": unique("kind"), "kind": "robot"})
    assert check_problem(r, 400, "unknown identity kind 'robot'")["code"] == "bad_kind"


# -- lax input: booleans, integers, format parameters (issue 9, item 13) --------------------


@pytest.mark.parametrize(("path", "payload", "needle"), [
    ("SIGN", {"digest": GOOD_DIGEST, "artifact_name": "a", "timestamp": "yes"},
     "timestamp: Input should be a valid boolean"),
    ("SIGN", {"digest": GOOD_DIGEST, "artifact_name": "a", "timestamp": 1},
     "timestamp: Input should be a valid boolean"),
    ("KEYS", {"name": "k", "one_time": "true"}, "one_time: Input should be a valid boolean"),
    ("KEYS", {"name": "k", "require_timestamp": "on"}, "require_timestamp"),
    ("KEYS", {"name": "k", "max_signatures": "10"}, "max_signatures: Input should be a valid "
                                                    "integer"),
])
def test_booleans_and_integers_are_not_guessed(server: Server, world: World,
                                               http: httpx.Client, path: str, payload: Any,
                                               needle: str) -> None:
    path = {"KEYS": f"/api/v1/projects/{world.project}/keys",
            "SIGN": world.key_path + "/sign"}[path]
    check_problem(http.post(path, json=payload), 422, needle)
    assert keys_of(server, world.project) == [world.key]
    signed = server.cli("key", "show", world.key, "--json").json()["versions"][0]
    assert signed["signatures"] == 0


@pytest.mark.parametrize(("fmt", "params", "needle"), [
    ("raw", {"colour": "blue"}, "unknown parameter for format raw: colour (it takes: none)"),
    ("cms", {"b": "1", "a": "2"}, "unknown parameters for format cms: a, b"),
    ("openpgp", {"hashed": "AAAA", "hased": "AAAA"},
     "unknown parameter for format openpgp: hased (it takes: hashed, type)"),
    ("authenticode", {"kind": "elf"},
     "unknown Authenticode file kind 'elf'; expected one of "),
])
def test_unknown_format_params_are_refused_by_name(server: Server, world: World, fmt: str,
                                                   params: dict[str, str],
                                                   needle: str) -> None:
    def refusals() -> int:
        log = server.cli("audit", "log", "--key", world.key, "--json").json()
        return sum(1 for e in log if e["outcome"] == "refused"
                   and e["details"].get("code") == "unknown_params")

    before = refusals()
    body = {"digest": GOOD_DIGEST, "artifact_name": "a", "format": fmt, "params": params}
    with server.http(world.signer_token) as c:
        r = c.post(world.key_path + "/sign", json=body)
        upload = c.post(world.key_path + "/sign-upload", content=b"artifact",
                        headers={"Signgate-Sign": json.dumps({k: v for k, v in body.items()
                                                               if k != "digest"})})
    assert check_problem(r, 400, needle)["code"] == "unknown_params"
    assert check_problem(upload, 400, needle)["code"] == "unknown_params"
    assert refusals() == before + 2  # both refusals are on the record


def test_upload_header_booleans_are_booleans(world: World, server: Server) -> None:
    header = json.dumps({"artifact_name": "a", "timestamp": "yes"})
    with server.http(world.signer_token) as c:
        r = c.post(world.key_path + "/sign-upload", content=b"artifact",
                   headers={"Signgate-Sign": header})
    check_problem(r, 400, "timestamp: Input should be a valid boolean")


def test_cli_compromise_time_before_the_key_existed(server: Server, world: World) -> None:
    check_cli_error(server.cli("key", "revoke", world.key, "--compromised-at", "0001-01-01",
                               check=False), 7, "before", f"{world.key} was created")
    assert server.cli("key", "show", world.key, "--json").json()["state"] == "active"
    refused = [e for e in server.cli("audit", "log", "--key", world.key, "--action",
                                     "key.revoke", "--json").json()]
    assert refused
    assert all(e["outcome"] == "refused" for e in refused)
    assert any("was created" in e["details"]["reason"] for e in refused)


# -- times and the audit query ------------------------------------------------------------


@pytest.mark.parametrize(("when", "status", "needle"), [
    ("yesterday", 422, "compromised_at"),
    ("2026-13-01T00:00:00Z", 422, "compromised_at"),
    ("", 422, "compromised_at"),
    ("9999-12-31T23:59:59-01:00", 400, "out of range"),
    ("0001-01-01T00:00:00+01:00", 400, "out of range"),
    ("9999-01-01T00:00:00Z", 400, "lies in the future"),
    ("0001-01-01T00:00:00Z", 400, "before"),  # before the key existed
    ("2000-01-01T00:00:00Z", 400, "was created"),
])
def test_revoke_with_a_bad_time(server: Server, world: World, http: httpx.Client, when: str,
                                status: int, needle: str) -> None:
    r = http.post(world.key_path + "/revoke", json={"compromised_at": when, "reason": "test"})
    check_problem(r, status, needle)
    assert server.cli("key", "show", world.key, "--json").json()["state"] == "active"


@pytest.mark.parametrize(("params", "status", "needle"), [
    ({"action": "key.explode"}, 400, "unknown action 'key.explode'"),
    ({"action": "SIGNATURE.CREATE"}, 400, "known actions: "),
    ({"limit": "0"}, 422, "limit"),
    ({"limit": "5001"}, 422, "limit"),
    ({"limit": "ten"}, 422, "limit: Input should be a valid integer"),
    ({"limit": "-1"}, 422, "limit"),
    ({"after": "-1"}, 422, "after"),
    ({"after": "x"}, 422, "after"),
    ({"since": "last tuesday"}, 422, "since"),
    ({"until": "2026-02-30"}, 422, "until"),
])
def test_bad_audit_queries(http: httpx.Client, params: dict[str, str], status: int,
                           needle: str) -> None:
    check_problem(http.get("/api/v1/audit", params=params), status, needle)


@pytest.mark.parametrize(("params", "needle"), [
    ({"after": str(10**20)}, "after"),
    ({"since": "9999-12-31T23:59:59-01:00"}, "'9999-12-31T23:59:59-01:00' is out of range"),
    ({"until": "0001-01-01T00:00:00+01:00"}, "'0001-01-01T00:00:00+01:00' is out of range"),
])
def test_out_of_range_audit_queries(http: httpx.Client, params: dict[str, str],
                                    needle: str) -> None:
    r = http.get("/api/v1/audit", params=params)
    assert 400 <= r.status_code < 500, r.text
    check_problem(r, r.status_code, needle)


def test_out_of_range_version(world: World, http: httpx.Client) -> None:
    r = http.get(world.key_path + "/public", params={"version": str(10**20)})
    assert 400 <= r.status_code < 500, r.text
    check_problem(r, r.status_code, "version")


@pytest.mark.parametrize("limit", [2**31, 10**13])
def test_out_of_range_signature_limit(server: Server, world: World, http: httpx.Client,
                                      limit: int) -> None:
    r = http.post(f"/api/v1/projects/{world.project}/keys",
                  json={"name": unique("big"), "max_signatures": limit})
    assert 400 <= r.status_code < 500, r.text
    check_problem(r, r.status_code, "max_signatures")
    assert keys_of(server, world.project) == [world.key]


# -- routing and authentication -----------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/nope", "/nope", "/api/v2/projects",
                                  "/api/v1/projects/a/b/c/d/e"])
def test_unknown_route(http: httpx.Client, path: str) -> None:
    assert check_problem(http.get(path), 404, "not found", path)["code"] == "not_found"


@pytest.mark.parametrize(("method", "path"), [
    ("DELETE", "/api/v1/projects"),
    ("PUT", "/api/v1/keys"),
    ("GET", "/api/v1/projects/p/keys/k/sign"),
    ("PATCH", "/api/v1/grants"),
    ("POST", "/api/v1/audit"),
])
def test_wrong_method(http: httpx.Client, method: str, path: str) -> None:
    body = check_problem(http.request(method, path), 405, "method not allowed",
                         f"{method} {path}")
    assert body["code"] == "method_not_allowed"


@pytest.mark.parametrize("header", [
    None, "", "Bearer", "Basic YWRtaW46YWRtaW4=", "Token sgt_x",
    "sgt_abc", "Bearer sgt_not-a-token", "Bearer sgt_" + "A" * 43, "BearerX sgt_x",
])
@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/v1/projects"),
    ("POST", "/api/v1/projects"),
    ("GET", "/api/v1/audit/verify"),
    ("POST", "/api/v1/projects/p/keys/k/sign"),
])
def test_missing_or_malformed_authorization(server: Server, header: str | None, method: str,
                                            path: str) -> None:
    headers = {} if header is None else {"Authorization": header}
    kwargs: dict[str, Any] = {}
    if method == "POST":
        kwargs["json"] = ({"name": unique("anon")} if path.endswith("projects")
                          else {"digest": GOOD_DIGEST, "artifact_name": "a"})
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as anon:
        r = anon.request(method, path, **kwargs)
    body = check_problem(r, 401, "authentication failed")
    assert body["code"] == "authentication_failed"
    assert r.headers["www-authenticate"] == "Bearer"


def test_refusals_were_audited_and_nothing_half_written(server: Server, world: World) -> None:
    """Runs after the tests above (same server): the chain is intact and whole."""
    assert server.cli("audit", "verify").returncode == 0
    verify = server.cli("audit", "verify", "--json").json()
    assert verify["ok"] is True
    assert verify["entries"] == verify["head_seq"]
    assert keys_of(server, world.project) == [world.key]
    key = server.cli("key", "show", world.key, "--json").json()
    assert key["state"] == "active"
    assert [(v["version"], v["signatures"]) for v in key["versions"]] == [(1, 0)]
    refusals = server.cli("audit", "log", "--project", world.project, "--json").json()
    codes = {e["details"].get("code") for e in refusals if e["outcome"] == "refused"}
    assert {"conflict", "bad_digest_length", "unknown_algorithm", "not_found"} <= codes
    assert "Traceback" not in server.server_log()


# -- the CLI ------------------------------------------------------------------------------


def check_cli_error(result: CliResult, code: int, *needles: str) -> str:
    assert result.returncode == code, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("signgate: "), line
    for needle in needles:
        assert needle in line, (needle, line)
    assert "Traceback" not in result.stderr
    return line


def test_cli_invalid_input_exits_7(server: Server, world: World) -> None:
    check_cli_error(server.cli("key", "create", "Bad/release", check=False), 7,
                    "invalid project name 'Bad'")
    check_cli_error(server.cli("grant", "add", world.signer, "signer", "No/Way", check=False),
                    7, "invalid project name 'No'")
    check_cli_error(server.cli("key", "revoke", world.key, "--compromised-at", "soon",
                               check=False), 7, "invalid time 'soon'")
    check_cli_error(server.cli("key", "revoke", world.key, "--compromised-at",
                               "9999-12-31T23:59:59-01:00", check=False), 7, "out of range")
    check_cli_error(server.cli("key", "show", "no-slash", check=False), 7,
                    "key must be named PROJECT/NAME")
    assert server.cli("key", "show", world.key, "--json").json()["state"] == "active"


def test_cli_not_found_exits_5(server: Server, world: World) -> None:
    ghost = unique("ghost")
    check_cli_error(server.cli("key", "show", f"{world.project}/{ghost}", check=False), 5,
                    f"no key {world.project}/{ghost}")
    check_cli_error(server.cli("identity", "disable", ghost, check=False), 5,
                    f"no identity named '{ghost}'")


def test_cli_conflict_exits_6(server: Server, world: World) -> None:
    check_cli_error(server.cli("project", "create", world.project, check=False), 6,
                    f"project '{world.project}' already exists")
    check_cli_error(server.cli("key", "create", world.key, check=False), 6,
                    f"key {world.key} already exists")
    assert keys_of(server, world.project) == [world.key]


def test_cli_missing_file_is_a_usage_error(server: Server, world: World,
                                           tmp_path: Path) -> None:
    missing = tmp_path / "nope.bin"
    r = server.cli("sign", str(missing), "--key", world.key, check=False,
                   token=world.signer_token)
    assert r.returncode == 2
    assert "does not exist" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "nope.bin.sig").exists()


def test_cli_token_file_pointing_nowhere(server: Server, tmp_path: Path) -> None:
    missing = tmp_path / "no.token"
    r = server.cli("project", "list", "--token-file", str(missing), check=False)
    check_cli_error(r, 10, f"cannot read token file {missing}", "No such file or directory")


def test_cli_unreachable_server(server: Server) -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SIGNGATE_")},
           "SIGNGATE_URL": "http://127.0.0.1:1", "SIGNGATE_TOKEN": server.admin_token}
    proc = subprocess.run([SIGNGATE, "project", "list"], capture_output=True, text=True,
                          env=env, timeout=60)
    check_cli_error(CliResult(proc.returncode, proc.stdout, proc.stderr), 9,
                    "cannot reach signgate at http://127.0.0.1:1")
    assert proc.stdout == ""
