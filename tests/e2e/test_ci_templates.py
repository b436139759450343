"""The CI templates, run as their CI systems run them, against a real 'signgate serve'
(SQLite): action.yml's run steps with bash in a GitHub-shaped environment, whose token
request URL is a real HTTP endpoint of this module answering with a token minted by
tests/support/oidc.py's issuer for the audience asked; and the GitLab template's script with
sh and GitLab-shaped variables (its id_tokens token minted by a GitLab-shaped issuer). The
signed files verify with openssl and tampered copies do not, the receipts and the outputs
are there, and the audit log names the workflow's repository or the GitLab project."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from tests.conftest import unique
from tests.support.oidc import AUDIENCE, Issuer, issuer
from tests.support.server import Server, openssl

REPO = Path(__file__).resolve().parents[2]
ACTION = REPO / "action.yml"
TEMPLATE = REPO / "ci" / "gitlab" / "signgate.gitlab-ci.yml"
SIGN_SH = REPO / "ci" / "sign.sh"
BIN = Path(sys.executable).parent  # the test venv's signgate and python3 come first on PATH
REQUEST_TOKEN = "ghs_the-runners-request-token"
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


@dataclass
class Setup:
    server: Server
    key: str
    github: str  # the issuer names on signgate
    gitlab: str
    gitlab_issuer: Issuer
    identity: str
    api_token: str


@pytest.fixture(scope="module")
def github_issuer() -> Iterator[Issuer]:
    with issuer("RS256") as iss:
        yield iss


@pytest.fixture(scope="module")
def setup(sqlite_server: Server, github_issuer: Issuer) -> Iterator[Setup]:
    """A key; signer on it for GitHub jobs of repository 123456 on main (the audience is the
    server's URL, the action's default), for GitLab jobs of project 4242 on a protected
    ref (audience AUDIENCE), and for a service identity with an API token."""
    server = sqlite_server
    with issuer("ES256") as gl:
        github, gitlab = unique("github"), unique("gitlab")
        server.cli("oidc", "issuer", "add", github, "--issuer", github_issuer.url,
                   "--audience", server.url, "--jwks-url", github_issuer.jwks_url)
        server.cli("oidc", "issuer", "add", gitlab, "--issuer", gl.url,
                   "--audience", AUDIENCE, "--jwks-url", gl.jwks_url)
        project = unique("acme")
        key = f"{project}/release"
        server.cli("project", "create", project)
        server.cli("key", "create", key)
        server.cli("grant", "add", "--oidc", github, "--claim", "repository_id=123456",
                   "--claim", "ref=refs/heads/main", "signer", key)
        server.cli("grant", "add", "--oidc", gitlab, "--claim", "project_id=4242",
                   "--claim", "ref_protected=true", "signer", key)
        identity = unique("ci-build")
        api_token = server.new_identity(identity)
        server.cli("grant", "add", identity, "signer", key)
        yield Setup(server, key, github, gitlab, gl, identity, api_token)


class TokenEndpoint:
    """GitHub's OIDC token request, for real: GET ACTIONS_ID_TOKEN_REQUEST_URL&audience=A
    with 'Authorization: bearer ACTIONS_ID_TOKEN_REQUEST_TOKEN' answers {"value": JWT}, a
    GitHub-shaped token for audience A; another bearer gets 401."""

    def __init__(self, iss: Issuer) -> None:
        self.requests: list[tuple[str, list[str]]] = []  # (authorization, audiences)
        self.minted: list[str] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                audiences = parse_qs(url.query).get("audience", [])
                authorization = self.headers.get("Authorization", "")
                endpoint.requests.append((authorization, audiences))
                if (url.path != "/_apis/token" or len(audiences) != 1
                        or authorization.lower() != f"bearer {REQUEST_TOKEN}".lower()):
                    self.send_error(401)
                    return
                token = iss.mint(iss.github(aud=audiences[0]))
                endpoint.minted.append(token)
                data = json.dumps({"count": 1, "value": token}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{port}/_apis/token?api-version=2.0"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def endpoint(github_issuer: Issuer) -> Iterator[TokenEndpoint]:
    e = TokenEndpoint(github_issuer)
    try:
        yield e
    finally:
        e.close()


def workspace(tmp_path: Path) -> Path:
    """A checkout with build outputs: two to sign, one not matched, a directory."""
    ws = tmp_path / "repo"
    (ws / "dist" / "old.tar.gz").mkdir(parents=True)  # a directory: never signed
    (ws / "dist" / "app-1.0.tar.gz").write_bytes(b"release 1.0 of acme/app\n" * 100)
    (ws / "dist" / "notes 1.0.txt").write_text("what changed in 1.0\n")
    (ws / "dist" / "app-1.0.whl").write_bytes(b"a wheel not asked for")
    return ws


@dataclass
class ActionRun:
    returncode: int
    logs: dict[str, str] = field(default_factory=dict)  # step name -> stdout and stderr
    outputs: dict[str, str] = field(default_factory=dict)  # the action's outputs

    @property
    def log(self) -> str:
        return "".join(self.logs.values())


def _commands(path: Path) -> list[str]:
    """The lines of a workflow-command file (GITHUB_OUTPUT, GITHUB_ENV, GITHUB_PATH)."""
    return path.read_text().splitlines() if path.exists() else []


def run_action(ws: Path, tmp_path: Path, inputs: Mapping[str, str],
               env: Mapping[str, str] | None = None) -> ActionRun:
    """action.yml's run steps in order, as the runner runs a composite action: each step's
    env: map evaluated (inputs with their defaults, earlier steps' outputs), its script run
    with 'bash --noprofile --norc -eo pipefail' in the workspace, GITHUB_ENV and GITHUB_PATH
    applied for the next steps. The uses: step (upload-artifact) is not run."""
    action = yaml.safe_load(ACTION.read_text())
    context = {f"inputs.{name}": str(spec.get("default", ""))
               for name, spec in action["inputs"].items()}
    context.update({f"inputs.{name}": value for name, value in inputs.items()})
    runner = tmp_path / "runner"
    (runner / "temp").mkdir(parents=True)
    job_env = {k: v for k, v in os.environ.items()
               if not k.startswith(("SIGNGATE_", "GITHUB_", "ACTIONS_", "RUNNER_"))}
    job_env.update(PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", HOME=str(runner / "home"),
                   XDG_CACHE_HOME=str(runner / "cache"), CI="true", GITHUB_ACTIONS="true",
                   GITHUB_WORKSPACE=str(ws), GITHUB_ACTION_PATH=str(REPO),
                   GITHUB_REPOSITORY="acme/app", RUNNER_TEMP=str(runner / "temp"))
    job_env.update(env or {})
    result = ActionRun(0)
    for n, step in enumerate(action["runs"]["steps"]):
        if "uses" in step:
            continue
        files = {name: runner / f"{name.lower()}-{n}"
                 for name in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_PATH")}
        step_env = {**job_env, **{k: str(v) for k, v in files.items()},
                    **{k: EXPRESSION.sub(lambda m: context[m.group(1)], str(v))
                       for k, v in step.get("env", {}).items()}}
        script = runner / f"step-{n}.sh"
        script.write_text(step["run"])
        proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                              cwd=ws, env=step_env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=120, check=False)
        result.logs[step["name"]] = proc.stdout
        if proc.returncode != 0:
            result.returncode = proc.returncode
            return result
        for line in _commands(files["GITHUB_OUTPUT"]):
            name, _, value = line.partition("=")
            context[f"steps.{step.get('id')}.outputs.{name}"] = value
        for line in _commands(files["GITHUB_ENV"]):
            name, _, value = line.partition("=")
            job_env[name] = value
        for line in _commands(files["GITHUB_PATH"]):
            job_env["PATH"] = f"{line}{os.pathsep}{job_env['PATH']}"
    result.outputs = {name: EXPRESSION.sub(lambda m: context[m.group(1)], spec["value"])
                      for name, spec in action["outputs"].items()}
    return result


def openssl_verified(setup: Setup, artifact: Path, signature: Path, tmp_path: Path) -> bool:
    pub = tmp_path / "release.pem"
    if not pub.exists():
        pub.write_text(setup.server.cli("key", "public", setup.key).stdout)
    proc = subprocess.run([openssl(), "dgst", "-sha256", "-verify", str(pub), "-signature",
                           str(signature), str(artifact)],
                          capture_output=True, text=True, check=False)
    return proc.returncode == 0 and proc.stdout.strip() == "Verified OK"


def tampered(artifact: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "tampered" / artifact.name
    copy.parent.mkdir(exist_ok=True)
    copy.write_bytes(artifact.read_bytes() + b"\n")
    return copy


def signatures(setup: Setup) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = setup.server.cli(
        "audit", "log", "--key", setup.key, "--action", "signature.create", "--json").json()
    return entries


def test_the_action_is_composite_and_its_run_steps_read_only_their_env() -> None:
    action = yaml.safe_load(ACTION.read_text())
    assert action["runs"]["using"] == "composite"
    inputs = action["inputs"]
    assert [n for n, spec in inputs.items() if spec.get("required")] == ["url", "key", "files"]
    assert {n: inputs[n]["default"] for n in ("format", "token", "audience", "version",
                                              "install", "receipts-name", "upload")} == {
        "format": "raw", "token": "", "audience": "", "version": "", "install": "true",
        "receipts-name": "signgate-receipts", "upload": "true"}
    steps = action["runs"]["steps"]
    runs = [s for s in steps if "run" in s]
    assert len(runs) == 2
    for step in runs:
        assert step["shell"] == "bash"
        assert "${{" not in step["run"], step["name"]
        for value in step.get("env", {}).values():
            assert set(EXPRESSION.findall(str(value))) <= {f"inputs.{n}" for n in inputs}
    assert [s.get("id") for s in runs] == [None, "sign"]
    assert steps[-1] == {
        "name": "Upload the receipts", "if": "inputs.upload == 'true'",
        "uses": "actions/upload-artifact@v4",
        "with": {"name": "${{ inputs.receipts-name }}",
                 "path": "${{ steps.sign.outputs.receipts-dir }}",
                 "if-no-files-found": "error"}}
    assert {n: o["value"] for n, o in action["outputs"].items()} == {
        "receipts-dir": "${{ steps.sign.outputs.receipts-dir }}",
        "signed-count": "${{ steps.sign.outputs.signed-count }}"}


def test_the_action_signs_with_the_jobs_oidc_token(setup: Setup, endpoint: TokenEndpoint,
                                                   tmp_path: Path) -> None:
    server = setup.server
    ws = workspace(tmp_path)
    before = len(signatures(setup))
    run = run_action(ws, tmp_path, {"url": server.url, "key": setup.key, "install": "false",
                                    "files": "dist/*.tar.gz\ndist/*.txt"},
                     {"ACTIONS_ID_TOKEN_REQUEST_URL": endpoint.url,
                      "ACTIONS_ID_TOKEN_REQUEST_TOKEN": REQUEST_TOKEN})
    assert run.returncode == 0, run.logs
    # One token request, with the runner's bearer token, for the default audience (the URL).
    assert endpoint.requests == [(f"bearer {REQUEST_TOKEN}", [server.url])]
    assert "signed 2 of 2 files" in run.logs["Sign"]

    receipts = tmp_path / "runner" / "temp" / "signgate-receipts"
    assert run.outputs == {"receipts-dir": str(receipts), "signed-count": "2"}
    summary = json.loads((receipts / "signgate-receipts.json").read_text())
    assert [r["file"] for r in summary] == ["dist/app-1.0.tar.gz", "dist/notes 1.0.txt"]
    for name in ("app-1.0.tar.gz", "notes 1.0.txt"):
        artifact = ws / "dist" / name
        for suffix in (".sig", ".sig.tsr", ".sig.proof"):  # beside the file, and copied
            assert (ws / "dist" / (name + suffix)).exists()
            assert (receipts / "dist" / (name + suffix)).read_bytes() == \
                (ws / "dist" / (name + suffix)).read_bytes()
        signature = receipts / "dist" / (name + ".sig")
        assert openssl_verified(setup, artifact, signature, tmp_path)
        assert not openssl_verified(setup, tampered(artifact, tmp_path), signature, tmp_path)
    assert not (ws / "dist" / "app-1.0.whl.sig").exists()
    assert not (ws / "dist" / "old.tar.gz.sig").exists()
    # The receipt in the receipts directory verifies offline against the log's key.
    log_key = server.cli("log", "public-key").stdout.split("verifier key: ")[1].split()[0]
    proof = receipts / "dist" / "app-1.0.tar.gz.sig.proof"
    checked = server.cli("log", "verify-receipt", str(proof), "--artifact",
                         str(ws / "dist" / "app-1.0.tar.gz"), "--log-key", log_key)
    assert "app-1.0.tar.gz: in the log at index" in checked.stdout

    entries = signatures(setup)[before:]
    assert [e["subject"] for e in entries] == ["app-1.0.tar.gz", "notes 1.0.txt"]
    for entry in entries:
        assert entry["outcome"] == "allowed"
        assert entry["actor"] == f"oidc-{setup.github}"
        assert entry["details"]["oidc"]["claims"]["repository"] == "acme/app"
    # The OIDC token is in the step's output only in the line that masks it, and in no
    # file the action leaves.
    (token,) = endpoint.minted
    assert [line for line in run.log.splitlines() if token.split(".")[2] in line] == \
        [f"::add-mask::{token}"]
    for path in [*(tmp_path / "runner").rglob("*"), *ws.rglob("*")]:
        assert not path.is_file() or token.split(".")[2].encode() not in path.read_bytes()


def test_the_action_with_a_token_input_needs_no_oidc(setup: Setup, tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    before = len(signatures(setup))
    run = run_action(ws, tmp_path, {"url": setup.server.url, "key": setup.key,
                                    "install": "false", "files": "dist/app-*.tar.gz",
                                    "token": setup.api_token, "receipts-name": "signed"})
    assert run.returncode == 0, run.logs
    assert "::add-mask::" not in run.log
    assert run.outputs == {"receipts-dir": str(tmp_path / "runner" / "temp" / "signed"),
                           "signed-count": "1"}
    artifact = ws / "dist" / "app-1.0.tar.gz"
    signature = Path(run.outputs["receipts-dir"]) / "dist" / "app-1.0.tar.gz.sig"
    assert openssl_verified(setup, artifact, signature, tmp_path)
    assert not openssl_verified(setup, tampered(artifact, tmp_path), signature, tmp_path)
    (entry,) = signatures(setup)[before:]
    assert entry["actor"] == setup.identity
    assert "oidc" not in entry["details"]


def test_the_action_fails_with_one_line(setup: Setup, tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    before = len(signatures(setup))
    common = {"url": setup.server.url, "key": setup.key, "install": "false",
              "token": setup.api_token}
    # A pattern that matches nothing: nothing is signed.
    run = run_action(ws, tmp_path / "1", {**common, "files": "dist/*.tar.gz dist/*.zip"})
    assert run.returncode == 7
    assert run.logs["Sign"].splitlines() == [f"signgate: no file matches 'dist/*.zip' (in {ws})"]
    assert not (ws / "dist" / "app-1.0.tar.gz.sig").exists()
    assert len(signatures(setup)) == before
    # No token input and no id-token permission.
    run = run_action(ws, tmp_path / "2", {**common, "token": "", "files": "dist/*"})
    assert run.returncode == 3
    assert run.logs["Sign"].splitlines() == [
        "signgate: no OIDC token: give the job 'permissions: id-token: write', "
        "or pass the token input"]
    # signgate refuses (a key with no grant): its own line, the exit code passed on.
    nightly = f"{setup.key.split('/')[0]}/nightly"
    run = run_action(ws, tmp_path / "3", {**common, "files": "dist/*.txt", "key": nightly})
    assert run.returncode == 4, run.logs
    assert run.logs["Sign"].splitlines() == [
        f"signgate: identity {setup.identity} may not sign with {nightly}: no signer grant"]
    # install: false (the tests never pip install) and no signgate on PATH.
    run = run_action(ws, tmp_path / "4", {**common, "files": "dist/*"},
                     {"PATH": "/usr/bin:/bin"})
    assert run.returncode == 10
    assert run.logs["Install the signgate client"].splitlines() == [
        "signgate: install is 'false' but signgate is not on PATH"]


def test_the_gitlab_template_signs_with_the_jobs_id_token(setup: Setup,
                                                          tmp_path: Path) -> None:
    template = yaml.safe_load(TEMPLATE.read_text())
    job = template[".signgate-sign"]
    assert job["id_tokens"] == {"SIGNGATE_ID_TOKEN": {"aud": "$SIGNGATE_AUDIENCE"}}
    assert job["variables"] == {"SIGNGATE_AUDIENCE": "$SIGNGATE_URL", "SIGNGATE_FORMAT": "raw",
                                "SIGNGATE_RECEIPTS_DIR": "signgate-receipts",
                                "SIGNGATE_PIP_SPEC": "signgate"}
    assert job["artifacts"]["paths"] == ["signgate-receipts/"]
    # The template carries ci/sign.sh as its script, verbatim (without the #! line).
    assert job["script"] == [SIGN_SH.read_text().split("\n", 1)[1]], \
        "paste ci/sign.sh (without its #! line) into the template's script, indented 6 spaces"

    server, gl = setup.server, setup.gitlab_issuer
    ws = workspace(tmp_path)
    before = len(signatures(setup))
    # The job's variables: the template's, then the including job's (a cms signature here),
    # then GitLab's own and the id_tokens token.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGNGATE_", "CI_"))}
    env.update(job["variables"])
    env.update(PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", HOME=str(tmp_path / "home"),
               XDG_CACHE_HOME=str(tmp_path / "cache"), SIGNGATE_URL=server.url,
               SIGNGATE_AUDIENCE=AUDIENCE, SIGNGATE_KEY=setup.key,
               SIGNGATE_FILES="dist/*.tar.gz", SIGNGATE_FORMAT="cms", SIGNGATE_PIP_SPEC="",
               CI="true", GITLAB_CI="true", CI_PROJECT_DIR=str(ws), CI_PROJECT_PATH="acme/app",
               SIGNGATE_ID_TOKEN=gl.mint(gl.gitlab(aud=AUDIENCE)))
    log = ""
    for command in [*job["before_script"], *job["script"]]:
        proc = subprocess.run(["sh", "-c", command], cwd=ws, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=120, check=False)
        log += proc.stdout
        assert proc.returncode == 0, log
    assert "signed 1 of 1 files; receipts in signgate-receipts/" in log
    assert env["SIGNGATE_ID_TOKEN"].split(".")[2] not in log

    receipts = ws / "signgate-receipts"
    assert sorted(p.relative_to(receipts).as_posix() for p in receipts.rglob("*.*")) == [
        "dist/app-1.0.tar.gz.p7s", "dist/app-1.0.tar.gz.p7s.proof", "signgate-receipts.json"]
    root = tmp_path / "root.pem"
    root.write_text(server.cli("ca", "cert").stdout)
    artifact = ws / "dist" / "app-1.0.tar.gz"

    def cms_verified(content: Path) -> bool:
        proc = subprocess.run([openssl(), "cms", "-verify", "-binary", "-inform", "DER",
                               "-in", str(receipts / "dist" / "app-1.0.tar.gz.p7s"),
                               "-content", str(content), "-CAfile", str(root),
                               "-purpose", "any", "-out", os.devnull],
                              capture_output=True, text=True, check=False)
        return proc.returncode == 0 and "CMS Verification successful" in proc.stderr

    assert cms_verified(artifact)
    assert not cms_verified(tampered(artifact, tmp_path))
    (entry,) = signatures(setup)[before:]
    assert entry["actor"] == f"oidc-{setup.gitlab}"
    assert entry["details"]["format"] == "cms"
    assert entry["details"]["oidc"]["claims"]["project_path"] == "acme/app"


def test_the_examples_in_the_readme_and_docs_use_what_the_templates_define() -> None:
    """Every `uses: OWNER/signgate@vX` step of the README and docs/github-actions.md passes
    the required inputs and no other than action.yml's; every job that extends the GitLab
    template sets the variables its script requires and includes the template's path."""
    inputs = yaml.safe_load(ACTION.read_text())["inputs"]
    required = {n for n, spec in inputs.items() if spec.get("required")}
    uses, extends = 0, 0
    for doc in ("README.md", "docs/github-actions.md", "docs/gitlab-ci.md"):
        for block in re.findall(r"```yaml\n(.*?)```", (REPO / doc).read_text(), re.S):
            parsed = yaml.safe_load(block)
            steps = parsed if isinstance(parsed, list) else [
                s for job in parsed.get("jobs", {}).values() for s in job["steps"]]
            for step in steps:
                if step.get("uses") == "OWNER/signgate@vX":
                    uses += 1
                    assert required <= set(step["with"]) <= set(inputs), (doc, step)
            if isinstance(parsed, dict) and "include" in parsed:
                extends += 1
                assert any(str(i.get("remote", "")).endswith("/vX/ci/gitlab/signgate.gitlab-ci.yml")
                           for i in parsed["include"]), doc
                job = next(j for j in parsed.values()
                           if isinstance(j, dict) and j.get("extends") == ".signgate-sign")
                assert {"SIGNGATE_URL", "SIGNGATE_KEY", "SIGNGATE_FILES"} <= set(job["variables"])
    assert (uses, extends) == (2, 2)
