"""signgate demo seed: a data directory filled with a month of realistic activity, so that
a new user sees the web console populated in one command (``signgate demo seed && signgate
serve``), and the README's screenshots are taken from it.

Everything goes through the same use cases as the API (projects, keys, identities,
grants, signing, approvals, revocation), in the process, with an injected clock that walks
from 30 days ago to now: the entries are backdated honestly (each recorded at its own
time, in order), so the audit chain and the log verify as any other. The activity is drawn
from a fixed random seed, so the story is always the same one; how many signatures it
holds varies a little with the weekday it is seeded on (weekends are quiet) and the time."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from signgate.cli.output import emit_json, handles_errors, json_option
from signgate.cli.server import DATA_DIR
from signgate.clock import FixedClock
from signgate.config import ADMIN_TOKEN_FILE, load_settings
from signgate.errors import Conflict, SigngateError

DAYS = 30
TOKENS_DIR = "demo-tokens"

# (project, key, algorithm, rotate every N days)
KEYS = [("acme-app", "release", "ecdsa-p256", 90),
        ("acme-app", "nightly", "ed25519", 40),
        ("acme-firmware", "firmware", "rsa-3072", None),
        ("acme-firmware", "firmware-v2", "ecdsa-p384", 180),
        ("tools", "cli", "ecdsa-p256", None)]
# (identity, kind, [(role, scope)])
PEOPLE = [("ci-acme-app", "service", [("signer", "acme-app/release"),
                                      ("signer", "acme-app/nightly")]),
          ("ci-firmware", "service", [("signer", "acme-firmware")]),
          ("ci-tools", "service", [("signer", "tools/cli")]),
          ("alice", "user", [("approver", "tools"), ("auditor", "tools")]),
          ("bob", "user", [("signer", "acme-app/nightly")]),
          ("carol", "user", [("auditor", "acme-app"), ("auditor", "acme-firmware")])]
# Who signs what on a working day (up to twice N; weekends: at most one), the artifacts'
# names and the signature format.
DAILY = [("ci-acme-app", "acme-app/release", 3, "acme-app-{v}.tar.gz", "cms"),
         ("ci-acme-app", "acme-app/release", 1, "acme-app-setup-{v}.exe", "authenticode"),
         ("ci-acme-app", "acme-app/nightly", 3, "acme-app-nightly-{d}.{n}.tar.gz", "raw"),
         ("bob", "acme-app/nightly", 1, "acme-app-hotfix-{d}.{n}.zip", "raw"),
         ("ci-firmware", "acme-firmware/firmware", 3, "fw-{v}.bin", "raw"),
         ("ci-tools", "tools/cli", 2, "signgate-tools-{v}-linux-amd64.tar.gz", "raw")]
# A few requests that are refused, as they happen: a CI job's token used on another
# project, a person trying a key they have no grant on.
REFUSALS = [("ci-tools", "acme-app/release", "acme-app-{v}.tar.gz", "raw"),
            ("bob", "acme-app/release", "acme-app-{v}.tar.gz", "raw"),
            ("ci-acme-app", "acme-firmware/firmware", "fw-{v}.bin", "raw")]
ROTATE_DAY, APPROVALS_DAY, REVOKE_DAY, COMPROMISED_DAY = 12, 18, 24, 22
# No signing in the month's first minutes: all of them stay within the console's 30 days
# for a while after seeding.
SLACK = timedelta(minutes=15)


@dataclass
class Seeded:
    projects: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    identities: dict[str, str] = field(default_factory=dict)  # name -> token file
    signatures: int = 0
    refusals: int = 0
    pending: list[str] = field(default_factory=list)


@click.group("demo")
def demo() -> None:
    """A demonstration data directory for the web console."""


@demo.command("seed")
@DATA_DIR
@json_option
@handles_errors
def seed(data_dir: Path, as_json: bool) -> None:
    """Fill DATA_DIR with 30 days of activity: 3 projects, 5 software keys (one rotated,
    one revoked after a compromise), CI services and people with grants, a few hundred
    signatures, some refusals and a request waiting for approval.

    The entries are recorded at their own (past) times through the same use cases as the
    API, so the audit chain verifies. The identities' tokens are written to
    DATA_DIR/demo-tokens/NAME.token (0600), to sign in to the console as each of them.
    Then: signgate serve, and open http://127.0.0.1:8080/ui/ with the admin token."""
    out = fill(data_dir)
    if as_json:
        emit_json({"data_dir": str(data_dir), "projects": out.projects, "keys": out.keys,
                   "identities": out.identities, "signatures": out.signatures,
                   "refusals": out.refusals, "pending_requests": out.pending})
    else:
        click.echo(f"seeded {data_dir}: {len(out.projects)} projects, {len(out.keys)} keys, "
                   f"{len(out.identities)} identities, {out.signatures} signatures, "
                   f"{out.refusals} refusals, {len(out.pending)} request waiting for approval")
        click.echo(f"tokens of the demo identities: {data_dir / TOKENS_DIR}/NAME.token")
        click.echo(f"next: signgate serve --data-dir {data_dir}, then open "
                   "http://127.0.0.1:8080/ui/ and sign in with "
                   f"{data_dir / ADMIN_TOKEN_FILE}")


