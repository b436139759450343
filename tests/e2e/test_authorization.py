"""Who may do what, end to end: grants, scopes, disabled identities, tokens, and the audit
record of every refusal."""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import _server, unique
from tests.support import postgres
from tests.support.server import CliResult, Server, start_server

AUTH_FAILED = "signgate: authentication failed: missing or invalid token\n"


def api(server: Server, method: str, path: str, **kwargs: Any) -> Any:
    """Set-up straight over HTTP as the admin (the CLI is what these tests exercise)."""
    with server.http() as http:
        r = http.request(method, "/api/v1" + path, **kwargs)
    assert r.status_code in (200, 201), r.text
    return r.json()


def identity(server: Server, name: str, kind: str = "service") -> str:
    token: str = api(server, "POST", "/identities", json={"name": name, "kind": kind})["token"]
    return token


def grant(server: Server, who: str, role: str, scope: str) -> None:
    api(server, "POST", "/grants", json={"identity": who, "role": role, "scope": scope})


# Failed authentications are recorded with their count once their window ends: short
# windows let these tests see the counts within seconds, a high limit keeps them from 429.
FAST_WINDOWS = "auth_failure_window_seconds = 2\nauth_failure_limit = 1000"


@pytest.fixture(scope="module")
def server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _server(backend, tmp_path_factory, FAST_WINDOWS)


