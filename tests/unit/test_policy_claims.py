"""The claim matcher (policy/claims.py): exact matches, any-of lists, no globbing, and the
claims a token is bound to."""

from __future__ import annotations

from typing import Any

import pytest

from signgate.errors import ErrorCode, InvalidInput
from signgate.policy.claims import ClaimBinding, match, parse_requirements
from signgate.policy.model import Grant, Role, Scope

GITHUB: dict[str, Any] = {
    "iss": "https://token.actions.githubusercontent.com", "aud": "signgate",
    "jti": "j-1", "sub": "repo:acme/app:environment:release", "repository": "acme/app",
    "repository_id": "123456", "repository_owner_id": "9919", "ref": "refs/heads/main",
    "event_name": "push", "environment": "release", "run_id": "7100000001",
    "workflow": "release", "job_workflow_ref": "acme/app/.github/workflows/r.yml@refs/heads/main",
}
RELEASE = Scope.parse("acme/release")


def binding(*claims: str, role: Role = Role.SIGNER, scope: Scope = RELEASE,
            issuer: str = "github") -> ClaimBinding:
    return ClaimBinding(issuer, role, scope, parse_requirements(claims))


STRICT = binding("repository_id=123456", "ref=refs/heads/main", "event_name=push",
                 "environment=release")


def test_all_claims_equal_earn_the_grant_and_bind_the_token_to_them() -> None:
    m = match("github", [STRICT], GITHUB)
    assert m.allowed
    assert m.grants == (Grant(Role.SIGNER, RELEASE),)
    claims = dict(m.claims)
    assert claims["repository_id"] == "123456"
    assert claims["run_id"] == "7100000001"
    assert "iss" not in claims
    assert "aud" not in claims


@pytest.mark.parametrize(("change", "why"), [
    ({"repository_id": "999999"}, "claim repository_id is \"999999\", not 123456"),  # a fork
    ({"ref": "refs/heads/feature"}, "claim ref is"),
    ({"ref": "refs/heads/main-old"}, "claim ref is"),  # no prefixes
    ({"event_name": "pull_request_target"}, "claim event_name is \"pull_request_target\""),
    ({"environment": None}, "claim environment is null"),
    ({"repository_id": ["123456"]}, "claim repository_id is [\"123456\"]"),  # a list: never
])
def test_claims_that_almost_match_earn_nothing(change: dict[str, Any], why: str) -> None:
    m = match("github", [STRICT], {**GITHUB, **change})
    assert not m.allowed
    assert m.grants == ()
    assert why in m.reason


def test_a_missing_claim_never_matches() -> None:
    claims = {k: v for k, v in GITHUB.items() if k != "environment"}
    m = match("github", [STRICT], claims)
    assert not m.allowed
    assert "claim environment is missing" in m.reason


def test_a_value_list_is_any_of_and_there_is_no_globbing() -> None:
    b = binding("ref=refs/heads/main,refs/tags/v1.0")
    assert match("github", [b], GITHUB).allowed
    assert match("github", [b], {**GITHUB, "ref": "refs/tags/v1.0"}).allowed
    assert not match("github", [b], {**GITHUB, "ref": "refs/tags/v1.1"}).allowed
    star = binding("ref=refs/heads/*")
    assert not match("github", [star], GITHUB).allowed


def test_numbers_and_booleans_compare_in_their_json_spelling() -> None:
    b = binding("project_id=4242", "ref_protected=true")
    assert match("gitlab", [b], {"project_id": 4242, "ref_protected": True},).grants == ()
    b = binding("project_id=4242", "ref_protected=true", issuer="gitlab")
    assert match("gitlab", [b], {"project_id": 4242, "ref_protected": True}).allowed
    assert match("gitlab", [b], {"project_id": "4242", "ref_protected": "true"}).allowed
    assert not match("gitlab", [b], {"project_id": 4242, "ref_protected": False}).allowed


def test_other_issuers_bindings_never_apply() -> None:
    m = match("gitlab", [STRICT], GITHUB)
    assert not m.allowed
    assert m.reason == "issuer gitlab has no OIDC grants"


def test_every_matching_binding_adds_its_grant_and_the_closest_miss_is_named() -> None:
    approver = binding("repository_owner_id=9919", role=Role.APPROVER, scope=Scope.parse("acme"))
    other = binding("repository_id=5", "ref=refs/heads/x")
    m = match("github", [STRICT, approver, other], GITHUB)
    assert set(m.grants) == {Grant(Role.SIGNER, RELEASE), Grant(Role.APPROVER,
                                                                Scope.parse("acme"))}
    m = match("github", [STRICT, other], {**GITHUB, "event_name": "pull_request_target"})
    assert "closest: signer on acme/release: claim event_name" in m.reason


@pytest.mark.parametrize("bad", ["repository_id", "=1", "a b=1", "ref=", "ref=a,,b",
                                 "ref=a\nb", "x=" + "v" * 513])
def test_malformed_bindings_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_requirements([bad])
    assert info.value.code is ErrorCode.BAD_CLAIM


def test_a_binding_needs_a_claim_and_names_each_claim_once() -> None:
    with pytest.raises(InvalidInput, match="at least one"):
        parse_requirements([])
    with pytest.raises(InvalidInput, match="bound twice"):
        parse_requirements(["ref=a", "ref=b"])


def test_the_stored_form_is_canonical_whatever_the_order() -> None:
    a = binding("ref=refs/heads/main", "repository_id=1")
    b = binding("repository_id=1", "ref=refs/heads/main")
    assert a.to_json() == b.to_json()
    again = ClaimBinding.from_json("github", Role.SIGNER, RELEASE, a.to_json())
    assert again == a
