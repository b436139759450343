"""service/ui_oidc.py without a network: the PKCE challenge against RFC 7636's own example,
the flow's secrets bound to its pre-session cookie and its age, the claim that names a
person, and the ui_oidc_* settings (their checks and the client secret file's mode)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from signgate.config import Settings
from signgate.errors import AuthenticationFailed, ConfigError, ErrorCode
from signgate.service import ui_oidc

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


def client(claim: str = "email") -> ui_oidc.Client:
    return ui_oidc.Client("https://login.example.com", "console", None, claim, "example.com",
                          "https://signgate.example.com/ui/oidc/callback")


def settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(tmp_path, "sqlite:///x.db", **values)


def test_the_s256_challenge_is_rfc_7636s() -> None:
    # RFC 7636, Appendix B.
    flow = ui_oidc.Flow("s", "n", "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
    assert flow.challenge == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_a_flow_is_its_cookies_and_lasts_ten_minutes() -> None:
    cookie, flow = ui_oidc.new_flow(NOW)
    _other_cookie, other = ui_oidc.new_flow(NOW)
    assert len({flow.state, flow.nonce, flow.verifier, other.state}) == 4
    assert len(flow.verifier) == 43  # RFC 7636 §4.1: 43 to 128 characters
    assert ui_oidc.flow_of(cookie, NOW + timedelta(minutes=9)) == flow
    ui_oidc.check_state(flow, flow.state)
    with pytest.raises(AuthenticationFailed, match="not this browser's sign-in"):
        ui_oidc.check_state(flow, other.state)
    with pytest.raises(AuthenticationFailed, match="longer than 10 minutes"):
        ui_oidc.flow_of(cookie, NOW + timedelta(minutes=11))
    # A cookie whose time was moved yields other secrets: the state no longer matches.
    started, _, key = cookie.partition(".")
    moved = ui_oidc.flow_of(f"{int(started) + 60}.{key}", NOW + timedelta(minutes=2))
    assert moved.state != flow.state
    for bad in (None, "", "x.y", f"{started}.short"):
        with pytest.raises(AuthenticationFailed, match="began no sign-in here"):
            ui_oidc.flow_of(bad, NOW)


@pytest.mark.parametrize(("claims", "name"), [
    ({"email": "alice@example.com", "email_verified": True}, "alice"),
    ({"email": "Bob@EXAMPLE.com", "email_verified": True}, "bob"),
])
def test_a_verified_address_in_the_domain_names_its_local_part(
        claims: dict[str, object], name: str) -> None:
    assert ui_oidc.person(client(), claims) == name


@pytest.mark.parametrize(("claims", "says"), [
    ({"email": "alice@example.com"}, "not verified"),
    ({"email": "alice@example.com", "email_verified": "true"}, "not verified"),
    ({"email": "alice@example.com.evil.test", "email_verified": True}, "not an address in"),
    ({"email": "alice@sub.example.com", "email_verified": True}, "not an address in"),
    ({"email": "al ice@example.com", "email_verified": True}, "names no signgate identity"),
    ({"sub": "x"}, "has no email claim"),
])
def test_other_addresses_name_nobody(claims: dict[str, object], says: str) -> None:
    with pytest.raises(AuthenticationFailed, match=says) as caught:
        ui_oidc.person(client(), claims)
    assert caught.value.code == ErrorCode.UI_UNKNOWN_PERSON


def test_another_claim_is_the_name_itself() -> None:
    c = client("preferred_username")
    assert ui_oidc.person(c, {"preferred_username": "carol"}) == "carol"
    with pytest.raises(AuthenticationFailed, match="names no signgate identity"):
        ui_oidc.person(c, {"preferred_username": "Carol Smith"})


def test_the_settings_go_together(tmp_path: Path) -> None:
    assert ui_oidc.from_settings(settings(tmp_path)) is None
    with pytest.raises(ValueError, match="go together"):
        settings(tmp_path, ui_oidc_issuer="https://login.example.com")
    with pytest.raises(ValueError, match="needs ui_oidc_email_domain"):
        settings(tmp_path, ui_oidc_issuer="https://login.example.com",
                 ui_oidc_client_id="console")
    public = settings(tmp_path, ui_oidc_issuer="https://login.example.com",
                      ui_oidc_client_id="console", ui_oidc_claim="sub",
                      public_url="https://signgate.example.com")
    made = ui_oidc.from_settings(public)
    assert made is not None
    assert made.secret is None
    assert made.redirect_uri == "https://signgate.example.com/ui/oidc/callback"
    with pytest.raises(ConfigError, match="must be an https:// URL"):
        ui_oidc.from_settings(settings(tmp_path, ui_oidc_issuer="http://login.example.com",
                                       ui_oidc_client_id="console", ui_oidc_claim="sub"))


def test_the_client_secret_file_is_its_owners_alone(tmp_path: Path) -> None:
    secret = tmp_path / "client.secret"
    secret.write_text("s3cret\n")
    secret.chmod(0o644)
    values = {"ui_oidc_issuer": "https://login.example.com", "ui_oidc_client_id": "console",
              "ui_oidc_email_domain": "example.com",
              "ui_oidc_client_secret_file": str(secret)}
    with pytest.raises(ConfigError, match=r"readable by others .*chmod 600"):
        ui_oidc.from_settings(settings(tmp_path, **values))
    secret.chmod(0o600)
    made = ui_oidc.from_settings(settings(tmp_path, **values))
    assert made is not None
    assert made.secret == "s3cret"
    assert "s3cret" not in repr(made)
    secret.unlink()
    with pytest.raises(ConfigError, match="cannot read ui_oidc_client_secret_file"):
        ui_oidc.from_settings(settings(tmp_path, **values))
