"""The OIDC exchange on the service layer, real databases and a real issuer on 127.0.0.1,
with the injected clock: the short-lived token's expiry, the leeway on exp and nbf, and the
jti kept exactly as long as its token could be replayed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from signgate.errors import (
    AuthenticationFailed,
    AuthenticationThrottled,
    ErrorCode,
    InvalidInput,
)
from signgate.service import grants, identities, keys, oidc, projects
from signgate.service.context import Caller
from signgate.store.models import AuditEntry, OidcJti, OidcSession, SignatureRecord
from tests.integration.test_service import T0, Env, make_env
from tests.support.oidc import AUDIENCE, Issuer
from tests.support.oidc import issuer as run_issuer

NOW = T0.timestamp()


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[tuple[Env, Issuer]]:
    env = make_env(database_url, tmp_path)
    with run_issuer() as iss:
        try:
            oidc.add_issuer(env.ctx, env.admin, "github", iss.url, AUDIENCE)
            projects.create(env.ctx, env.admin, "acme")
            keys.create(env.ctx, env.admin, "acme/release")
            grants.add_oidc(env.ctx, env.admin, "github",
                            ["repository_id=123456", "ref=refs/heads/main", "event_name=push"],
                            "signer", "acme/release")
            yield env, iss
        finally:
            env.ctx.close()


def refused(env: Env, token: str) -> AuthenticationFailed:
    with pytest.raises(AuthenticationFailed) as info:
        oidc.exchange(env.ctx, token, "10.1.2.3")
    return info.value


def test_the_exchanged_token_signs_until_it_expires(world: tuple[Env, Issuer]) -> None:
    env, iss = world
    answer = oidc.exchange(env.ctx, iss.mint(iss.github(NOW)), "10.1.2.3")
    assert answer.expires_at == T0 + timedelta(minutes=10)
    assert answer.grants == ["signer:acme/release"]
    assert answer.claims["run_id"] == "7100000001"
    with env.ctx.db.read() as s:
        stored = s.execute(select(OidcSession)).scalars().all()
    # Only the hash is kept.
    assert [r.token_hash for r in stored] != [answer.token]
    assert len(stored) == 1
    assert answer.token not in json.dumps([r.claims_json for r in stored])

    ci = Caller(answer.token, "10.1.2.3")
    result = env.sign(ci, "acme/release", b"release 1.0")
    assert result.receipt.identity == "oidc-github"
    with env.ctx.db.read() as s:
        row = s.execute(select(SignatureRecord)).scalar_one()
        entry = s.get(AuditEntry, row.audit_seq)
    assert entry is not None
    # The claims are on the entry (the row points at it and repeats nothing).
    assert json.loads(entry.details)["oidc"]["claims"]["run_id"] == "7100000001"
    recorded = json.loads(entry.details)["oidc"]
    assert recorded["issuer"] == "github"
    assert recorded["claims"]["repository"] == "acme/app"
    assert recorded["claims"]["workflow"] == "release"

    env.clock.advance(timedelta(minutes=9, seconds=59))
    assert identities.whoami(env.ctx, ci).name == "oidc-github"
    env.sign(ci, "acme/release", b"release 1.1")
    env.clock.advance(timedelta(seconds=1))  # exactly 10 minutes after the exchange
    with pytest.raises(AuthenticationFailed) as info:
        identities.whoami(env.ctx, ci)
    assert info.value.code is ErrorCode.OIDC_SESSION_EXPIRED
    with pytest.raises(AuthenticationFailed) as info:
        env.sign(ci, "acme/release", b"release 1.2")
    assert info.value.code is ErrorCode.OIDC_SESSION_EXPIRED
    last = env.entries()[-1]
    assert last.outcome == "refused"
    assert json.loads(last.details)["code"] == "oidc_session_expired"
    env.chain_ok()


def test_exp_and_nbf_have_a_60_second_leeway(world: tuple[Env, Issuer]) -> None:
    env, iss = world
    env.clock.advance(timedelta(seconds=70))  # 60 s after exp, not more: accepted
    oidc.exchange(env.ctx, iss.mint(iss.github(NOW, exp=int(NOW) + 10)), None)
    env.clock.advance(timedelta(seconds=1))
    exc = refused(env, iss.mint(iss.github(NOW, exp=int(NOW) + 10)))
    assert exc.code is ErrorCode.OIDC_EXPIRED
    now = NOW + 71
    oidc.exchange(env.ctx, iss.mint(iss.github(now, nbf=int(now) + 60)), None)
    exc = refused(env, iss.mint(iss.github(now, nbf=int(now) + 61)))
    assert exc.code is ErrorCode.OIDC_NOT_YET_VALID
    exc = refused(env, iss.mint(iss.github(now, iat=int(now) + 61)))
    assert exc.code is ErrorCode.OIDC_NOT_YET_VALID


def test_a_jti_is_kept_while_its_token_could_be_replayed(world: tuple[Env, Issuer]) -> None:
    env, iss = world
    claims = iss.github(NOW, exp=int(NOW) + 300)
    oidc.exchange(env.ctx, iss.mint(claims), None)
    assert refused(env, iss.mint(claims)).code is ErrorCode.OIDC_REPLAYED
    # Past exp + leeway the token is refused as expired anyway; its jti may then go.
    env.clock.advance(timedelta(seconds=361))
    assert refused(env, iss.mint(claims)).code is ErrorCode.OIDC_EXPIRED
    oidc.exchange(env.ctx, iss.mint(iss.github(NOW + 361)), None)  # cleans up
    with env.ctx.db.read() as s:
        jtis = s.execute(select(OidcJti.jti)).scalars().all()
    assert claims["jti"] not in jtis
    assert len(jtis) == 1


def test_removing_the_issuer_ends_its_tokens_at_once(world: tuple[Env, Issuer]) -> None:
    env, iss = world
    answer = oidc.exchange(env.ctx, iss.mint(iss.github(NOW)), None)
    ci = Caller(answer.token, None)
    assert identities.whoami(env.ctx, ci).name == "oidc-github"
    oidc.remove_issuer(env.ctx, env.admin, "github")
    with pytest.raises(AuthenticationFailed):
        identities.whoami(env.ctx, ci)
    assert refused(env, iss.mint(iss.github(NOW))).code is ErrorCode.OIDC_UNKNOWN_ISSUER
    # Added again under the same name: the same identity (its signatures stay its own).
    again = oidc.add_issuer(env.ctx, env.admin, "github", iss.url, AUDIENCE)
    assert again.identity == "oidc-github"
    exc = refused(env, iss.mint(iss.github(NOW)))
    assert exc.code is ErrorCode.OIDC_NO_GRANT  # its grants went with it


def test_disabling_the_issuers_identity_stops_its_jobs(world: tuple[Env, Issuer]) -> None:
    env, iss = world
    ci = Caller(oidc.exchange(env.ctx, iss.mint(iss.github(NOW)), None).token, None)
    assert identities.whoami(env.ctx, ci).grants == ["signer:acme/release"]
    identities.set_enabled(env.ctx, env.admin, "oidc-github", False)
    with pytest.raises(AuthenticationFailed):
        identities.whoami(env.ctx, ci)
    exc = refused(env, iss.mint(iss.github(NOW)))
    assert exc.code is ErrorCode.OIDC_NO_GRANT
    assert "identity oidc-github is disabled" in str(exc)


def test_refused_exchanges_past_the_limit_get_429_and_a_summary(
        world: tuple[Env, Issuer]) -> None:
    """Each refused exchange is an entry of its own, up to auth_failure_limit per address
    and window (100 by default); past it, 429 and one summary entry with their count."""
    env, iss = world
    limit = env.ctx.settings.auth_failure_limit
    entries = len(env.entries())
    for _ in range(limit):
        exc = refused(env, iss.mint(iss.github(NOW, aud="https://elsewhere.test")))
        assert exc.code is ErrorCode.OIDC_AUDIENCE
    assert len(env.entries()) == entries + limit
    with pytest.raises(AuthenticationThrottled):
        oidc.exchange(env.ctx, iss.mint(iss.github(NOW, aud="x")), "10.1.2.3")
    assert len(env.entries()) == entries + limit
    # A good token from the same address is still exchanged.
    oidc.exchange(env.ctx, iss.mint(iss.github(NOW)), "10.1.2.3")
    env.ctx.auth_failures.flush(everything=True)
    summary = json.loads(env.entries()[-1].details)
    assert summary["summary"] is True
    assert summary["attempts"] == 1
    assert summary["attempted"] == {"oidc.exchange": 1}
    env.chain_ok()


def test_discovery_must_name_the_very_issuer(world: tuple[Env, Issuer]) -> None:
    """OpenID Connect Discovery §4.3: the document's issuer is the URL asked for, exactly
    (here the configured URL has a trailing slash the tokens' iss does not)."""
    env, iss = world
    with pytest.raises(InvalidInput) as info:
        oidc.add_issuer(env.ctx, env.admin, "slash", iss.url + "/", AUDIENCE)
    assert info.value.code is ErrorCode.OIDC_DISCOVERY_FAILED
    assert f"names issuer {iss.url!r}" in str(info.value)
