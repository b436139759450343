"""Who asks (the caller) and what about (the target of an action): the two values every
use case and every audit entry of a refusal start from."""

from __future__ import annotations

from dataclasses import dataclass, field

from signgate.audit.model import Action


class RequestNote:
    """What the service learnt about one HTTP request that its adapter could not know:
    the identity its token belongs to, for the access log (``api/observe.py``). Set from
    whichever thread authenticates the caller (a use case's, the signing pipeline's)."""

    __slots__ = ("identity",)

    def __init__(self) -> None:
        self.identity: str | None = None


@dataclass(frozen=True)
class Caller:
    """Who is asking: the presented token (never stored) and where from; ``note``, when
    the adapter keeps an access log, is told who the token turned out to be. ``session``:
    instead of a token, the id of a web console session (its cookie; see ui_sessions.py)."""

    token: str | None
    address: str | None = None
    note: RequestNote | None = field(default=None, compare=False)
    session: str | None = field(default=None, compare=False)

    def __repr__(self) -> str:
        return f"Caller(address={self.address!r})"

    def noted(self, identity: str) -> None:
        """The token belongs to ``identity``: tell the adapter's note, if any."""
        if self.note is not None:
            self.note.identity = identity


@dataclass(frozen=True)
class Target:
    """What an action is about, for the audit entry of a refusal."""

    action: Action
    subject: str
    project: str | None = None
    key_ref: str | None = None
