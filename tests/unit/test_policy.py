"""The pure policy: scopes, actors and the allow/deny decisions with their reasons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from signgate.errors import ErrorCode, InvalidInput
from signgate.policy import decide
from signgate.policy.model import Actor, Grant, KeySnapshot, KeyState, Role, Scope

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def actor(*grants: tuple[Role, str], name: str = "ci", enabled: bool = True) -> Actor:
    return Actor(name, enabled, tuple(Grant(r, Scope.parse(s)) for r, s in grants))


def key(project: str = "app", name: str = "release", state: KeyState = KeyState.ACTIVE,
        rotate_every: timedelta | None = None, max_signatures: int | None = None,
        created: datetime = T0, signatures: int = 0, version: int = 1,
        scan_required: bool = False) -> KeySnapshot:
    return KeySnapshot(project, name, state, rotate_every, max_signatures, version, created,
                       signatures, scan_required)


# -- Scope --------------------------------------------------------------------------------


def test_scope_parse_global() -> None:
    s = Scope.parse("*")
    assert s == Scope()
    assert s.is_global
    assert s.project is None
    assert s.key is None
    assert str(s) == "*"


def test_scope_parse_project() -> None:
    s = Scope.parse("app")
    assert (s.project, s.key) == ("app", None)
    assert not s.is_global
    assert str(s) == "app"


def test_scope_parse_key() -> None:
    s = Scope.parse("app/release")
    assert (s.project, s.key) == ("app", "release")
    assert not s.is_global
    assert str(s) == "app/release"


@pytest.mark.parametrize("text", ["*", "app", "app/release", "a-1/b-2", "0/0"])
def test_scope_str_round_trips(text: str) -> None:
    assert str(Scope.parse(text)) == text


@pytest.mark.parametrize("text", [
    "", "App", "-app", "app/", "/release", "app/Release", "app/-x", "a" * 64,
    "app/" + "k" * 64, "app/release/extra", "**", "app/*", "ap p", "äpp", "app_1",
    "app\n", "app/release\n", " app",
])
def test_scope_parse_rejects_bad_names(text: str) -> None:
    with pytest.raises(InvalidInput) as info:
        Scope.parse(text)
    assert info.value.code == "bad_name"
    assert "invalid" in str(info.value)


def test_scope_accepts_longest_name() -> None:
    name = "a" * 63
    assert Scope.parse(f"{name}/{name}").key == name


def test_scope_covers() -> None:
    everything = Scope.parse("*")
    project = Scope.parse("app")
    one_key = Scope.parse("app/release")
    assert everything.covers("app")
    assert everything.covers("other", "k")
    assert project.covers("app")
    assert project.covers("app", "release")
    assert project.covers("app", "nightly")
    assert not project.covers("other")
    assert not project.covers("other", "release")
    assert one_key.covers("app", "release")
    assert not one_key.covers("app", "nightly")
    assert not one_key.covers("app")  # a key grant does not cover the whole project
    assert not one_key.covers("other", "release")


# -- Actor.has ----------------------------------------------------------------------------


def test_actor_has_matches_role_and_scope() -> None:
    a = actor((Role.SIGNER, "app/release"), (Role.AUDITOR, "app"))
    assert a.has(Role.SIGNER, "app", "release")
    assert not a.has(Role.SIGNER, "app", "nightly")
    assert not a.has(Role.SIGNER, "app")
    assert not a.has(Role.ADMIN, "app", "release")
    assert a.has(Role.AUDITOR, "app")
    assert a.has(Role.AUDITOR, "app", "any")
    assert not a.has(Role.AUDITOR, "other")


def test_actor_has_without_project_needs_global_grant() -> None:
    project_admin = actor((Role.ADMIN, "app"))
    global_admin = actor((Role.ADMIN, "*"))
    assert not project_admin.has(Role.ADMIN)
    assert global_admin.has(Role.ADMIN)
    assert global_admin.has(Role.ADMIN, "anything", "at-all")
    assert not actor().has(Role.ADMIN)


# -- may_sign -----------------------------------------------------------------------------


def test_may_sign_with_key_grant() -> None:
    assert decide.may_sign(actor((Role.SIGNER, "app/release")), key()).allowed


def test_may_sign_with_project_grant() -> None:
    assert decide.may_sign(actor((Role.SIGNER, "app")), key()).allowed
    assert decide.may_sign(actor((Role.SIGNER, "app")), key(name="nightly")).allowed


def test_may_sign_with_global_grant() -> None:
    assert decide.may_sign(actor((Role.SIGNER, "*")), key(project="zzz")).allowed


def test_may_sign_without_grant() -> None:
    d = decide.may_sign(actor(name="bob"), key())
    assert not d.allowed
    assert "bob" in d.reason
    assert "app/release" in d.reason
    assert "no signer grant" in d.reason


@pytest.mark.parametrize("role", [Role.ADMIN, Role.APPROVER, Role.AUDITOR])
def test_may_sign_other_roles_do_not_sign(role: Role) -> None:
    d = decide.may_sign(actor((role, "*"), name="carol"), key())
    assert not d.allowed
    assert "carol" in d.reason
    assert "app/release" in d.reason


def test_may_sign_other_key_of_same_project() -> None:
    d = decide.may_sign(actor((Role.SIGNER, "app/release"), name="ci-7"), key(name="nightly"))
    assert not d.allowed
    assert "ci-7" in d.reason
    assert "app/nightly" in d.reason


def test_may_sign_other_project() -> None:
    d = decide.may_sign(actor((Role.SIGNER, "other"), name="ci-8"), key())
    assert not d.allowed
    assert "ci-8" in d.reason
    assert "app/release" in d.reason


def test_may_sign_disabled_identity() -> None:
    d = decide.may_sign(actor((Role.SIGNER, "*"), name="gone", enabled=False), key())
    assert not d.allowed
    assert d.reason == "identity gone is disabled"


@pytest.mark.parametrize("state", [KeyState.DISABLED, KeyState.REVOKED, KeyState.DESTROYED])
def test_may_sign_inactive_key(state: KeyState) -> None:
    d = decide.may_sign(actor((Role.SIGNER, "app/release")), key(state=state))
    assert not d.allowed
    assert "app/release" in d.reason
    assert state.value in d.reason


def test_may_sign_grant_checked_before_key_state() -> None:
    """Someone without a grant learns nothing about the key's state."""
    d = decide.may_sign(actor(name="eve"), key(state=KeyState.REVOKED))
    assert not d.allowed
    assert "revoked" not in d.reason
    assert "eve" in d.reason


