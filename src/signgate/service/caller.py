"""Who asks (the caller) and what about (the target of an action): the two values every
use case and every audit entry of a refusal start from."""

from __future__ import annotations

from dataclasses import dataclass

from signgate.audit.model import Action


@dataclass(frozen=True)
class Caller:
    """Who is asking: the presented token (never stored) and where from."""

    token: str | None
    address: str | None = None

    def __repr__(self) -> str:
        return f"Caller(address={self.address!r})"


@dataclass(frozen=True)
class Target:
    """What an action is about, for the audit entry of a refusal."""

    action: Action
    subject: str
    project: str | None = None
    key_ref: str | None = None