def auth_failures(server: Server, since: int, expected: int,
                  timeout: float = 20) -> list[dict[str, Any]]:
    """The failed-authentication entries after ``since``, once their attempts add up to
    ``expected`` (later ones are recorded when their window ends)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [e for e in entries_since(server, since) if e["action"] == "auth.authenticate"]
        total = sum(e["details"]["attempts"] for e in found)
        if total >= expected or time.monotonic() > deadline:
            assert total == expected, found
            return found
        time.sleep(0.3)


def attempted(failures: list[dict[str, Any]]) -> dict[str, int]:
    """What the failed requests tried to do, added up over single and summary entries."""
    out: dict[str, int] = {}
    for e in failures:
        what = e["details"]["attempted"]
        for action, n in (what.items() if isinstance(what, dict) else [(what, 1)]):
            out[action] = out.get(action, 0) + n
    return out


@pytest.fixture(scope="module")
def world(server: Server) -> dict[str, str]:
    """Two projects: P with keys k1 and k2, Q with key k."""
    p, q = unique("authz-p"), unique("authz-q")
    for name in (p, q):
        api(server, "POST", "/projects", json={"name": name})
    for project, key in ((p, "k1"), (p, "k2"), (q, "k")):
        api(server, "POST", f"/projects/{project}/keys", json={"name": key})
    return {"p": p, "q": q}


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    path = tmp_path / "artifact.bin"
    path.write_bytes(b"artifact under test")
    return path


def last_seq(server: Server) -> int:
    with server.http() as http:
        page = http.get("/api/v1/audit/verify").json()
    return int(page["head_seq"])


def entries_since(server: Server, seq: int) -> list[dict[str, Any]]:
    with server.http() as http:
        r = http.get("/api/v1/audit", params={"after": seq, "limit": 5000})
    assert r.status_code == 200, r.text
    entries: list[dict[str, Any]] = r.json()["entries"]
    return entries


def refused(result: CliResult, code: int, stderr: str) -> None:
    assert result.returncode == code, result
    assert result.stdout == ""
    assert result.stderr == stderr


def assert_recorded(server: Server, since: int, refusals: list[tuple[str, str, str]]) -> None:
    """Each (actor, action, reason) refusal is in the audit log, in this order, as
    'audit log --json' shows it."""
    log = server.cli("audit", "log", "--json").json()
    found = [(e["actor"], e["action"], e["details"].get("reason"))
             for e in log if e["seq"] > since and e["outcome"] == "refused"]
    assert found == refusals


def sign(server: Server, artifact: Path, ref: str, token: str | None = None) -> CliResult:
    return server.cli("sign", str(artifact), "--key", ref, "--json", token=token, check=False)


def test_signer_grant_is_per_key(server: Server, world: dict[str, str], artifact: Path) -> None:
    p, q = world["p"], world["q"]
    ci = unique("ci")
    token = identity(server, ci)
    out = server.cli("grant", "add", ci, "signer", f"{p}/k1")
    assert out.stdout.strip() == f"granted signer on {p}/k1 to {ci}"
    start = last_seq(server)

    ok = sign(server, artifact, f"{p}/k1", token)
    assert ok.returncode == 0, ok
    assert ok.json()["key"] == f"{p}/k1"
    assert ok.json()["identity"] == ci

    artifact.with_name(artifact.name + ".sig").unlink()
    expected = []
    for ref in (f"{p}/k2", f"{q}/k"):
        reason = f"identity {ci} may not sign with {ref}: no signer grant"
        refused(sign(server, artifact, ref, token), 4, f"signgate: {reason}\n")
        assert not artifact.with_name(artifact.name + ".sig").exists()
        expected.append((ci, "signature.create", reason))
    assert_recorded(server, start, expected)

    log = [e for e in entries_since(server, start) if e["actor"] == ci]
    assert [(e["action"], e["outcome"], e["key"]) for e in log] == [
        ("signature.create", "allowed", f"{p}/k1"),
        ("signature.create", "refused", f"{p}/k2"),
        ("signature.create", "refused", f"{q}/k"),
    ]
    assert log[1]["details"]["code"] == "denied"


def test_project_scoped_signer_covers_every_key_of_the_project(
        server: Server, world: dict[str, str], artifact: Path) -> None:
    p, q = world["p"], world["q"]
    ci = unique("ci-project")
    token = identity(server, ci)
    out = server.cli("grant", "add", ci, "signer", p)
    assert out.stdout.strip() == f"granted signer on {p} to {ci}"
    assert server.cli("grant", "list", "--identity", ci, "--json").json()[0]["scope"] == p
    # A key created after the grant is covered too.
    later = unique("later")
    api(server, "POST", f"/projects/{p}/keys", json={"name": later, "algorithm": "ed25519"})
    for ref in (f"{p}/k1", f"{p}/k2", f"{p}/{later}"):
        r = sign(server, artifact, ref, token)
        assert r.returncode == 0, r
        assert r.json()["key"] == ref
    start = last_seq(server)
    reason = f"identity {ci} may not sign with {q}/k: no signer grant"
    refused(sign(server, artifact, f"{q}/k", token), 4, f"signgate: {reason}\n")
    assert_recorded(server, start, [(ci, "signature.create", reason)])
    whoami = server.cli("whoami", "--json", token=token).json()
    assert whoami["name"] == ci
    assert whoami["grants"] == [f"signer:{p}"]


def test_admin_needs_a_signer_grant(server: Server, world: dict[str, str],
                                    artifact: Path) -> None:
    p = world["p"]
    ref = f"{p}/k2"
    start = last_seq(server)
    reason = f"identity admin may not sign with {ref}: no signer grant"
    refused(sign(server, artifact, ref), 4, f"signgate: {reason}\n")

    server.cli("grant", "add", "admin", "signer", ref)
    ok = sign(server, artifact, ref)
    assert ok.returncode == 0, ok
    assert ok.json()["identity"] == "admin"
    dup = server.cli("grant", "add", "admin", "signer", ref, check=False)
    refused(dup, 6, f"signgate: identity admin already has signer on {ref}\n")

    out = server.cli("grant", "remove", "admin", "signer", ref)
    assert out.stdout.strip() == f"removed signer on {ref} from admin"
    refused(sign(server, artifact, ref), 4, f"signgate: {reason}\n")
    gone = server.cli("grant", "remove", "admin", "signer", ref, check=False)
    refused(gone, 5, f"signgate: identity admin has no signer grant on {ref}\n")
    own = server.cli("grant", "remove", "admin", "admin", "*", check=False)
    refused(own, 6, "signgate: an identity cannot remove its own global admin grant\n")
    assert_recorded(server, start, [
        ("admin", "signature.create", reason),
        ("admin", "grant.add", f"identity admin already has signer on {ref}"),
        ("admin", "signature.create", reason),
        ("admin", "grant.remove", f"identity admin has no signer grant on {ref}"),
        ("admin", "grant.remove", "an identity cannot remove its own global admin grant"),
    ])


def test_grant_remove_takes_the_right_away(server: Server, world: dict[str, str],
                                           artifact: Path) -> None:
    ref = f"{world['p']}/k1"
    ci = unique("ci-removed")
    token = identity(server, ci)
    grant(server, ci, "signer", ref)
    assert sign(server, artifact, ref, token).returncode == 0
    assert [g["scope"] for g in server.cli("grant", "list", "--identity", ci,
                                           "--json").json()] == [ref]
    server.cli("grant", "remove", ci, "signer", ref)
    assert server.cli("grant", "list", "--identity", ci, "--json").json() == []
    refused(sign(server, artifact, ref, token), 4,
            f"signgate: identity {ci} may not sign with {ref}: no signer grant\n")


def test_disabled_identity_is_refused(server: Server, world: dict[str, str],
                                      artifact: Path) -> None:
    ref = f"{world['p']}/k1"
    project, key = ref.split("/")
    ci = unique("ci-disabled")
    token = identity(server, ci)
    grant(server, ci, "signer", ref)
    out = server.cli("identity", "disable", ci)
    assert out.stdout.strip() == f"identity {ci} is now disabled"
    listed = {i["name"]: i for i in server.cli("identity", "list", "--json").json()}
    assert listed[ci]["enabled"] is False
    start = last_seq(server)

    # Answered exactly as an unknown token: nothing says the token is valid, or whose.
    refused(sign(server, artifact, ref, token), 3, AUTH_FAILED)
    refused(server.cli("key", "list", token=token, check=False), 3, AUTH_FAILED)
    unknown = "sgt_" + secrets.token_urlsafe(32)
    body = {"digest": hashlib.sha256(b"x").hexdigest(), "artifact_name": "x.bin"}
    requests = [("GET", "/api/v1/whoami", None), ("GET", "/api/v1/audit", None),
                ("POST", f"/api/v1/projects/{project}/keys/{key}/sign", body),
                ("GET", f"/api/v1/projects/{project}/keys/{key}", None)]
    for method, path, payload in requests:
        answers = []
        for tok in (token, unknown):
            with server.http(token=tok) as http:
                answers.append(http.request(method, path, json=payload))
        disabled, other = answers
        assert disabled.status_code == other.status_code == 401, (path, disabled.text)
        assert disabled.content == other.content, path
        assert disabled.headers["www-authenticate"] == other.headers["www-authenticate"]
        assert ci not in disabled.text
    # The record still says who it was.
    failures = auth_failures(server, start, 2 + 2 * len(requests))
    by_ci = sum(e["details"]["attempts"] for e in failures if e["actor"] == ci) + sum(
        e["details"].get("disabled_identities", {}).get(ci, 0) for e in failures)
    assert by_ci == 2 + len(requests)
    for e in failures:
        if e["actor"] == ci:
            assert e["details"]["reason"] == f"identity {ci} is disabled"
            assert e["details"]["code"] == "identity_disabled"
        else:
            assert e["actor"] == "anonymous"

    here = last_seq(server)
    refused(server.cli("identity", "disable", ci, check=False), 6,
            f"signgate: identity '{ci}' is already disabled\n")
    refused(server.cli("identity", "disable", "admin", check=False), 6,
            "signgate: an identity cannot disable itself\n")
    assert_recorded(server, here, [
        ("admin", "identity.disable", f"identity '{ci}' is already disabled"),
        ("admin", "identity.disable", "an identity cannot disable itself"),
    ])

    assert server.cli("identity", "enable", ci).stdout.strip() == f"identity {ci} is now enabled"
    ok = sign(server, artifact, ref, token)
    assert ok.returncode == 0, ok


def test_rotate_token(server: Server, world: dict[str, str], artifact: Path) -> None:
    ref = f"{world['p']}/k1"
    ci = unique("ci-rotated")
    old = identity(server, ci)
    grant(server, ci, "signer", ref)
    rotated = server.cli("identity", "rotate-token", ci)
    new = rotated.stdout.strip()
    assert new.startswith("sgt_")
    assert new != old
    assert "old one no longer works" in rotated.stderr

    start = last_seq(server)
    refused(sign(server, artifact, ref, old), 3, AUTH_FAILED)
    refused(server.cli("whoami", token=old, check=False), 3, AUTH_FAILED)
    assert sign(server, artifact, ref, new).returncode == 0
    assert server.cli("whoami", token=new).stdout.startswith(f"{ci} (service): ")

    # An identity may rotate its own token; the previous one dies at once.
    mine = server.cli("identity", "rotate-token", ci, "--json", token=new).json()["token"]
    refused(server.cli("whoami", token=new, check=False), 3, AUTH_FAILED)
    assert server.cli("whoami", "--json", token=mine).json()["name"] == ci
    # ... but not anybody else's.
    other = unique("other")
    identity(server, other)
    reason = f"identity {ci} may not manage signgate: no admin grant"
    refused(server.cli("identity", "rotate-token", other, token=mine, check=False), 4,
            f"signgate: {reason}\n")

    failures = auth_failures(server, start, 3)
    assert attempted(failures) == {"signature.create": 1, "read": 2}
    assert {e["actor"] for e in failures} == {"anonymous"}
    assert [(e["actor"], e["action"], e["details"]["reason"])
            for e in entries_since(server, start)
            if e["outcome"] == "refused" and e["action"] != "auth.authenticate"] == [
        (ci, "identity.rotate-token", reason)]


ODD_TOKENS = [
    "x",
    "sgt_",
    "sgt_" + "A" * 43,
    "Bearer sgt_abc",
    "a b c",
    "' OR 1=1 --",
    "%00%0a",
    "x" * 4000,
    "\u2603 snowman",
    "tab\tinside",
    "new\nline",
    "\x7f",
]


def test_auth_failures_look_the_same(server: Server, world: dict[str, str],
                                     artifact: Path) -> None:
    ref = f"{world['p']}/k1"
    ci = unique("ci-auth")
    real = identity(server, ci)
    grant(server, ci, "signer", ref)
    # A token that belonged to an existing identity, a well-formed unknown one, odd ones.
    api(server, "POST", f"/identities/{ci}/rotate-token")
    start = last_seq(server)

    tokens = [real, *ODD_TOKENS]
    for tok in tokens:
        r = sign(server, artifact, ref, tok)
        assert (r.returncode, r.stdout, r.stderr) == (3, "", AUTH_FAILED), (tok, r)
    assert not artifact.with_name(artifact.name + ".sig").exists()

    # Over HTTP: the same status and body, whether the identity exists or not.
    bodies = []
    for tok in (real, "sgt_" + "B" * 43, ""):
        with server.http(token=tok) as http:
            bodies.append(http.get("/api/v1/whoami"))
    for r in bodies:
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        assert r.json() == bodies[0].json()
    assert bodies[0].json()["detail"] == "authentication failed: missing or invalid token"

    # Tokens that cannot even travel in an HTTP header are refused by the CLI itself.
    sent = [t for t in tokens if t.isascii() and t.isprintable()]
    failures = auth_failures(server, start, len(sent) + len(bodies))
    for e in failures:
        assert e["actor"] == "anonymous"
        assert e["outcome"] == "refused"
        assert e["details"]["reason"] == "authentication failed: missing or invalid token"
        assert e["details"]["code"] == "authentication_failed"
        assert e["details"]["client"] == "127.0.0.1"
        assert ci not in str(e)
    assert attempted(failures) == {"signature.create": len(sent), "read": len(bodies)}
    singles = [e for e in failures if not e["details"].get("summary")]
    assert singles[0]["details"]["attempted"] == "signature.create"
    assert singles[0]["key"] == ref
    # 'audit log' shows them like any other refusal.
    text = server.cli("audit", "log", "--identity", "anonymous", "--action",
                      "auth.authenticate").stdout
    assert text.count(" refused ") >= len(failures)
    assert "authentication failed: missing or invalid token" in text


def test_non_admin_cannot_administer(server: Server, world: dict[str, str]) -> None:
    p = world["p"]
    ci = unique("ci-plain")
    token = identity(server, ci)
    grant(server, ci, "signer", p)
    start = last_seq(server)
    everywhere = f"identity {ci} may not manage signgate: no admin grant"
    in_p = f"identity {ci} may not manage {p}: no admin grant"
    cases = [
        (("project", "create", unique("nope")), everywhere, "project.create"),
        (("key", "create", f"{p}/{unique('nope')}"), in_p, "key.create"),
        (("identity", "create", unique("nope")), everywhere, "identity.create"),
        (("grant", "add", ci, "signer", "*"), everywhere, "grant.add"),
        (("grant", "add", ci, "admin", p), in_p, "grant.add"),
        (("key", "rotate", f"{p}/k1"), f"identity {ci} may not manage {p}/k1: no admin grant",
         "key.rotate"),
        (("identity", "list"), everywhere, "read"),
    ]
    for args, reason, _ in cases:
        refused(server.cli(*args, token=token, check=False), 4, f"signgate: {reason}\n")
    assert_recorded(server, start, [(ci, action, reason) for _, reason, action in cases])
    assert server.cli("whoami", "--json", token=token).json()["grants"] == [f"signer:{p}"]
    assert api(server, "GET", f"/projects/{p}/keys/k1")["current_version"] == 1


def test_project_admin(server: Server, world: dict[str, str], artifact: Path) -> None:
    p, q = world["p"], world["q"]
    boss = unique("p-admin")
    boss_token = identity(server, boss, kind="user")
    grant(server, boss, "admin", p)
    ci = unique("ci-of-p")
    ci_token = identity(server, ci)

    ref = f"{p}/{unique('by-boss')}"
    assert server.cli("key", "create", ref, token=boss_token).stdout.startswith(
        f"created key {ref} ")
    assert server.cli("grant", "add", ci, "signer", ref, token=boss_token).returncode == 0
    assert server.cli("grant", "add", ci, "signer", p, token=boss_token).returncode == 0
    ok = sign(server, artifact, ref, ci_token)
    assert ok.returncode == 0, ok
    assert server.cli("key", "rotate", ref, token=boss_token).returncode == 0
    # A project admin sees the grants within its project, and none elsewhere.
    seen = server.cli("grant", "list", "--json", token=boss_token).json()
    assert {(g["identity"], g["role"], g["scope"]) for g in seen} >= {
        (boss, "admin", p), (ci, "signer", ref), (ci, "signer", p)}
    assert all(g["scope"] == p or g["scope"].startswith(p + "/") for g in seen), seen

    start = last_seq(server)
    cases = [
        (("key", "create", f"{q}/{unique('nope')}"),
         f"identity {boss} may not manage {q}: no admin grant", "key.create"),
        (("grant", "add", ci, "signer", f"{q}/k"),
         f"identity {boss} may not manage {q}: no admin grant", "grant.add"),
        (("grant", "add", ci, "signer", "*"),
         f"identity {boss} may not manage signgate: no admin grant", "grant.add"),
        (("grant", "add", boss, "admin", q),
         f"identity {boss} may not manage {q}: no admin grant", "grant.add"),
        (("project", "create", unique("nope")),
         f"identity {boss} may not manage signgate: no admin grant", "project.create"),
        (("identity", "create", unique("nope")),
         f"identity {boss} may not manage signgate: no admin grant", "identity.create"),
        (("key", "rotate", f"{q}/k"),
         f"identity {boss} may not manage {q}/k: no admin grant", "key.rotate"),
        # A project admin holds no signer right by itself either.
        (("sign", str(artifact), "--key", f"{p}/k1"),
         f"identity {boss} may not sign with {p}/k1: no signer grant", "signature.create"),
    ]
    for args, reason, _ in cases:
        refused(server.cli(*args, token=boss_token, check=False), 4, f"signgate: {reason}\n")
    assert_recorded(server, start, [(boss, action, reason) for _, reason, action in cases])


def test_audit_readers(server: Server, world: dict[str, str]) -> None:
    p = world["p"]
    auditor = unique("auditor")
    auditor_token = identity(server, auditor, kind="user")
    grant(server, auditor, "auditor", "*")
    signer = unique("ci-reader")
    signer_token = identity(server, signer)
    grant(server, signer, "signer", p)
    start = last_seq(server)

    log = server.cli("audit", "log", "--json", token=auditor_token).json()
    assert log[0]["action"] == "signgate.init"
    assert [e["seq"] for e in log][:start] == list(range(1, start + 1))
    assert server.cli("audit", "verify", token=auditor_token).stdout.startswith(
        "audit log intact: ")
    text = server.cli("audit", "log", "--project", p, token=auditor_token).stdout
    assert text.splitlines()[0].split()[:4] == ["SEQ", "TIME", "ACTOR", "ACTION"]
    # An auditor reads, but does not administer.
    manage = f"identity {auditor} may not manage signgate: no admin grant"
    refused(server.cli("project", "create", unique("nope"), token=auditor_token, check=False),
            4, f"signgate: {manage}\n")

    reason = f"identity {signer} may not read the audit log of all projects: no auditor grant"
    for args in (("audit", "log"), ("audit", "verify"), ("audit", "log", "--csv")):
        refused(server.cli(*args, token=signer_token, check=False), 4,
                f"signgate: {reason}\n")
    reason_p = f"identity {signer} may not read the audit log of {p}: no auditor grant"
    refused(server.cli("audit", "log", "--project", p, token=signer_token, check=False), 4,
            f"signgate: {reason_p}\n")
    assert_recorded(server, start, [(auditor, "project.create", manage)] + [
        (signer, "audit.read", reason)] * 3 + [(signer, "audit.read", reason_p)])


def _audit_pages(server: Server, token: str, **params: str) -> httpx.Response | list[Any]:
    """Every entry the API gives ``token`` (all pages), or the refusal."""
    entries: list[Any] = []
    after = 0
    with server.http(token=token) as http:
        while True:
            r = http.get("/api/v1/audit", params={**params, "after": after, "limit": 50})
            if r.status_code != 200:
                return r
            entries.extend(r.json()["entries"])
            if r.json()["next_after"] is None:
                return entries
            after = r.json()["next_after"]


@pytest.mark.parametrize("role", ["auditor", "admin"])
def test_key_scoped_reader_sees_only_its_key(server: Server, world: dict[str, str],
                                             role: str) -> None:
    p, q = world["p"], world["q"]
    signer = unique("ci-both-keys")
    signer_token = identity(server, signer)
    grant(server, signer, "signer", p)
    secret = unique("k2-artifact")
    for key, name in (("k1", unique("k1-artifact")), ("k2", secret)):
        with server.http(token=signer_token) as http:
            r = http.post(f"/api/v1/projects/{p}/keys/{key}/sign", json={
                "digest": hashlib.sha256(name.encode()).hexdigest(), "artifact_name": name,
                "metadata": {"branch": f"secret-{name}"}})
        assert r.status_code == 200, r.text
    reader = unique(f"k1-{role}")
    token = identity(server, reader, kind="user")
    grant(server, reader, role, f"{p}/k1")

    everything = _audit_pages(server, server.admin_token)
    assert isinstance(everything, list)
    of_k1 = [e["seq"] for e in everything if e["key"] == f"{p}/k1"]
    seen = _audit_pages(server, token)
    assert isinstance(seen, list)
    # Exactly the entries about P/k1: not P/k2's (artifact names, metadata, identities),
    # not the project's own (its creation, project grants), not Q's.
    assert [e["seq"] for e in seen] == of_k1[: len(seen)]
    assert len(seen) >= len(of_k1) > 0
    assert {(e["project"], e["key"]) for e in seen} == {(p, f"{p}/k1")}
    assert secret not in str(seen)
    assert any(e["action"] == "signature.create" and e["actor"] == signer for e in seen)
    # Narrowing filters narrow within the scope ...
    assert _audit_pages(server, token, project=p) == seen
    assert _audit_pages(server, token, key=f"{p}/k1") == seen
    mine = _audit_pages(server, token, identity=signer)
    assert isinstance(mine, list)
    assert [e["key"] for e in mine] == [f"{p}/k1"]
    # ... and filters outside it are refused, whether or not the key exists.
    for params, where in (({"key": f"{p}/k2"}, f"{p}/k2"), ({"key": f"{p}/nope"}, f"{p}/nope"),
                          ({"project": q}, q), ({"project": p, "key": f"{p}/k2"}, f"{p}/k2")):
        r = _audit_pages(server, token, **params)
        assert isinstance(r, httpx.Response)
        assert r.status_code == 403, r
        assert r.json()["detail"] == (
            f"identity {reader} may not read the audit log of {where}: no auditor grant")
    with server.http(token=token) as http:
        assert http.get(f"/api/v1/projects/{p}/keys/k2").status_code == 404
    # The CLI (table, --json, --csv) reads through the same scope.
    as_json = server.cli("audit", "log", "--json", token=token).json()
    assert [e["seq"] for e in as_json] == [e["seq"] for e in seen][: len(as_json)]
    assert secret not in str(as_json)
    as_csv = server.cli("audit", "log", "--csv", token=token).stdout
    assert secret not in as_csv
    assert all(line.split(",")[6] == p for line in as_csv.splitlines()[1:])
    refused(server.cli("audit", "log", "--key", f"{p}/k2", token=token, check=False), 4,
            f"signgate: identity {reader} may not read the audit log of {p}/k2: "
            "no auditor grant\n")
    # A project-wide reader sees every key of the project and the project's own entries.
    whole = unique("p-auditor")
    whole_token = identity(server, whole, kind="user")
    grant(server, whole, "auditor", p)
    project_view = _audit_pages(server, whole_token)
    assert isinstance(project_view, list)
    assert {e["project"] for e in project_view} == {p}
    assert secret in str(project_view)
    assert any(e["action"] == "project.create" for e in project_view)


def test_failed_authentications_are_throttled_and_counted(backend: str,
                                                          tmp_path: Path) -> None:
    """A flood of bad tokens: 429 past the limit, a log that grows by entries per window
    (not per attempt) whose counts add up to every attempt, nothing lost on a clean stop."""
    limit, flood, signs = 5, 240, 40
    config = f"auth_failure_limit = {limit}\nauth_failure_window_seconds = 3600"
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(postgres.temporary_database()) if backend == "postgres" \
            else None
        srv = start_server(tmp_path / "data", url, config=config)
        stack.callback(lambda: srv.stop())
        p = unique("flood")
        api(srv, "POST", "/projects", json={"name": p})
        api(srv, "POST", f"/projects/{p}/keys", json={"name": "k"})
        gone = unique("gone")
        gone_token = identity(srv, gone)
        api(srv, "POST", f"/identities/{gone}/disable")
        before = last_seq(srv)

        answers = []
        body = {"digest": hashlib.sha256(b"x").hexdigest(), "artifact_name": "x.bin"}
        with httpx.Client(base_url=srv.url, timeout=30) as http:
            for i in range(flood):
                auth = {"Authorization": f"Bearer sgt_{secrets.token_urlsafe(32)}"}
                if i % (flood // signs) == 0:  # the signing path counts alike
                    answers.append(http.post(f"/api/v1/projects/{p}/keys/k/sign", json=body,
                                             headers=auth))
                else:
                    answers.append(http.get("/api/v1/whoami", headers=auth))
            statuses = [r.status_code for r in answers]
            # A valid token from the same address still works ...
            assert http.get("/api/v1/whoami", headers={
                "Authorization": f"Bearer {srv.admin_token}"}).status_code == 200
            # ... and a disabled identity's token is throttled like any other.
            disabled = http.get("/api/v1/whoami",
                                headers={"Authorization": f"Bearer {gone_token}"})
        assert statuses[:limit] == [401] * limit
        # (windows are aligned to the hour: a flood across the boundary gets a new limit)
        assert statuses.count(401) in (limit, 2 * limit), statuses
        assert statuses.count(429) == flood - statuses.count(401)
        for r in [*answers[limit:limit + 3], answers[-1], disabled]:
            assert r.status_code == 429
            assert r.headers["content-type"] == "application/problem+json"
            assert 1 <= int(r.headers["retry-after"]) <= 3600
            problem = r.json()
            assert (problem["code"], problem["title"], problem["status"]) == (
                "authentication_throttled", "AuthenticationThrottled", 429)
            assert problem["detail"] == ("authentication failed too often from this "
                                         f"address; retry in {r.headers['retry-after']} s")
        assert gone not in disabled.text
        # The log grew by one entry (the window's first failure), not by one per attempt.
        grown = last_seq(srv) - before
        assert 1 <= grown <= 3, grown
        assert srv.cli("audit", "verify").stdout.startswith("audit log intact: ")

        # A clean stop records the window's count; after a restart it is all there.
        srv.stop()
        srv = start_server(tmp_path / "data", url, init=False)
        failures = auth_failures(srv, before, flood + 1, timeout=5)
        assert len(failures) <= 4, failures
        assert last_seq(srv) - before <= 4
        assert attempted(failures) == {"read": flood - signs + 1, "signature.create": signs}
        assert sum(e["details"]["throttled"] for e in failures if e["details"].get("summary")
                   ) + sum(e["details"].get("throttled", 0) for e in failures
                           if not e["details"].get("summary")) == flood + 1 - statuses.count(401)
        assert {e["details"]["client"] for e in failures} == {"127.0.0.1"}
        summaries = [e for e in failures if e["details"].get("summary")]
        assert sum(s["details"].get("disabled_identities", {}).get(gone, 0)
                   for s in summaries) == 1
        assert srv.cli("audit", "verify").stdout.startswith("audit log intact: ")