def test_may_sign_scan_required_refuses_what_signgate_did_not_scan() -> None:
    signer = actor((Role.SIGNER, "app/release"))
    d = decide.may_sign(signer, key(scan_required=True), scanned=False)
    assert not d.allowed
    assert d.code is ErrorCode.SCAN_REQUIRED
    assert d.reason == ("key app/release signs only artifacts signgate has scanned: upload "
                        "the artifact (signgate sign does, for such keys)")
    assert decide.may_sign(signer, key(scan_required=True), scanned=True).allowed
    assert decide.may_sign(signer, key(), scanned=False).allowed
    # Not an artifact (OpenPGP's self-signature of an exported key): the rule is silent.
    assert decide.may_sign(signer, key(scan_required=True)).allowed


def test_may_sign_key_state_before_scan_rule() -> None:
    d = decide.may_sign(actor((Role.SIGNER, "app/release")),
                        key(state=KeyState.DISABLED, scan_required=True), scanned=False)
    assert not d.allowed
    assert d.code is None
    assert d.reason == "key app/release is disabled"


def test_may_sign_grant_before_scan_rule() -> None:
    d = decide.may_sign(actor(name="eve"), key(scan_required=True), scanned=False)
    assert not d.allowed
    assert d.code is None
    assert "no signer grant" in d.reason


