"""CI identities from OIDC, end to end: a real 'signgate serve', a real OIDC issuer on
127.0.0.1 (tests/support/oidc.py), the real CLI. A GitHub-shaped job exchanges its token
and signs (verified with openssl, named in the audit log and the report); every way a token
can be wrong is refused with 401, its own code and an audit entry; the JWKS is re-fetched
for an unknown kid at most once per cooldown, and an issuer whose keys cannot be fetched
answers 503."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import _server, unique

# SQLite alone: the same decisions run on both backends in
# tests/integration/test_oidc_service.py
from tests.support.backends import sqlite_only as sqlite_only
from tests.support.oidc import AUDIENCE, Issuer, issuer
from tests.support.server import SIGNGATE, CliResult, Server, free_port, openssl

# The JWKS may be fetched again for an unknown kid once a second: the rotation test waits
# that long, not the default minute.
# A cooldown that two requests in a row stay within on a busy machine, short enough to wait
# out once.
CONFIG = "oidc_jwks_cooldown_seconds = 5"
BINDING = ["--claim", "repository_id=123456", "--claim", "ref=refs/heads/main",
           "--claim", "event_name=push", "--claim", "environment=release"]
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _server(backend, tmp_path_factory, CONFIG)


@pytest.fixture(scope="module")
def github(server: Server) -> Iterator[tuple[str, Issuer, str]]:
    """An issuer named github-N (found by discovery), a key P/release, and the binding
    above granting signer on it: (issuer name, issuer, key ref)."""
    with issuer("RS256") as iss:
        name = unique("github")
        out = server.cli("oidc", "issuer", "add", name, "--issuer", iss.url,
                         "--audience", AUDIENCE)
        assert f"its tokens act as oidc-{name}" in out.stdout
        assert iss.discovery_fetches == 1
        project = unique("acme")
        server.cli("project", "create", project)
        server.cli("key", "create", f"{project}/release")
        server.cli("grant", "add", "--oidc", name, *BINDING, "signer", f"{project}/release")
        yield name, iss, f"{project}/release"


def ci(server: Server, *args: str, cache: Path, oidc_token: str | None = None,
       check: bool = True) -> CliResult:
    """The CLI as a CI job runs it: no API token, the OIDC token in SIGNGATE_OIDC_TOKEN."""
    env = {**server.env, "SIGNGATE_URL": server.url, "XDG_CACHE_HOME": str(cache)}
    if oidc_token is not None:
        env["SIGNGATE_OIDC_TOKEN"] = oidc_token
    proc = subprocess.run([SIGNGATE, *args], capture_output=True, text=True, env=env,
                          timeout=60)
    result = CliResult(proc.returncode, proc.stdout, proc.stderr)
    if check:
        assert proc.returncode == 0, result
    return result


def exchange(server: Server, token: str) -> httpx.Response:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        return http.post("/api/v1/oidc/token", json={"token": token})


def last_exchange(server: Server) -> dict[str, Any]:
    entries = server.cli("audit", "log", "--action", "oidc.exchange", "--json").json()
    entry: dict[str, Any] = entries[-1]
    return entry


def assert_refused(server: Server, token: str, code: str, words: str,
                   status: int = 401) -> None:
    answer = exchange(server, token)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == PROBLEM
    body = answer.json()
    assert body["code"] == code, body
    assert words in body["detail"], body
    entry = last_exchange(server)
    assert entry["outcome"] == "refused"
    assert entry["details"]["code"] == code
    assert entry["details"]["reason"] == body["detail"]


def test_a_github_job_signs_with_its_oidc_token(server: Server, github: tuple[str, Issuer, str],
                                                tmp_path: Path) -> None:
    name, iss, ref = github
    listed = server.cli("grant", "list", "--json").json()
    mine = [g for g in listed if g.get("oidc_issuer") == name]
    assert mine == [{**mine[0], "identity": f"oidc-{name}", "role": "signer", "scope": ref,
                     "claims": {"environment": ["release"], "event_name": ["push"],
                                "ref": ["refs/heads/main"], "repository_id": ["123456"]}}]

    artifact = tmp_path / "app-1.0.tar.gz"
    artifact.write_bytes(b"release 1.0 of acme/app\n" * 100)
    token = iss.mint(iss.github())
    cache = tmp_path / "cache"
    ci(server, "sign", str(artifact), "--key", ref, "--format", "raw", "-o",
       str(tmp_path / "app.sig"), cache=cache, oidc_token=token)
    # A second command of the same job with the same CI token: the cached exchange (the
    # server accepts each CI token once).
    who = ci(server, "whoami", "--json", cache=cache, oidc_token=token).json()
    assert who["name"] == f"oidc-{name}"
    assert who["grants"] == [f"signer:{ref}"]
    # Neither the CI token nor the signgate token is in the server's log or the audit log.
    cached = next((cache / "signgate" / "oidc").glob("*.json")).read_text()
    assert token not in cached
    secret = json.loads(cached)["token"]
    audit_text = server.cli("audit", "log", "--json").stdout
    for value in (token, secret, token.split(".")[2]):
        assert value not in server.server_log()
        assert value not in audit_text

    pub = tmp_path / "release.pem"
    pub.write_text(server.cli("key", "public", ref).stdout)
    proc = subprocess.run([openssl(), "dgst", "-sha256", "-verify", str(pub), "-signature",
                           str(tmp_path / "app.sig"), str(artifact)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc
    assert proc.stdout.strip() == "Verified OK"

    entries = server.cli("audit", "log", "--key", ref, "--action", "signature.create",
                         "--json").json()
    oidc = entries[-1]["details"]["oidc"]
    assert entries[-1]["actor"] == f"oidc-{name}"
    assert oidc["issuer"] == name
    assert oidc["claims"]["repository"] == "acme/app"
    assert oidc["claims"]["run_id"] == "7100000001"
    assert oidc["claims"]["job_workflow_ref"].endswith("release.yml@refs/heads/main")
    table = server.cli("audit", "log", "--key", ref, "--action", "signature.create").stdout
    assert f"via {name} repository=acme/app workflow=release run_id=7100000001" in table

    report = server.cli("report", "signatures", "--key", ref).stdout
    assert "repository=acme/app ref=refs/heads/main workflow=release" in report
    assert "run_id=7100000001" in report
    rows = server.cli("report", "signatures", "--key", ref, "--json").json()["signatures"]
    assert rows[-1]["digest"] == hashlib.sha256(artifact.read_bytes()).hexdigest()
    assert rows[-1]["oidc"].startswith(f"{name}: repository=acme/app ")

    # --oidc-token-file, a new token of the same job: accepted as well.
    token_file = tmp_path / "oidc.jwt"
    token_file.write_text(iss.mint(iss.github(run_attempt="2")))
    who = ci(server, "whoami", "--json", "--oidc-token-file", str(token_file),
             cache=tmp_path / "cache2").json()
    assert who["name"] == f"oidc-{name}"


def held_signature_verified(server: Server, request_id: str, ref: str, artifact: Path,
                            tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The signed request's raw signature checked by openssl; the request as shown, and its
    signature.create entry."""
    shown = server.cli("request", "show", request_id, "--json").json()
    (tmp_path / "app.sig").write_bytes(base64.b64decode(shown["result"]["signature"]))
    pub = tmp_path / "key.pem"
    pub.write_text(server.cli("key", "public", ref).stdout)
    proc = subprocess.run([openssl(), "dgst", "-sha256", "-verify", str(pub), "-signature",
                           str(tmp_path / "app.sig"), str(artifact)],
                          capture_output=True, text=True, check=False)
    assert proc.stdout.strip() == "Verified OK", proc
    entry: dict[str, Any] = server.cli("audit", "log", "--key", ref, "--action",
                                       "signature.create", "--json").json()[-1]
    return shown, entry


