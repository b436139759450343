"""What a caller asks to have signed: one frozen value from the adapter to the pipeline.

The API's digest signing, the scanned upload (``scanning.py``) and Python callers all
build a :class:`SignRequest` and hand it to ``signing.sign``/``sign_async``; the signing
pipeline decides, signs and records it. It sits this low in the service layers so that the
context can name the pipeline's interface (``context.SigningPipeline``) without importing
the pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from signgate.audit.model import Action
from signgate.scan.outcome import ScanOutcome
from signgate.service.caller import Caller, Target
from signgate.service.views import RequestView, SignResult

MAX_ARTIFACT_NAME = 1024
_NOTHING: Mapping[str, str] = MappingProxyType({})


def _nothing() -> Mapping[str, str]:
    return _NOTHING  # one shared, read-only empty mapping


@dataclass(frozen=True, slots=True)
class SignRequest:
    """Sign ``digest`` (hex, of ``digest_algorithm``) of ``artifact_name`` with the current
    version of ``project/key``, in ``format`` (with that format's own ``params``)."""

    caller: Caller
    project: str
    key: str
    digest_algorithm: str
    digest: str
    artifact_name: str
    metadata: Mapping[str, str] = field(default_factory=_nothing)
    timestamp: bool = False
    format: str = "raw"
    params: Mapping[str, str] = field(default_factory=_nothing)
    # Set when signgate received and scanned the artifact itself (service/scanning.py):
    # then ``digest`` is signgate's own, computed from the scanned bytes.
    scan: ScanOutcome | None = None
    # Set only by service/requests.py: sign this approved request (its id) on behalf of its
    # requester; the caller is then whoever's approval or look-up completes it.
    approval_request: str | None = None
    # The release label: required by a key that needs independent builders to agree
    # (pipeline/builds.py); ignored by other keys.
    release: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.project}/{self.key}"

    def target(self) -> Target:
        """What a refusal of this request is recorded about."""
        subject = self.artifact_name[:MAX_ARTIFACT_NAME] or self.ref
        return Target(Action.SIGN, subject, self.project, self.ref)


# A signing's outcome: the result, or for a key with quorum approvals the request that
# waits for them (answered 202).
SignOutcome = SignResult | RequestView


class SigningPipeline(Protocol):
    """What the use cases see of the signing pipeline (``service/pipeline/``), which the
    composition root (``factory.py``) gives the context: a protocol here, so that the
    context names it without importing the pipeline that is built on the context."""

    def submit(self, request: SignRequest) -> SignOutcome:
        """``request``'s result once its audit entry is committed (a refusal: raised)."""
        ...

    async def submit_async(self, request: SignRequest) -> SignOutcome:
        """The same for an event loop: waits without holding a thread."""
        ...

    def submit_many(self, requests: Sequence[SignRequest]) -> list[SignOutcome | Exception]:
        """Each request's outcome, in order, once the one transaction deciding them all
        committed; a refusal is returned as its exception, not raised."""
        ...

    async def submit_many_async(self, requests: Sequence[SignRequest],
                                ) -> list[SignOutcome | Exception]:
        """The same for an event loop."""
        ...

    def close(self) -> None:
        """Finish what was submitted, then stop."""
        ...