# -- may_manage / may_grant ---------------------------------------------------------------


def test_may_manage_global() -> None:
    assert decide.may_manage(actor((Role.ADMIN, "*")), None).allowed
    d = decide.may_manage(actor((Role.ADMIN, "app"), name="pa"), None)
    assert not d.allowed
    assert "pa" in d.reason
    assert "signgate" in d.reason
    assert "no admin grant" in d.reason


def test_may_manage_project_and_key() -> None:
    pa = actor((Role.ADMIN, "app"), name="pa")
    assert decide.may_manage(pa, "app").allowed
    assert decide.may_manage(pa, "app", "release").allowed
    d = decide.may_manage(pa, "other")
    assert not d.allowed
    assert "pa" in d.reason
    assert "other" in d.reason
    d = decide.may_manage(pa, "other", "release")
    assert not d.allowed
    assert "other/release" in d.reason


def test_may_manage_key_admin_only_that_key() -> None:
    ka = actor((Role.ADMIN, "app/release"), name="ka")
    assert decide.may_manage(ka, "app", "release").allowed
    assert not decide.may_manage(ka, "app", "nightly").allowed
    assert not decide.may_manage(ka, "app").allowed


def test_may_manage_signer_is_not_admin() -> None:
    d = decide.may_manage(actor((Role.SIGNER, "*"), name="s"), "app")
    assert not d.allowed
    assert "s" in d.reason


def test_may_manage_disabled_admin() -> None:
    d = decide.may_manage(actor((Role.ADMIN, "*"), name="root", enabled=False), None)
    assert not d.allowed
    assert d.reason == "identity root is disabled"


def test_may_grant_global_admin_grants_anything() -> None:
    ga = actor((Role.ADMIN, "*"))
    for scope in ("*", "app", "app/release", "other/k"):
        assert decide.may_grant(ga, Scope.parse(scope)).allowed


def test_may_grant_project_admin_within_project_only() -> None:
    pa = actor((Role.ADMIN, "app"), name="pa")
    assert decide.may_grant(pa, Scope.parse("app")).allowed
    assert decide.may_grant(pa, Scope.parse("app/release")).allowed
    d = decide.may_grant(pa, Scope.parse("other"))
    assert not d.allowed
    assert "pa" in d.reason
    assert "other" in d.reason
    assert not decide.may_grant(pa, Scope.parse("other/release")).allowed
    d = decide.may_grant(pa, Scope.parse("*"))
    assert not d.allowed
    assert "signgate" in d.reason


def test_may_grant_key_admin_cannot_grant_project() -> None:
    ka = actor((Role.ADMIN, "app/release"))
    assert not decide.may_grant(ka, Scope.parse("app")).allowed
    assert not decide.may_grant(ka, Scope.parse("app/release")).allowed


# -- audit --------------------------------------------------------------------------------


def test_may_read_audit() -> None:
    auditor = actor((Role.AUDITOR, "*"))
    admin = actor((Role.ADMIN, "*"))
    pa = actor((Role.AUDITOR, "app"), name="pa")
    signer = actor((Role.SIGNER, "*"), name="s")
    assert decide.may_read_audit(auditor, None).allowed
    assert decide.may_read_audit(auditor, "app").allowed
    assert decide.may_read_audit(admin, None).allowed
    assert decide.may_read_audit(pa, "app").allowed
    d = decide.may_read_audit(pa, None)
    assert not d.allowed
    assert "pa" in d.reason
    assert "all projects" in d.reason
    d = decide.may_read_audit(pa, "other")
    assert not d.allowed
    assert "other" in d.reason
    d = decide.may_read_audit(signer, "app")
    assert not d.allowed
    assert "no auditor grant" in d.reason