def test_a_github_job_on_a_key_that_needs_two_approvals(
        server: Server, github: tuple[str, Issuer, str], tmp_path: Path) -> None:
    """The OIDC job's signing is held; at the second approval it is signed with the grants
    the job's claims earn then, and its entry names the workflow run like a direct one.
    Once the binding is gone, a request it left is refused at its last approval."""
    name, iss, release = github
    project = release.split("/")[0]
    ref = f"{project}/held"
    server.cli("key", "create", ref)
    server.cli("key", "policy", ref, "--approvals", "2")
    server.cli("grant", "add", "--oidc", name, *BINDING, "signer", ref)
    approvers = []
    for who in ("alice", "bob"):
        person = unique(who)
        approvers.append(server.new_identity(person, "user"))
        server.cli("grant", "add", person, "approver", ref)

    def job_signs(artifact: Path, run_id: str) -> str:
        artifact.write_bytes(b"held release of acme/app " + run_id.encode())
        held = ci(server, "sign", str(artifact), "--key", ref, "--format", "raw",
                  cache=tmp_path / run_id, oidc_token=iss.mint(iss.github(run_id=run_id)),
                  check=False)
        assert held.returncode == 11, held
        return held.stdout.strip()

    artifact = tmp_path / "app-2.0.tar.gz"
    request_id = job_signs(artifact, "7100000042")
    server.cli("approve", request_id, token=approvers[0])
    assert "signed app-2.0.tar.gz" in server.cli("approve", request_id,
                                                 token=approvers[1]).stdout
    _, entry = held_signature_verified(server, request_id, ref, artifact, tmp_path)
    assert entry["actor"] == f"oidc-{name}"
    assert entry["details"]["oidc"]["claims"]["run_id"] == "7100000042"
    assert len(entry["details"]["approval"]["approvals"]) == 2

    # The binding removed while a request waits: its last approval signs nothing.
    waiting = job_signs(tmp_path / "app-2.1.tar.gz", "7100000043")
    server.cli("approve", waiting, token=approvers[0])
    server.cli("grant", "remove", "--oidc", name, *BINDING, "signer", ref)
    refused = server.cli("approve", waiting, token=approvers[1], check=False)
    assert refused.returncode == 4, refused
    assert f"oidc-{name} may not sign with {ref}: no signer grant" in refused.stderr
    signed = [e for e in server.cli("audit", "log", "--key", ref, "--action",
                                    "signature.create", "--json").json()
              if e["outcome"] == "allowed"]
    assert [e["seq"] for e in signed] == [entry["seq"]]


