"""Which grants a CI job's OIDC token earns: its claims against the claim bindings of its
issuer. Pure: the token is already verified (signature, issuer, audience, times, jti)
when its claims get here.

A binding is a grant (role on a scope) that names claims and the values they must have:
every named claim must be present and equal, as a string, to one of the listed values
(a list means any of them). No globbing and no prefixes: ``ref=refs/heads/main`` does not
match ``refs/heads/main-old``, and a claim that is a list or an object never matches.
Bindings name claims rather than ``sub`` because ``sub``'s format is not stable (GitHub
lets organisations customise it; GitLab's embeds the project path, which can be renamed).

Numbers and booleans compare in their JSON spelling (``123``, ``true``), so a binding of
``repository_id=123`` matches whether an issuer sends ``"123"`` or ``123``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from signgate.errors import ErrorCode, InvalidInput
from signgate.policy.model import Grant, Role, Scope

CLAIM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}\Z")
MAX_VALUE = 512
MAX_VALUES = 32
MAX_CLAIMS = 16

# Claims worth keeping on the record whenever a token has them, matched or not: they say
# which repository, ref, workflow and run a signature came from (GitHub Actions, GitLab CI).
RECORDED = (
    "sub", "jti",
    # GitHub Actions
    "repository", "repository_id", "repository_owner", "repository_owner_id", "ref",
    "ref_type", "sha", "workflow", "workflow_ref", "job_workflow_ref", "run_id",
    "run_number", "run_attempt", "event_name", "environment", "actor", "runner_environment",
    # GitLab CI
    "project_path", "project_id", "namespace_path", "namespace_id", "ref_protected",
    "pipeline_id", "pipeline_source", "job_id", "user_login",
)


@dataclass(frozen=True)
class ClaimRequirement:
    """One claim and the values it may have (any of)."""

    name: str
    values: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.name}={','.join(self.values)}"


@dataclass(frozen=True)
class ClaimBinding:
    """A grant earned by tokens of ``issuer`` whose claims meet every requirement."""

    issuer: str
    role: Role
    scope: Scope
    requirements: tuple[ClaimRequirement, ...]  # sorted by name, names unique

    @property
    def grant(self) -> Grant:
        return Grant(self.role, self.scope)

    def claims_text(self) -> str:
        return " ".join(str(r) for r in self.requirements)

    def to_json(self) -> str:
        """The canonical form stored (and compared for duplicates)."""
        return json.dumps({r.name: list(r.values) for r in self.requirements},
                          sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, issuer: str, role: Role, scope: Scope, text: str) -> ClaimBinding:
        data = json.loads(text)
        return cls(issuer, role, scope,
                   tuple(ClaimRequirement(k, tuple(v)) for k, v in sorted(data.items())))


def parse_requirements(texts: Iterable[str]) -> tuple[ClaimRequirement, ...]:
    """``NAME=VALUE`` or ``NAME=V1,V2`` (any of), each name once; at least one."""
    found: dict[str, tuple[str, ...]] = {}
    for text in texts:
        name, sep, rest = text.partition("=")
        if not sep or not CLAIM_NAME.match(name):
            raise InvalidInput(f"invalid claim binding {text!r}: use NAME=VALUE or "
                               "NAME=VALUE1,VALUE2 (a claim name of letters, digits and _)",
                               code=ErrorCode.BAD_CLAIM)
        values = tuple(dict.fromkeys(rest.split(",")))
        if any(not v or len(v) > MAX_VALUE or any(ord(c) < 32 for c in v) for v in values):
            raise InvalidInput(f"invalid claim binding {text!r}: every value must be 1 to "
                               f"{MAX_VALUE} printable characters", code=ErrorCode.BAD_CLAIM)
        if len(values) > MAX_VALUES:
            raise InvalidInput(f"claim {name} lists more than {MAX_VALUES} values",
                               code=ErrorCode.BAD_CLAIM)
        if name in found:
            raise InvalidInput(f"claim {name} is bound twice: list its values once, "
                               f"as {name}=V1,V2", code=ErrorCode.BAD_CLAIM)
        found[name] = values
    if not found:
        raise InvalidInput("an OIDC grant needs at least one --claim NAME=VALUE (a grant on "
                           "every token of the issuer would let any of its users sign)",
                           code=ErrorCode.BAD_CLAIM)
    if len(found) > MAX_CLAIMS:
        raise InvalidInput(f"at most {MAX_CLAIMS} claims per grant", code=ErrorCode.BAD_CLAIM)
    return tuple(ClaimRequirement(k, v) for k, v in sorted(found.items()))


def claim_text(value: object) -> str | None:
    """A claim's value as bindings compare it; None for a value no binding matches (lists,
    objects, null)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return None


def mismatch(binding: ClaimBinding, claims: Mapping[str, object]) -> str | None:
    """Why ``claims`` do not meet ``binding`` (its first unmet requirement), or None."""
    for r in binding.requirements:
        if r.name not in claims:
            return f"claim {r.name} is missing (required: {','.join(r.values)})"
        got = claim_text(claims[r.name])
        if got is None or got not in r.values:
            shown = json.dumps(claims[r.name])[:80]
            return f"claim {r.name} is {shown}, not {' or '.join(r.values)}"
    return None


@dataclass(frozen=True)
class Match:
    """What an exchange earns: the grants, and the claims to bind the token to and record
    (every claim a matched binding named, plus the :data:`RECORDED` ones present); or the
    reason nothing matched."""

    grants: tuple[Grant, ...]
    claims: tuple[tuple[str, str], ...]
    reason: str = ""

    @property
    def allowed(self) -> bool:
        return bool(self.grants)


def match(issuer: str, bindings: Iterable[ClaimBinding], claims: Mapping[str, object]) -> Match:
    """The grants of every binding of ``issuer`` that ``claims`` meet; when none does, the
    reason names the binding that came closest (fewest unmet requirements)."""
    grants: list[Grant] = []
    named: set[str] = set()
    closest: tuple[int, str] | None = None
    candidates = [b for b in bindings if b.issuer == issuer]
    for b in candidates:
        why = mismatch(b, claims)
        if why is None:
            if b.grant not in grants:
                grants.append(b.grant)
            named.update(r.name for r in b.requirements)
            continue
        unmet = sum(1 for r in b.requirements if claim_text(claims.get(r.name)) not in r.values)
        if closest is None or unmet < closest[0]:
            closest = (unmet, f"{b.role.value} on {b.scope}: {why}")
    recorded = {name: text for name in (*RECORDED, *sorted(named))
                if (text := claim_text(claims.get(name))) is not None}
    pairs = tuple(sorted(recorded.items()))
    if grants:
        return Match(tuple(grants), pairs)
    if closest is None:
        return Match((), pairs, f"issuer {issuer} has no OIDC grants")
    return Match((), pairs, f"no OIDC grant of issuer {issuer} matches the token's claims "
                            f"(closest: {closest[1]})")
