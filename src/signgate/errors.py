"""The one error tree of signgate.

Every failure that a user can see is a :class:`SigngateError` with a stable machine code
(``code``), a human sentence (``str(exc)``) and the family it belongs to. Adapters map the
family to an HTTP status (``api/problems.py``) or a CLI exit code (``cli/output.py``) in one
place each; nothing below them knows about HTTP or exit codes.

::

    SigngateError
    ├── InvalidInput          bad name, digest, algorithm, JSON, time ...   (400/422)
    │   ├── PayloadTooLarge   body over the configured limit                (413)
    │   ├── LengthRequired    an upload that does not declare its length    (411)
    │   └── RequestTimeout    a request body that stopped arriving          (408)
    ├── AuthenticationFailed  no token, unknown token, disabled identity    (401)
    │   └── AuthenticationThrottled  too many failures from one address     (429)
    ├── Denied                the identity may not do this, and why         (403)
    ├── NotFound              no such project, key, identity, version       (404)
    ├── Conflict              duplicate name, state that forbids the action (409)
    ├── KeyStoreError         the key store could not generate or sign      (500/503)
    ├── VerificationFailed    a signature or the audit chain did not verify
    ├── ConfigError           data directory, master key, database URL
    └── Unavailable           the server or database cannot be reached      (503)
        ├── ScannerUnavailable  a malware scanner gave no answer (fail closed) (503)
        └── LimitExceeded       too many uploads of one identity at once     (429)
            └── StorageFull     the upload spool budget (or the disk) is full (507)

Foreign exceptions (SQLAlchemy, cryptography, httpx) are converted at the boundary that
catches them, keeping the cause with ``raise ... from exc``.
"""

from __future__ import annotations

from typing import Any


class SigngateError(Exception):
    """Root of every error signgate reports on purpose."""

    code: str = "error"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details: dict[str, Any] = details

    def __str__(self) -> str:
        return self.message


class InvalidInput(SigngateError):
    code = "invalid_input"


class PayloadTooLarge(InvalidInput):
    code = "payload_too_large"


class LengthRequired(InvalidInput):
    code = "length_required"


class RequestTimeout(InvalidInput):
    code = "request_timeout"


class AuthenticationFailed(SigngateError):
    """No token, an unknown one, or a disabled identity's: one answer for all three, so
    that a token's holder never learns that it is valid or whose it is.

    ``identity`` names the disabled identity for the audit record only; it is never part
    of the message.
    """

    code = "authentication_failed"

    def __init__(self, message: str = "authentication failed: missing or invalid token",
                 *, identity: str | None = None) -> None:
        super().__init__(message)
        self.identity = identity


class AuthenticationThrottled(AuthenticationFailed):
    """Too many failed authentications from one client address in the current window."""

    code = "authentication_throttled"

    def __init__(self, retry_after: int) -> None:
        super().__init__("authentication failed too often from this address; retry in "
                         f"{retry_after} s")
        self.retry_after = retry_after


class Denied(SigngateError):
    code = "denied"


class NotFound(SigngateError):
    code = "not_found"


class Conflict(SigngateError):
    code = "conflict"


class KeyStoreError(SigngateError):
    code = "keystore_error"


class VerificationFailed(SigngateError):
    code = "verification_failed"


class ConfigError(SigngateError):
    code = "config_error"


class Unavailable(SigngateError):
    code = "unavailable"


class ScannerUnavailable(Unavailable):
    """A scanner (clamd, YARA, ...) could not give a verdict; the artifact is not signed."""

    code = "scanner_unavailable"

    def __init__(self, engine: str, why: str) -> None:
        super().__init__(f"scanner unavailable: {engine}: {why}", engine=engine, reason=why)
        self.engine = engine
        self.reason = why


class LimitExceeded(Unavailable):
    """A limit on concurrent use was reached: nothing was done, try again later."""

    code = "limit_exceeded"


class StorageFull(LimitExceeded):
    """There is no room to store the upload now (spool budget or disk)."""

    code = "storage_full"


FAMILIES: tuple[type[SigngateError], ...] = (
    PayloadTooLarge,
    LengthRequired,
    RequestTimeout,
    InvalidInput,
    AuthenticationThrottled,
    AuthenticationFailed,
    Denied,
    NotFound,
    Conflict,
    KeyStoreError,
    VerificationFailed,
    ConfigError,
    ScannerUnavailable,
    StorageFull,
    LimitExceeded,
    Unavailable,
)


def family_by_name(name: str) -> type[SigngateError]:
    """The error class called ``name`` (used by the client to rebuild server errors)."""
    for cls in FAMILIES:
        if cls.__name__ == name:
            return cls
    return SigngateError