def test_a_github_job_and_a_second_builder_agree_then_two_approvals_sign(
        server: Server, github: tuple[str, Issuer, str], tmp_path: Path) -> None:
    """Issue 13's whole chain: a GitHub-shaped OIDC job builds release v3.0, a second,
    independent builder (its own API token) submits the same digest, two people approve,
    and the signature verifies with openssl; its entry names the workflow run, the
    builders and the approvals."""
    name, iss, release = github
    project = release.split("/")[0]
    ref = f"{project}/repro"
    server.cli("key", "create", ref)
    server.cli("key", "policy", ref, "--approvals", "2", "--require-builders", "2")
    server.cli("grant", "add", "--oidc", name, *BINDING, "signer", ref)
    second = unique("selfhosted")
    second_token = server.new_identity(second)
    server.cli("grant", "add", second, "signer", ref)
    approvers = []
    for who in ("alice", "bob"):
        person = unique(who)
        approvers.append(server.new_identity(person, "user"))
        server.cli("grant", "add", person, "approver", ref)
    artifact = tmp_path / "app-3.0.tar.gz"
    artifact.write_bytes(b"reproducible release 3.0 of acme/app\n" * 50)
    held = ci(server, "sign", str(artifact), "--key", ref, "--release", "v3.0",
              cache=tmp_path / "job", oidc_token=iss.mint(iss.github(run_id="7100000077")),
              check=False)
    assert held.returncode == 11, held
    request_id = held.stdout.strip()
    assert "1 of 2 agree" in held.stderr
    agreed = server.cli("sign", str(artifact), "--key", ref, "--release", "v3.0", "--json",
                        token=second_token, check=False)
    assert agreed.returncode == 11, agreed
    assert agreed.json()["state"] == "pending"  # builders agree, then humans approve
    server.cli("approve", request_id, token=approvers[0])
    assert "signed app-3.0.tar.gz" in server.cli("approve", request_id,
                                                 token=approvers[1]).stdout
    shown, entry = held_signature_verified(server, request_id, ref, artifact, tmp_path)
    assert entry["actor"] == f"oidc-{name}"
    assert entry["details"]["oidc"]["claims"]["run_id"] == "7100000077"
    approval = entry["details"]["approval"]
    assert [b["identity"] for b in approval["builders"]] == [f"oidc-{name}", second]
    assert approval["release"] == "v3.0"
    assert len(approval["approvals"]) == 2
    assert shown["result"]["receipt"]["approval"] == approval


def test_a_gitlab_job_with_an_es256_token(server: Server, tmp_path: Path) -> None:
    with issuer("ES256") as iss:
        name = unique("gitlab")
        server.cli("oidc", "issuer", "add", name, "--issuer", iss.url, "--audience", AUDIENCE,
                   "--jwks-url", iss.jwks_url)
        assert iss.discovery_fetches == 0
        project = unique("acme")
        server.cli("project", "create", project)
        server.cli("key", "create", f"{project}/release")
        server.cli("grant", "add", "--oidc", name, "--claim", "project_id=4242",
                   "--claim", "ref=main", "--claim", "ref_type=branch",
                   "--claim", "ref_protected=true", "signer", f"{project}/release")
        answer = exchange(server, iss.mint(iss.gitlab()))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["grants"] == [f"signer:{project}/release"]
        assert body["claims"]["pipeline_id"] == "900001"
        digest = hashlib.sha256(b"gitlab build").hexdigest()
        with server.http(body["token"]) as http:
            signed = http.post(f"/api/v1/projects/{project}/keys/release/sign",
                               json={"digest": digest, "artifact_name": "app.bin"})
        assert signed.status_code == 200, signed.text
        assert signed.json()["receipt"]["identity"] == f"oidc-{name}"
        # An unprotected branch of the same project earns nothing.
        assert_refused(server, iss.mint(iss.gitlab(ref_protected="false", ref="wip")),
                       "oidc_no_grant", "claim ref is \"wip\", not main")