def test_may_read_audit_disabled() -> None:
    d = decide.may_read_audit(actor((Role.AUDITOR, "*"), name="x", enabled=False), None)
    assert not d.allowed
    assert d.reason == "identity x is disabled"


def test_audit_scopes() -> None:
    assert decide.audit_scopes(actor((Role.AUDITOR, "*"))) is None
    assert decide.audit_scopes(actor((Role.ADMIN, "*"), (Role.AUDITOR, "app"))) is None
    # A key scope stays a key scope: it does not widen to the key's project.
    assert decide.audit_scopes(
        actor((Role.AUDITOR, "app"), (Role.ADMIN, "lib/core"), (Role.SIGNER, "zzz"))
    ) == (Scope("app"), Scope("lib", "core"))
    assert decide.audit_scopes(actor((Role.SIGNER, "*"))) == ()
    assert decide.audit_scopes(actor((Role.AUDITOR, "*"), enabled=False)) == ()


def test_may_read_audit_of_filters() -> None:
    keyed = actor((Role.AUDITOR, "lib/core"), name="k")
    assert decide.may_read_audit_of(keyed, None, None).allowed
    assert decide.may_read_audit_of(keyed, "lib", None).allowed  # narrowed to lib/core
    assert decide.may_read_audit_of(keyed, None, "lib/core").allowed
    for project, key_ref, where in ((None, "lib/other", "lib/other"),
                                    ("app", None, "app"), (None, "app/core", "app/core"),
                                    ("lib", "lib/other", "lib/other")):
        d = decide.may_read_audit_of(keyed, project, key_ref)
        assert d == decide.Decision.deny(
            f"identity k may not read the audit log of {where}: no auditor grant")
    whole = actor((Role.ADMIN, "lib"))
    assert decide.may_read_audit_of(whole, None, "lib/anything").allowed
    assert not decide.may_read_audit_of(whole, "app", None).allowed
    assert decide.may_read_audit_of(actor((Role.AUDITOR, "*")), "app", "lib/x").allowed
    none = decide.may_read_audit_of(actor((Role.SIGNER, "lib")), None, None)
    assert none.reason == "identity ci may not read the audit log of all projects: no auditor grant"
    assert not decide.may_read_audit_of(actor((Role.AUDITOR, "*"), enabled=False),
                                        None, None).allowed


# -- rotation_due -------------------------------------------------------------------------


def test_rotation_due_never_without_policy() -> None:
    assert decide.rotation_due(key(signatures=10**9), T0 + timedelta(days=10**4)) is None


def test_rotation_due_by_count_at_boundary() -> None:
    assert decide.rotation_due(key(max_signatures=3, signatures=2), T0) is None
    reason = decide.rotation_due(key(max_signatures=3, signatures=3, version=4), T0)
    assert reason == "version 4 reached its limit of 3 signatures"
    assert decide.rotation_due(key(max_signatures=3, signatures=4), T0) is not None


def test_rotation_due_by_age_at_boundary() -> None:
    k = key(rotate_every=timedelta(days=30), version=2)
    assert decide.rotation_due(k, T0) is None
    assert decide.rotation_due(k, T0 + timedelta(days=29, hours=23, minutes=59, seconds=59,
                                                 microseconds=999999)) is None
    assert decide.rotation_due(k, datetime(2026, 1, 31, tzinfo=UTC)) == \
        "version 2 is older than 30 days"
    assert decide.rotation_due(k, T0 + timedelta(days=30, microseconds=1)) is not None


def test_rotation_due_fractional_days_text() -> None:
    k = key(rotate_every=timedelta(hours=36))
    assert decide.rotation_due(k, T0 + timedelta(hours=36)) == "version 1 is older than 1.5 days"


def test_rotation_due_count_reported_first() -> None:
    k = key(rotate_every=timedelta(days=1), max_signatures=1, signatures=1)
    reason = decide.rotation_due(k, T0 + timedelta(days=2))
    assert reason is not None
    assert "limit of 1" in reason
