"""Two real witnesses (``signgate witness serve`` processes on free ports) driven by a
test-side log built from the transparency core: they cosign consistent growth and refuse
stale sizes, forged proofs, forks, rollbacks and strangers, and keep their state across a
restart. Requests go through the client call the log will use (``service/witness_client.py``) and,
where the exact answer matters (status, content type, body), through plain httpx."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from signgate.errors import Conflict, ErrorCode, InvalidInput, NotFound, VerificationFailed
from signgate.service.witness_client import add_checkpoint
from signgate.transparency.checkpoint import Checkpoint, sign_checkpoint
from signgate.transparency.merkle import (
    MemoryHashStore,
    leaf_hash,
    prove_record,
    prove_tree,
    tree_hash,
)
from signgate.transparency.note import Ed25519NoteSigner, open_note
from signgate.transparency.proof import TlogProof, verify_proof
from signgate.transparency.witness_protocol import (
    SIZE_CONTENT_TYPE,
    add_signatures,
    format_add_checkpoint,
)
from tests.support.server import SIGNGATE, free_port
from tests.support.witness import Witness

_origins = itertools.count()


@dataclass
class TestLog:
    """A log on the test side: entries, stored hashes, and a key that signs checkpoints."""

    __test__ = False

    origin: str
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    store: MemoryHashStore = field(default_factory=MemoryHashStore)
    entries: list[bytes] = field(default_factory=list)

    @property
    def signer(self) -> Ed25519NoteSigner:
        public = self.key.public_key().public_bytes(serialization.Encoding.Raw,
                                                    serialization.PublicFormat.Raw)
        return Ed25519NoteSigner(self.origin, public, self.key)

    def grow(self, count: int, tag: str = "entry") -> None:
        for _ in range(count):
            entry = f"{tag} {len(self.entries)}".encode()
            self.entries.append(entry)
            self.store.append(entry)

    def checkpoint(self, size: int | None = None) -> bytes:
        size = self.store.size if size is None else size
        return sign_checkpoint(Checkpoint(self.origin, size, tree_hash(size, self.store)),
                               [self.signer])

    def proof(self, old: int, new: int | None = None) -> list[bytes]:
        return prove_tree(self.store.size if new is None else new, old, self.store)

    def fork(self, at: int) -> TestLog:
        """The same log key and origin with entry ``at`` rewritten: what an insider who
        owns the server and the log key can produce."""
        forked = TestLog(self.origin, self.key)
        for i, entry in enumerate(self.entries):
            forked.entries.append(b"rewritten" if i == at else entry)
            forked.store.append(forked.entries[-1])
        return forked


@pytest.fixture(scope="module")
def witnesses(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Witness]]:
    base = tmp_path_factory.mktemp("witnesses")
    pair = [Witness(base / "w1", "w1.witness.test"), Witness(base / "w2", "w2.witness.test")]
    try:
        for w in pair:
            w.start()
        yield pair
    finally:
        for w in pair:
            w.stop()


def new_log(witnesses: list[Witness]) -> TestLog:
    """A log with a fresh origin, added to the running witnesses through the CLI."""
    log = TestLog(f"log{next(_origins)}.signgate.test/{os.getpid()}")
    for w in witnesses:
        added = w.cli("add-log", "--origin", log.origin, "--key",
                      log.signer.verifier.verifier_key, "--json")
        assert added.returncode == 0, added.stderr
    return log


def post(w: Witness, body: bytes) -> httpx.Response:
    return httpx.post(f"{w.url}/add-checkpoint", content=body, timeout=30)


def test_consistent_growth_is_cosigned_by_both(witnesses: list[Witness]) -> None:
    log = new_log(witnesses)
    log.grow(5)
    cosigs = [add_checkpoint(w.url, w.key, 0, [], log.checkpoint()) for w in witnesses]
    assert [len(c) for c in cosigs] == [1, 1]
    for size in (6, 13, 256, 300):
        old = log.store.size
        log.grow(size - old)
        note = log.checkpoint()
        cosigs = [add_checkpoint(w.url, w.key, old, log.proof(old), note) for w in witnesses]
    # the same checkpoint again: cosigned again (old size = size, same root)
    again = [add_checkpoint(w.url, w.key, 300, [], note) for w in witnesses]
    assert [len(c) for c in again] == [1, 1]
    # a receipt with both cosignatures verifies with a quorum of two
    cosigned = add_signatures(note, [s for c in cosigs for s in c])
    receipt = TlogProof(42, tuple(prove_record(300, 42, log.store)), cosigned)
    done = verify_proof(receipt, leaf_hash(log.entries[42]), [log.signer.verifier],
                        log.origin, [w.key for w in witnesses], min_cosignatures=2)
    assert set(done.cosigned_by) == {w.name for w in witnesses}
    # each serves its latest cosigned checkpoint, with the log's signature and its own
    for w in witnesses:
        answer = httpx.get(f"{w.url}/{hashlib.sha256(log.origin.encode()).hexdigest()}"
                           "/checkpoint", timeout=10)
        assert answer.status_code == 200
        served = open_note(answer.content, [log.signer.verifier, w.key])
        assert served.text.split("\n")[1] == "300"
        assert {s.name for s in served.signatures} == {log.origin, w.name}


def test_a_stale_old_size_gets_409_with_the_witness_size(witnesses: list[Witness]) -> None:
    log = new_log(witnesses)
    log.grow(7)
    for w in witnesses:
        add_checkpoint(w.url, w.key, 0, [], log.checkpoint())
    log.grow(3)
    for w in witnesses:
        answer = post(w, format_add_checkpoint(0, [], log.checkpoint()))
        assert answer.status_code == 409
        assert answer.headers["content-type"] == SIZE_CONTENT_TYPE
        assert answer.content == b"7\n"
        with pytest.raises(Conflict) as exc:
            add_checkpoint(w.url, w.key, 4, log.proof(4), log.checkpoint())
        assert exc.value.code == ErrorCode.WITNESS_SIZE_MISMATCH
        assert exc.value.details["size"] == 7
        # the client learns the size and catches up
        add_checkpoint(w.url, w.key, 7, log.proof(7), log.checkpoint())


def test_a_forged_proof_gets_422_and_changes_nothing(witnesses: list[Witness]) -> None:
    log = new_log(witnesses)
    log.grow(12)
    for w in witnesses:
        add_checkpoint(w.url, w.key, 0, [], log.checkpoint())
    log.grow(9)
    proof = log.proof(12)
    for i in range(len(proof)):
        forged = [*proof]
        forged[i] = bytes([forged[i][0] ^ 1]) + forged[i][1:]
        for w in witnesses:
            answer = post(w, format_add_checkpoint(12, forged, log.checkpoint()))
            assert answer.status_code == 422, answer.text
    for w in witnesses:
        with pytest.raises(VerificationFailed) as exc:
            add_checkpoint(w.url, w.key, 12, proof[:-1], log.checkpoint())
        assert exc.value.code == ErrorCode.BAD_MERKLE_PROOF
        assert post(w, format_add_checkpoint(0, [], log.checkpoint())).content == b"12\n"
        add_checkpoint(w.url, w.key, 12, proof, log.checkpoint())


def test_forks_and_rollbacks_are_refused(witnesses: list[Witness]) -> None:
    log = new_log(witnesses)
    log.grow(20)
    for w in witnesses:
        add_checkpoint(w.url, w.key, 0, [], log.checkpoint())
    # (a) same size, another root, validly signed by the log key
    forked = log.fork(at=3)
    for w in witnesses:
        answer = post(w, format_add_checkpoint(20, [], forked.checkpoint()))
        assert answer.status_code == 422
    # (b) a rewritten history that grew on: its own consistency proof is valid for the
    # forked tree but not from the root the witness cosigned
    forked.grow(10, tag="after")
    assert forked.store.root() != log.store.root()
    for w in witnesses:
        with pytest.raises(VerificationFailed) as exc:
            add_checkpoint(w.url, w.key, 20, forked.proof(20), forked.checkpoint())
        assert exc.value.code == ErrorCode.BAD_MERKLE_PROOF
    # (c) deleting the newest entries: a smaller checkpoint is a rollback
    rolled_back = log.checkpoint(15)
    for w in witnesses:
        assert post(w, format_add_checkpoint(20, [], rolled_back)).status_code == 400
        answer = post(w, format_add_checkpoint(15, [], rolled_back))
        assert answer.status_code == 409
        assert answer.content == b"20\n"
    # the honest log still grows
    log.grow(1)
    for w in witnesses:
        add_checkpoint(w.url, w.key, 20, log.proof(20), log.checkpoint())


def test_strangers_and_malformed_requests(witnesses: list[Witness]) -> None:
    log = new_log(witnesses)
    log.grow(3)
    unknown = TestLog("never-added.signgate.test/log")
    unknown.grow(3)
    impostor = TestLog(log.origin)  # the right origin and name, another key
    impostor.grow(3)
    for w in witnesses:
        assert post(w, format_add_checkpoint(0, [], unknown.checkpoint())).status_code == 404
        with pytest.raises(NotFound):
            add_checkpoint(w.url, w.key, 0, [], unknown.checkpoint())
        assert post(w, format_add_checkpoint(0, [], impostor.checkpoint())).status_code == 403
        # a trusted key's signature that fails is 403 too
        good = log.checkpoint()
        broken = good[:-10] + (b"A" if good[-10:-9] != b"A" else b"B") + good[-9:]
        assert post(w, format_add_checkpoint(0, [], broken)).status_code == 403
        for body in (b"", b"old 0\n", b"hello\n\n" + good, b"old 00\n\n" + good,
                     format_add_checkpoint(0, [], good).replace(b"\n\n", b"\nAAAA\n\n")):
            assert post(w, body).status_code == 400, body
        with pytest.raises(InvalidInput):
            add_checkpoint(w.url, w.key, 0, [], b"not a note\n")
        # a non-empty proof from the empty tree
        assert post(w, format_add_checkpoint(0, [bytes(32)], good)).status_code == 422
        # nothing of this was cosigned
        assert post(w, format_add_checkpoint(1, [], good)).content == b"0\n"


def test_state_survives_a_restart(witnesses: list[Witness]) -> None:
    log = new_log(witnesses)
    log.grow(40)
    w = witnesses[0]
    add_checkpoint(w.url, w.key, 0, [], log.checkpoint())
    key_before = w.key.verifier_key
    w.stop()
    w.start()
    assert w.key.verifier_key == key_before
    answer = post(w, format_add_checkpoint(0, [], log.checkpoint()))
    assert (answer.status_code, answer.content) == (409, b"40\n")
    log.grow(2)
    add_checkpoint(w.url, w.key, 40, log.proof(40), log.checkpoint())
    mode = stat.S_IMODE((w.data_dir / "witness.key").stat().st_mode)
    assert mode == 0o600
    assert not any(p.name.endswith(".tmp") for p in (w.data_dir / "state").iterdir())


def test_cli_json_and_errors(witnesses: list[Witness]) -> None:
    w = witnesses[1]
    shown = w.cli("public-key", "--json")
    assert shown.returncode == 0
    data = json.loads(shown.stdout)
    assert data["verifier_key"] == w.key.verifier_key
    assert data["name"] == w.name
    bad = w.cli("add-log", "--origin", "x.test/log", "--key", "not-a-key")
    assert bad.returncode == 7
    assert bad.stderr.startswith("signgate: not a note verifier key")
    cosigner_key = w.cli("add-log", "--origin", "x.test/log", "--key", w.key.verifier_key)
    assert cosigner_key.returncode == 7  # a witness key is no log key (type 0x04)
    renamed = subprocess.run([SIGNGATE, "witness", "public-key", "--data-dir",
                              str(w.data_dir), "--name", "other.name"],
                             capture_output=True, text=True, timeout=60, check=False)
    assert renamed.returncode == 10


README = Path(__file__).resolve().parents[2] / "README.md"


def readme_witness_steps() -> list[tuple[str, list[str]]]:
    """The README's Witnesses block: each command with the lines shown under it."""
    text = README.read_text()
    section = text[text.index("### Witnesses"):]
    block = section[section.index("```sh\n") + len("```sh\n"):]
    steps: list[tuple[str, list[str]]] = []
    for line in block[:block.index("```")].splitlines():
        if line.startswith("#   "):
            steps[-1][1].append(line[4:])
        elif line.strip() and not line.startswith("#"):
            steps.append((line, []))
    return steps