def _cases(iss: Issuer, other: Issuer) -> list[tuple[str, str, str]]:
    """(token, code, words of the reason)."""
    return [
        (iss.mint(iss.github(aud="https://someone-else.test")), "oidc_audience",
         "is not exactly"),
        (iss.mint(iss.github(aud=[AUDIENCE, "https://someone-else.test"])), "oidc_audience",
         "is not exactly"),
        (iss.mint({k: v for k, v in iss.github().items() if k != "aud"}), "oidc_audience",
         "no aud claim"),
        # Another issuer's token, and a token claiming to be this issuer's but signed by
        # the other one.
        (other.mint(other.github()), "oidc_unknown_issuer", "is not configured"),
        (other.mint(other.github(iss=iss.url), kid=iss.key.kid), "oidc_signature",
         "signature does not verify"),
        (iss.mint(iss.github(exp=iss.times()["iat"] - 120)), "oidc_expired", "expired at"),
        (iss.mint(iss.github(nbf=iss.times()["exp"])), "oidc_not_yet_valid", "nbf"),
        (iss.mint_unsigned(iss.github()), "oidc_algorithm", "'none' is not allowed"),
        (iss.mint_hs256_with_public_key(iss.github()), "oidc_algorithm",
         "'HS256' is not allowed"),
        (iss.mint({k: v for k, v in iss.github().items() if k != "jti"}), "oidc_malformed",
         "no jti"),
        ("not-a-jwt", "oidc_malformed", "not a JWT"),
        # Claims that almost match: a fork, another branch, pull_request_target.
        (iss.mint(iss.github(repository_id="999999", repository="evil/app")),
         "oidc_no_grant", "claim repository_id is \"999999\", not 123456"),
        (iss.mint(iss.github(ref="refs/heads/feature")), "oidc_no_grant",
         "claim ref is \"refs/heads/feature\", not refs/heads/main"),
        (iss.mint(iss.github(event_name="pull_request_target")), "oidc_no_grant",
         "claim event_name is \"pull_request_target\", not push"),
    ]


def test_every_bad_token_is_refused_with_its_reason_and_recorded(
        server: Server, github: tuple[str, Issuer, str]) -> None:
    _, iss, _ = github
    with issuer("RS256") as other:
        for token, code, words in _cases(iss, other):
            assert_refused(server, token, code, words)


def test_a_replayed_token_is_refused_and_recorded(server: Server,
                                                  github: tuple[str, Issuer, str]) -> None:
    name, iss, _ = github
    token = iss.mint(iss.github())
    assert exchange(server, token).status_code == 200
    entry = last_exchange(server)
    assert entry["outcome"] == "allowed"
    assert entry["actor"] == f"oidc-{name}"
    assert entry["details"]["claims"]["run_id"] == "7100000001"
    assert_refused(server, token, "oidc_replayed", "was exchanged before")


def test_an_unknown_kid_refetches_once_per_cooldown_then_rotation_works(
        server: Server, github: tuple[str, Issuer, str]) -> None:
    _, iss, _ = github
    assert exchange(server, iss.mint(iss.github())).status_code == 200
    before = iss.jwks_fetches
    claims = iss.github()
    assert_refused(server, iss.mint(claims, kid="no-such-key"), "oidc_unknown_key",
                   "'no-such-key' is not in the JWKS")
    fetched = iss.jwks_fetches
    assert fetched - before <= 1
    # Within the cooldown: refused again without asking the issuer.
    assert_refused(server, iss.mint(iss.github(), kid="another-key"), "oidc_unknown_key",
                   "not in the JWKS")
    assert iss.jwks_fetches == fetched
    old = iss.key
    new = iss.rotate()
    time.sleep(5.2)  # the cooldown (5 s in this module's config)
    assert exchange(server, iss.mint(iss.github(), key=new)).status_code == 200
    assert iss.jwks_fetches == fetched + 1
    # The old key is gone from the JWKS fetched just now: its tokens are refused.
    assert_refused(server, iss.mint(iss.github(), key=old), "oidc_unknown_key",
                   f"{old.kid!r} is not in the JWKS")