def fill(data_dir: Path) -> Seeded:
    """The month of activity, recorded in ``data_dir`` (initialised first, 30 days ago, if
    it is not yet)."""
    from signgate.cli.server import initialise
    from signgate.service.factory import build_context

    now = datetime.now(UTC)
    clock = FixedClock(now)
    if not (data_dir / ADMIN_TOKEN_FILE).exists():
        clock.advance(-timedelta(days=DAYS, minutes=5))
        initialise(data_dir, clock=clock)
        clock.advance(now - clock.now())
    settings = load_settings(data_dir)
    ctx = build_context(settings, clock=clock)
    try:
        start = max(now - timedelta(days=DAYS), _last_entry(ctx, now) + timedelta(seconds=1))
        clock.advance(start - now)
        return _Story(ctx, clock, data_dir, now).run()
    finally:
        ctx.close()


def _last_entry(ctx: Any, now: datetime) -> datetime:
    """When the latest audit entry was recorded (the backdated ones must come after it:
    the log is in time order)."""
    from signgate.service import log

    note = log.checkpoint(ctx).decode()
    size = int(note.split("\n")[1])
    return now - timedelta(days=DAYS) if size == 0 else _entry_time(ctx, size)


def _entry_time(ctx: Any, seq: int) -> datetime:
    from signgate.service import audit
    from signgate.service.context import Caller

    token = (Path(ctx.settings.data_dir) / ADMIN_TOKEN_FILE).read_text().strip()
    last = datetime.min.replace(tzinfo=UTC)
    after = max(seq - 1, 0)
    while True:  # entries committed after the checkpoint's tree too
        page = audit.query(ctx, Caller(token), audit.AuditQuery(after=after, limit=1000))
        if not page.entries:
            return last
        last = max(last, *(e.time for e in page.entries))
        after = page.entries[-1].seq