def test_the_readme_witness_commands_work_as_written(tmp_path: Path) -> None:
    steps = readme_witness_steps()
    assert [c.split()[:3] for c, _ in steps] == [
        ["signgate", "witness", "public-key"], ["signgate", "witness", "add-log"],
        ["signgate", "witness", "serve"]]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SIGNGATE_")},
           "PATH": f"{Path(SIGNGATE).parent}:{os.environ['PATH']}"}
    for command, shown in steps[:-1]:
        done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, text=True,
                              capture_output=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        for want, got in zip(shown, done.stdout.splitlines(), strict=True):
            prefix = want.removesuffix("…")
            assert got.startswith(prefix) if want.endswith("…") else got == want
    serve, _ = steps[-1]
    port = free_port()
    process = subprocess.Popen(["bash", "-c", "exec " + serve.replace("8380", str(port))],
                               cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                httpx.get(url + "/", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        # The README's log is configured: a checkpoint of it signed by another key is
        # refused as unsigned (403), one of an unknown origin as unknown (404).
        stranger = TestLog("signgate.example.com/log")
        stranger.grow(1)
        assert post_url(url, format_add_checkpoint(0, [], stranger.checkpoint())) == 403
        other = TestLog("other.example.com/log")
        other.grow(1)
        assert post_url(url, format_add_checkpoint(0, [], other.checkpoint())) == 404
    finally:
        process.terminate()
        process.wait(10)
    assert stat.S_IMODE((tmp_path / "witness-data" / "witness.key").stat().st_mode) == 0o600


def post_url(url: str, body: bytes) -> int:
    return httpx.post(url + "/add-checkpoint", content=body, timeout=30).status_code


def test_concurrent_requests_from_one_size_cosign_exactly_one(
        witnesses: list[Witness]) -> None:
    """Checking the old size and persisting the new state are one step (the rollback race
    of the spec): of several checkpoints sent at once from the same old size, exactly one
    is cosigned and the others get 409 with that one's size."""
    from concurrent.futures import ThreadPoolExecutor

    log = new_log(witnesses)
    log.grow(4)
    w = witnesses[1]
    add_checkpoint(w.url, w.key, 0, [], log.checkpoint())
    log.grow(12)
    bodies = [format_add_checkpoint(4, log.proof(4, size), log.checkpoint(size))
              for size in range(5, 17)]
    with ThreadPoolExecutor(len(bodies)) as pool:
        answers = list(pool.map(lambda body: post(w, body), bodies))
    winners = [i for i, a in enumerate(answers) if a.status_code == 200]
    assert len(winners) == 1, [a.status_code for a in answers]
    size = 5 + winners[0]
    assert all(a.status_code == 409 and a.content == f"{size}\n".encode()
               for i, a in enumerate(answers) if i != winners[0])