def test_an_issuer_whose_keys_cannot_be_fetched_answers_503(server: Server) -> None:
    with issuer("RS256") as iss:
        name = unique("down")
        dead = f"http://127.0.0.1:{free_port()}/jwks"
        server.cli("oidc", "issuer", "add", name, "--issuer", iss.url, "--audience", AUDIENCE,
                   "--jwks-url", dead)
        assert_refused(server, iss.mint(iss.github()), "oidc_issuer_unavailable",
                       f"cannot fetch the JWKS {dead}", status=503)
        assert last_exchange(server)["actor"] == f"oidc-{name}"


def test_issuers_are_managed_by_admins_only(server: Server, tmp_path: Path) -> None:
    project = unique("acme")
    server.cli("project", "create", project)
    user = unique("dev")
    dev = server.new_identity(user)
    server.cli("grant", "add", user, "admin", project)  # a project's admin: not enough
    refused = server.cli("oidc", "issuer", "add", "evil", "--issuer", "https://evil.test",
                         "--audience", "x", "--jwks-url", "https://evil.test/jwks",
                         token=dev, check=False)
    assert refused.returncode == 4, refused
    assert "no admin grant" in refused.stderr
    denied = server.cli("audit", "log", "--action", "oidc.issuer-add", "--json").json()[-1]
    assert denied["outcome"] == "refused"
    assert denied["actor"] == user
    bad = server.cli("oidc", "issuer", "add", "plain", "--issuer", "http://example.com",
                     "--audience", "x", check=False)
    assert bad.returncode == 7
    assert "must be an https:// URL" in bad.stderr
    with issuer() as iss:
        name = unique("temp")
        server.cli("oidc", "issuer", "add", name, "--issuer", iss.url, "--audience", AUDIENCE,
                   "--jwks-url", iss.jwks_url)
        assert name in server.cli("oidc", "issuer", "list").stdout
        # A grant with the same arguments is removed, in any order of its claims.
        server.cli("grant", "add", "--oidc", name, "--claim", "project_id=1",
                   "--claim", "ref=main", "signer", project)
        out = server.cli("grant", "remove", "--oidc", name, "--claim", "ref=main",
                         "--claim", "project_id=1", "signer", project).stdout
        assert f"from oidc:{name} [project_id=1 ref=main]" in out
        assert server.cli("oidc", "issuer", "remove", name).returncode == 0
        assert name not in server.cli("oidc", "issuer", "list").stdout
    entries = server.cli("audit", "log", "--json").json()
    actions = [e["action"] for e in entries]
    assert "oidc.issuer-add" in actions
    assert "oidc.issuer-remove" in actions
    granted = [e for e in entries if e["action"] in ("grant.add", "grant.remove")
               and e["details"].get("oidc_issuer") == name]
    assert [(e["action"], e["details"]["claims"]) for e in granted] == [
        ("grant.add", {"project_id": ["1"], "ref": ["main"]}),
        ("grant.remove", {"project_id": ["1"], "ref": ["main"]})]


def test_an_exchanged_token_and_a_used_jti_hold_on_every_node(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """Two 'signgate serve' nodes on one PostgreSQL database: a token exchanged on one
    signs on the other, and a CI token exchanged on one is a replay on the other."""
    from tests.support import postgres
    from tests.support.server import start_server

    if not postgres.available():
        pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432 (scripts/test.sh starts it)")
    base = tmp_path_factory.mktemp("nodes")
    with postgres.temporary_database() as url, issuer() as iss:
        a = start_server(base / "a", url)
        try:
            shutil.copytree(base / "a", base / "b")  # the same config and master key
            b = start_server(base / "b", url, init=False)
            try:
                a.cli("oidc", "issuer", "add", "github", "--issuer", iss.url,
                      "--audience", AUDIENCE)
                a.cli("project", "create", "acme")
                a.cli("key", "create", "acme/release")
                a.cli("grant", "add", "--oidc", "github", *BINDING, "signer", "acme/release")
                token = iss.mint(iss.github())
                answer = exchange(a, token)
                assert answer.status_code == 200, answer.text
                digest = hashlib.sha256(b"two nodes").hexdigest()
                with b.http(answer.json()["token"]) as http:
                    signed = http.post("/api/v1/projects/acme/keys/release/sign",
                                       json={"digest": digest, "artifact_name": "app.bin"})
                assert signed.status_code == 200, signed.text
                assert signed.json()["receipt"]["identity"] == "oidc-github"
                assert_refused(b, token, "oidc_replayed", "was exchanged before")
            finally:
                b.stop()
        finally:
            a.stop()