class _Story:
    """The month, told in time order on the injected clock."""

    def __init__(self, ctx: Any, clock: FixedClock, data_dir: Path, now: datetime) -> None:
        from signgate.service.context import Caller

        self.ctx, self.clock, self.now = ctx, clock, now
        self.data_dir = data_dir
        self.admin = Caller((data_dir / ADMIN_TOKEN_FILE).read_text().strip(), "127.0.0.1")
        self.callers: dict[str, Any] = {}
        self.rng = random.Random(16)
        self.out = Seeded()
        self.version = 0

    def at(self, when: datetime) -> None:
        """Move the clock to ``when`` (never back)."""
        if when > self.clock.now():
            self.clock.advance(when - self.clock.now())

    def run(self) -> Seeded:
        from signgate.service import grants, identities, keys, projects

        start = self.clock.now()
        for project in dict.fromkeys(p for p, *_ in KEYS):
            try:
                projects.create(self.ctx, self.admin, project)
            except Conflict:
                raise Conflict(f"{self.data_dir} already holds project {project}: the demo "
                               "is seeded once (use a new --data-dir)") from None
            self.out.projects.append(project)
        for project, name, algorithm, rotate in KEYS:
            keys.create(self.ctx, self.admin, f"{project}/{name}", algorithm,
                        rotate_every_days=rotate)
            self.out.keys.append(f"{project}/{name}")
        tokens = self.data_dir / TOKENS_DIR
        tokens.mkdir(mode=0o700, exist_ok=True)
        for name, kind, roles in PEOPLE:
            token = identities.create(self.ctx, self.admin, name, kind).token
            for role, scope in roles:
                grants.add(self.ctx, self.admin, name, role, scope)
            path = tokens / f"{name}.token"
            path.touch(mode=0o600)
            path.write_text(token + "\n")
            self.callers[name] = self._caller(token)
            self.out.identities[name] = str(path)
        first_day = start.replace(hour=0, minute=0, second=0, microsecond=0)
        for day in range(DAYS + 1):
            self._day(first_day + timedelta(days=day), day, start)
        self.at(self.now)
        self._pending()
        return self.out

    @staticmethod
    def _caller(token: str) -> Any:
        from signgate.service.context import Caller

        return Caller(token, "10.20.0.7")

    def _day(self, midnight: datetime, day: int, start: datetime) -> None:
        """One day's events at random times (working hours), in order; today only up to
        now."""
        from signgate.service import keys, requests

        events: list[tuple[datetime, str, Any]] = []
        weekend = midnight.weekday() >= 5
        for who, ref, per_day, name, fmt in DAILY:
            if ref == "acme-firmware/firmware" and day >= REVOKE_DAY:
                ref = "acme-firmware/firmware-v2"
            n = self.rng.randint(0, per_day * 2 if not weekend else 1)
            for _ in range(n):
                events.append((self._time(midnight), "sign", (who, ref, name, fmt)))
        if self.rng.random() < 0.45:
            events.append((self._time(midnight), "refuse", self.rng.choice(REFUSALS)))
        if day == REVOKE_DAY + 1:  # the CI job still on the revoked key, refused
            events.append((midnight + timedelta(hours=9), "refuse",
                           ("ci-firmware", "acme-firmware/firmware", "fw-{v}.bin", "raw")))
        noon = midnight + timedelta(hours=12)
        if day == ROTATE_DAY:
            events.append((noon, "admin", lambda: keys.rotate(self.ctx, self.admin,
                                                              "acme-app/release")))
        if day == APPROVALS_DAY:
            events.append((noon, "admin", lambda: keys.set_approval_policy(
                self.ctx, self.admin, "tools/cli", 1, "tools")))
        if day == REVOKE_DAY:
            events.append((noon, "admin", lambda: keys.revoke(
                self.ctx, self.admin, "acme-firmware/firmware",
                midnight - timedelta(days=REVOKE_DAY - COMPROMISED_DAY),
                "demo: the build machine's disk image was found on a public share")))
        events.sort(key=lambda e: e[0])
        for when, kind, what in events:
            if (when < start + SLACK or when > self.now) and kind != "admin":
                continue
            self.at(when)
            if kind == "admin":
                what()
            elif kind == "sign":
                result = self._sign(*what)
                if result is not None and hasattr(result, "request_id"):
                    self.at(when + timedelta(minutes=self.rng.randint(5, 90)))
                    requests.approve(self.ctx, self.callers["alice"], result.request_id,
                                     "release checklist done")
                    self.out.signatures += 1
            else:
                self._sign(*what)

    def _time(self, midnight: datetime) -> datetime:
        return midnight + timedelta(hours=self.rng.uniform(7, 20))

    def _sign(self, who: str, ref: str, name: str, fmt: str = "raw") -> Any:
        """A signing by ``who``; a refusal is recorded by the service and counted here."""
        from signgate.service import signing
        from signgate.service.sign_request import SignRequest

        self.version += 1
        artifact = name.format(v=f"1.{self.version // 40}.{self.version % 40}",
                               d=self.clock.now().strftime("%Y%m%d"), n=self.version)
        project, key = ref.split("/")
        digest = hashlib.sha256(artifact.encode() + self.rng.randbytes(8)).hexdigest()
        try:
            result = signing.sign(self.ctx, SignRequest(
                self.callers[who], project, key, "sha256", digest, artifact,
                {"pipeline": f"build-{self.version}"}, format=fmt))
        except SigngateError:
            self.out.refusals += 1
            return None
        if not hasattr(result, "request_id"):
            self.out.signatures += 1
        return result

    def _pending(self) -> None:
        """A request waiting for alice's approval, made now (so it has not expired)."""
        result = self._sign("ci-tools", "tools/cli", "signgate-tools-{v}-darwin-arm64.tar.gz")
        if result is not None and hasattr(result, "request_id"):
            self.out.pending.append(result.request_id)
