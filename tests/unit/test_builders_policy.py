"""policy/builders.py: what one builder's submission of a release's digest does."""

from __future__ import annotations

import pytest

from signgate.errors import ErrorCode, InvalidInput
from signgate.policy.approvals import RequestState
from signgate.policy.builders import (
    Release,
    Step,
    check_policy,
    check_release,
    release_id,
    submit,
)

D1, D2 = "aa" * 32, "bb" * 32
WHAT = "app.tar.gz release v1 of app/release"


def release(state: RequestState = RequestState.AWAITING_BUILDERS, required: int = 2,
            **builders: str) -> Release:
    return Release(state, D1, required, builders)


def test_policy_range() -> None:
    assert check_policy(0) == 0
    assert check_policy(16) == 16
    for bad in (-1, 17):
        with pytest.raises(InvalidInput) as refused:
            check_policy(bad)
        assert refused.value.code is ErrorCode.BAD_BUILDER_POLICY


def test_release_label() -> None:
    assert check_release("v1.2.3", "app/release", 2) == "v1.2.3"
    for missing in (None, "", "  "):
        with pytest.raises(InvalidInput) as refused:
            check_release(missing, "app/release", 2)
        assert refused.value.code is ErrorCode.RELEASE_REQUIRED
        assert "2 independent builders" in str(refused.value)
    for bad in ("x" * 129, "a\nb", "a\x7fb"):
        with pytest.raises(InvalidInput):
            check_release(bad, "app/release", 2)


def test_release_id_separates_name_and_label() -> None:
    assert release_id("ab", "c") != release_id("a", "bc")
    assert release_id("a", "b") == release_id("a", "b")
    assert len(release_id("a", "b")) == 64


def test_first_agreeing_builders_are_counted_until_the_quorum() -> None:
    v = submit(release(), "ci-a", D1, WHAT)
    assert (v.step, v.agreeing) == (Step.COUNTED, 1)
    assert v.records_submission
    v = submit(release(**{"ci-a": D1}), "ci-b", D1, WHAT)
    assert (v.step, v.agreeing) == (Step.AGREED, 2)
    v = submit(release(required=1), "ci-a", D1.upper(), WHAT)
    assert v.step is Step.AGREED


def test_the_same_builder_twice_counts_once() -> None:
    v = submit(release(**{"ci-a": D1}), "ci-a", D1, WHAT)
    assert (v.step, v.agreeing) == (Step.REPEAT, 1)
    assert not v.records_submission


def test_a_late_builder_adds_nothing_once_agreed() -> None:
    for state in (RequestState.PENDING, RequestState.APPROVED, RequestState.SIGNED):
        v = submit(release(state, **{"ci-a": D1, "ci-b": D1}), "ci-c", D1, WHAT)
        assert v.step is Step.REPEAT


def test_a_different_digest_is_a_mismatch_naming_both_sides() -> None:
    v = submit(release(**{"ci-a": D1}), "ci-b", D2, WHAT)
    assert v.step is Step.MISMATCH
    assert D1 in v.reason
    assert D2 in v.reason
    assert "ci-a" in v.reason
    assert "ci-b" in v.reason
    # Even from a builder that agreed before, and even after the quorum.
    assert submit(release(**{"ci-a": D1}), "ci-a", D2, WHAT).step is Step.MISMATCH
    assert submit(release(RequestState.SIGNED, **{"ci-a": D1, "ci-b": D1}), "ci-c", D2,
                  WHAT).step is Step.MISMATCH


def test_a_stopped_release_refuses_everyone() -> None:
    for digest in (D1, D2):
        v = submit(release(RequestState.MISMATCH, **{"ci-a": D1}), "ci-c", digest, WHAT)
        assert v.step is Step.STOPPED
        assert "new release label" in v.reason
