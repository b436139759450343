"""Independent-build agreement, decided: what one builder's submission of a release's
digest does. Pure: the service reads the release's request and its submissions, these
functions decide, the service writes.

A key whose policy requires N builders signs an artifact only once N distinct identities
(say, two CI systems building the same source independently) submitted the same digest
for the same artifact name and release label. The release's request waits in
``awaiting_builders``; the N-th agreeing builder moves it on (to approvals, or to its
signing). A builder submitting a different digest stops the release: its request ends
``mismatch`` and is never signed; that is the reproducible-build check that catches a
build system injecting code into what it builds.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from signgate.errors import ErrorCode, InvalidInput
from signgate.policy.approvals import RequestState

MAX_BUILDERS = 16
MAX_RELEASE = 128


def check_policy(builders: int) -> int:
    if not 0 <= builders <= MAX_BUILDERS:
        raise InvalidInput(f"--require-builders must be 0 to {MAX_BUILDERS}",
                           code=ErrorCode.BAD_BUILDER_POLICY)
    return builders


def check_release(release: str | None, key_ref: str, builders: int) -> str:
    """The release label of a signing with a key that needs ``builders`` agreeing builders:
    required, 1 to 128 printable characters."""
    if release is None or not release.strip():
        raise InvalidInput(f"{key_ref} signs only what {builders} independent builders "
                           "agree on: name the release (signgate sign --release LABEL)",
                           code=ErrorCode.RELEASE_REQUIRED)
    if len(release) > MAX_RELEASE or any(ord(c) < 32 or ord(c) == 127 for c in release):
        raise InvalidInput(f"a release label must be at most {MAX_RELEASE} printable "
                           "characters")
    return release


def release_id(artifact_name: str, release: str) -> str:
    """One request per key, artifact name and release label: the key of that uniqueness
    (names may be long, so a digest of both, unambiguously joined)."""
    joined = len(artifact_name).to_bytes(4, "big") + artifact_name.encode() + release.encode()
    return hashlib.sha256(joined).hexdigest()


class Step(enum.StrEnum):
    COUNTED = "counted"  # a new builder agreed; still short of the quorum
    AGREED = "agreed"  # a new builder agreed and made the quorum: the request moves on
    REPEAT = "repeat"  # this builder (or a late one) adds nothing: answer the request
    MISMATCH = "mismatch"  # a different digest: refused, the release is stopped
    STOPPED = "stopped"  # the release was stopped by an earlier mismatch: refused


@dataclass(frozen=True)
class Release:
    """A release's request as the decision sees it."""

    state: RequestState
    digest: str
    required: int
    builders: Mapping[str, str]  # identity -> the digest it submitted


@dataclass(frozen=True)
class Verdict:
    step: Step
    agreeing: int  # distinct builders agreeing on the release's digest, this one included
    reason: str = ""

    @property
    def records_submission(self) -> bool:
        return self.step in (Step.COUNTED, Step.AGREED)


def submit(release: Release, builder: str, digest: str, what: str) -> Verdict:
    """What ``builder`` submitting ``digest`` for ``release`` (``what``: the artifact and
    label, for messages) does."""
    agreeing = {b for b, d in release.builders.items() if d == release.digest}
    if release.state is RequestState.MISMATCH:
        return Verdict(Step.STOPPED, len(agreeing),
                       f"{what} was stopped by a builder mismatch: it is never signed; "
                       "build it anew under a new release label")
    if digest.lower() != release.digest.lower():
        others = ", ".join(sorted(agreeing)) or "its first builder"
        return Verdict(Step.MISMATCH, len(agreeing),
                       f"builder {builder} submitted digest {digest} for {what}, but "
                       f"{others} submitted {release.digest}: the builds disagree, the "
                       "release is stopped and will not be signed")
    if builder in agreeing or release.state is not RequestState.AWAITING_BUILDERS:
        return Verdict(Step.REPEAT, len(agreeing))
    now = len(agreeing | {builder})
    return Verdict(Step.AGREED if now >= release.required else Step.COUNTED, now)
