"""Where signgate fetches an OIDC issuer's keys from: https, or http to this machine only."""

from __future__ import annotations

import pytest

from signgate.errors import ErrorCode, InvalidInput
from signgate.service.jwks import check_url


@pytest.mark.parametrize("url", [
    "https://token.actions.githubusercontent.com", "https://gitlab.example.com:8443/oauth",
    "http://127.0.0.1:8080", "http://localhost/jwks", "http://[::1]:9000/jwks",
    "http://127.0.0.2/x",
])
def test_https_or_loopback_http_is_accepted(url: str) -> None:
    assert check_url(url, "issuer") == url


@pytest.mark.parametrize("url", [
    "http://token.actions.githubusercontent.com", "http://10.0.0.1/jwks", "ftp://x/jwks",
    "https://", "token.actions.githubusercontent.com", "http://localhost.evil.test/jwks",
    "file:///etc/passwd",
])
def test_anything_else_is_refused(url: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_url(url, "issuer")
    assert info.value.code is ErrorCode.BAD_ISSUER_URL
