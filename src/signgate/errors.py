"""The one error tree of signgate, and the catalogue of its machine codes.

Every failure that a user can see is a :class:`SigngateError` with a stable machine code
(``code``, an :class:`ErrorCode`), a human sentence (``str(exc)``) and the family it
belongs to. Adapters map the family to an HTTP status (``api/problems.py``) or a CLI exit
code (``cli/output.py``) in one place each; nothing below them knows about HTTP or exit
codes.

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
    ├── KeyStoreError         the key store could not generate or sign      (500)
    │   └── KeyStoreUnavailable  the HSM (module, token, login) failed: fail closed (503)
    ├── VerificationFailed    a signature or the audit chain did not verify
    ├── ConfigError           data directory, master key, database URL
    └── Unavailable           the server or database cannot be reached      (503)
        ├── ScannerUnavailable  a malware scanner gave no answer (fail closed) (503)
        └── LimitExceeded       too many uploads of one identity at once     (429)
            └── StorageFull     the upload spool budget (or the disk) is full (507)

Codes are a closed catalogue: :class:`ErrorCode` lists every code signgate answers or
records, and :data:`CATALOGUE` binds each one to exactly one class of the tree (and says
what it means; the README's table of error codes is made from it). A code set on an
instance (``InvalidInput("...", code=ErrorCode.BAD_JAR)``) belongs to that instance's
class, so a client rebuilds the very class the server raised from the wire code alone
(:func:`rebuild`). The code's value is the wire string and never changes.

Foreign exceptions (SQLAlchemy, cryptography, httpx) are converted at the boundary that
catches them, keeping the cause with ``raise ... from exc``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """Every machine code signgate answers (problem+json ``code``) or records (audit
    ``details.code``). The values are the wire strings: stable, never renamed."""

    # The families' own codes.
    ERROR = "error"
    INVALID_INPUT = "invalid_input"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    LENGTH_REQUIRED = "length_required"
    REQUEST_TIMEOUT = "request_timeout"
    AUTHENTICATION_FAILED = "authentication_failed"
    AUTHENTICATION_THROTTLED = "authentication_throttled"
    DENIED = "denied"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    KEYSTORE_ERROR = "keystore_error"
    KEYSTORE_UNAVAILABLE = "keystore_unavailable"
    VERIFICATION_FAILED = "verification_failed"
    CONFIG_ERROR = "config_error"
    UNAVAILABLE = "unavailable"
    SCANNER_UNAVAILABLE = "scanner_unavailable"
    LIMIT_EXCEEDED = "limit_exceeded"
    STORAGE_FULL = "storage_full"
    # Answered by the API's handlers for what the framework refuses itself.
    INVALID_REQUEST = "invalid_request"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    HTTP_ERROR = "http_error"
    INTERNAL_ERROR = "internal_error"
    # Set on an instance: a more precise reason within the family.
    ARTIFACT_CHANGED = "artifact_changed"
    ARTIFACT_TOO_LARGE = "artifact_too_large"
    BAD_CERTIFICATE = "bad_certificate"
    BAD_CLAIM = "bad_claim"
    BAD_DIGEST = "bad_digest"
    BAD_DIGEST_LENGTH = "bad_digest_length"
    BAD_ISSUER_URL = "bad_issuer_url"
    BAD_JAR = "bad_jar"
    BAD_KEY_REF = "bad_key_ref"
    BAD_KIND = "bad_kind"
    BAD_MANIFEST = "bad_manifest"
    BAD_MERKLE_PROOF = "bad_merkle_proof"
    BAD_NAME = "bad_name"
    BAD_OPENPGP = "bad_openpgp"
    BAD_OPENPGP_TIME = "bad_openpgp_time"
    BAD_PUBLIC_KEY = "bad_public_key"
    BAD_SIGNATURE = "bad_signature"
    BAD_SIGNATURE_ENCODING = "bad_signature_encoding"
    BAD_SIGNATURE_LENGTH = "bad_signature_length"
    BAD_TIME = "bad_time"
    BAD_USER_ID = "bad_user_id"
    BAD_VERIFIER_KEY = "bad_verifier_key"
    BROKEN_CHAIN = "broken_chain"
    CERTIFICATE_KEY_MISMATCH = "certificate_key_mismatch"
    CERTIFICATE_NOT_CODE_SIGNING = "certificate_not_code_signing"
    CERTIFICATE_REQUIRED = "certificate_required"
    DIGEST_MISMATCH = "digest_mismatch"
    IDENTITY_DISABLED = "identity_disabled"
    INPUT_CHANGED = "input_changed"
    INVALID_PE = "invalid_pe"
    KEYSTORE_UNSEAL_FAILED = "keystore_unseal_failed"
    KEY_ROTATED = "key_rotated"
    LOG_NOT_READY = "log_not_ready"
    MALFORMED_JAR = "malformed_jar"
    MALFORMED_NOTE = "malformed_note"
    MALFORMED_PE = "malformed_pe"
    MALFORMED_SIGNATURE = "malformed_signature"
    MANIFEST_TOO_LARGE = "manifest_too_large"
    NESTED_SIGNATURE = "nested_signature"
    NOTE_NOT_VERIFIED = "note_not_verified"
    OIDC_ALGORITHM = "oidc_algorithm"
    OIDC_AUDIENCE = "oidc_audience"
    OIDC_DISCOVERY_FAILED = "oidc_discovery_failed"
    OIDC_EXPIRED = "oidc_expired"
    OIDC_ISSUER_UNAVAILABLE = "oidc_issuer_unavailable"
    OIDC_MALFORMED = "oidc_malformed"
    OIDC_NOT_YET_VALID = "oidc_not_yet_valid"
    OIDC_NO_GRANT = "oidc_no_grant"
    OIDC_REPLAYED = "oidc_replayed"
    OIDC_SESSION_EXPIRED = "oidc_session_expired"
    OIDC_SIGNATURE = "oidc_signature"
    OIDC_UNKNOWN_ISSUER = "oidc_unknown_issuer"
    OIDC_UNKNOWN_KEY = "oidc_unknown_key"
    SCAN_FINDINGS = "scan_findings"
    SCAN_REQUIRED = "scan_required"
    SCAN_SIZE_LIMIT = "scan_size_limit"
    SHUTTING_DOWN = "shutting_down"
    SIGNATURE_REQUIRED = "signature_required"
    SPOOL_DISK_FULL = "spool_disk_full"
    SPOOL_FULL = "spool_full"
    TIMESTAMP_REQUIRED = "timestamp_required"
    TOO_FEW_COSIGNATURES = "too_few_cosignatures"
    TOO_MANY_ENTRIES = "too_many_entries"
    TOO_MANY_UPLOADS = "too_many_uploads"
    TSA_UNAVAILABLE = "tsa_unavailable"
    UNKNOWN_ALGORITHM = "unknown_algorithm"
    UNKNOWN_DIGEST_ALGORITHM = "unknown_digest_algorithm"
    UNKNOWN_FORMAT = "unknown_format"
    UNKNOWN_LOG = "unknown_log"
    UNKNOWN_PADDING = "unknown_padding"
    UNKNOWN_PARAMS = "unknown_params"
    UNKNOWN_ROLE = "unknown_role"
    UNKNOWN_SCAN_POLICY = "unknown_scan_policy"
    UNKNOWN_SETTING = "unknown_setting"
    UNSTORABLE_VALUE = "unstorable_value"
    UNSUPPORTED_FORMAT = "unsupported_format"
    VAULT_SEALED = "vault_sealed"
    WITNESS_SIZE_MISMATCH = "witness_size_mismatch"
    WITNESS_UNAVAILABLE = "witness_unavailable"
    ZIP_BOMB = "zip_bomb"
    # Quorum approvals (policy/approvals.py).
    ALREADY_APPROVED = "already_approved"
    BAD_APPROVAL_POLICY = "bad_approval_policy"
    REQUEST_CLOSED = "request_closed"
    REQUEST_DENIED = "request_denied"
    REQUEST_EXPIRED = "request_expired"
    SELF_APPROVAL = "self_approval"
    # Independent-build agreement (policy/builders.py).
    BAD_BUILDER_POLICY = "bad_builder_policy"
    BUILDER_MISMATCH = "builder_mismatch"
    RELEASE_REQUIRED = "release_required"
    RELEASE_STOPPED = "release_stopped"
    # Release windows and quotas (policy/windows.py).
    BAD_RELEASE_POLICY = "bad_release_policy"
    NO_RELEASE_WINDOW = "no_release_window"
    QUOTA_EXCEEDED = "quota_exceeded"
    WINDOW_CLOSED = "window_closed"
    # Authenticode for MSI packages (formats/cfb.py, formats/msi.py).
    INVALID_MSI = "invalid_msi"
    # The web console's sign-in through an OIDC provider (service/ui_oidc.py).
    UI_SIGN_IN_REFUSED = "ui_sign_in_refused"
    UI_UNKNOWN_PERSON = "ui_unknown_person"


class SigngateError(Exception):
    """Root of every error signgate reports on purpose."""

    code: ErrorCode = ErrorCode.ERROR

    def __init__(self, message: str, *, code: ErrorCode | None = None,
                 **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details: dict[str, Any] = details

    def __str__(self) -> str:
        return self.message


class InvalidInput(SigngateError):
    code = ErrorCode.INVALID_INPUT


class PayloadTooLarge(InvalidInput):
    code = ErrorCode.PAYLOAD_TOO_LARGE


class LengthRequired(InvalidInput):
    code = ErrorCode.LENGTH_REQUIRED


class RequestTimeout(InvalidInput):
    code = ErrorCode.REQUEST_TIMEOUT


class AuthenticationFailed(SigngateError):
    """No token, an unknown one, or a disabled identity's: one answer for all three, so
    that a token's holder never learns that it is valid or whose it is.

    ``identity`` names the disabled identity for the audit record only; it is never part
    of the message.
    """

    code = ErrorCode.AUTHENTICATION_FAILED

    def __init__(self, message: str = "authentication failed: missing or invalid token",
                 *, identity: str | None = None, code: ErrorCode | None = None) -> None:
        super().__init__(message, code=code)
        self.identity = identity


class AuthenticationThrottled(AuthenticationFailed):
    """Too many failed authentications from one client address in the current window."""

    code = ErrorCode.AUTHENTICATION_THROTTLED

    def __init__(self, retry_after: int) -> None:
        super().__init__("authentication failed too often from this address; retry in "
                         f"{retry_after} s")
        self.retry_after = retry_after


class Denied(SigngateError):
    code = ErrorCode.DENIED


class NotFound(SigngateError):
    code = ErrorCode.NOT_FOUND


class Conflict(SigngateError):
    code = ErrorCode.CONFLICT


class KeyStoreError(SigngateError):
    code = ErrorCode.KEYSTORE_ERROR


class KeyStoreUnavailable(KeyStoreError):
    """The key store cannot be used now (a PKCS#11 module or token failed, the login is
    gone and could not be renewed): nothing was signed; retry later."""

    code = ErrorCode.KEYSTORE_UNAVAILABLE


class VerificationFailed(SigngateError):
    code = ErrorCode.VERIFICATION_FAILED


class ConfigError(SigngateError):
    code = ErrorCode.CONFIG_ERROR


class Unavailable(SigngateError):
    code = ErrorCode.UNAVAILABLE


class ScannerUnavailable(Unavailable):
    """A scanner (clamd, YARA, ...) could not give a verdict; the artifact is not signed."""

    code = ErrorCode.SCANNER_UNAVAILABLE

    def __init__(self, engine: str, why: str) -> None:
        super().__init__(f"scanner unavailable: {engine}: {why}", engine=engine, reason=why)
        self.engine = engine
        self.reason = why


class LimitExceeded(Unavailable):
    """A limit on concurrent use was reached: nothing was done, try again later."""

    code = ErrorCode.LIMIT_EXCEEDED


class StorageFull(LimitExceeded):
    """There is no room to store the upload now (spool budget or disk)."""

    code = ErrorCode.STORAGE_FULL


@dataclass(frozen=True)
class Entry:
    """A code's class in the tree and what it means, in a release engineer's words."""

    cls: type[SigngateError]
    meaning: str


_C = ErrorCode
# The one table: code -> class (and meaning). Codes of the root class say nothing about the
# family: a client takes that from the HTTP status (see client/client.py).
CATALOGUE: Mapping[ErrorCode, Entry] = {
    _C.ERROR: Entry(SigngateError, "a failure without a more precise code"),
    _C.INVALID_INPUT: Entry(InvalidInput, "the request or a file is not what it must be"),
    _C.PAYLOAD_TOO_LARGE: Entry(PayloadTooLarge, "a body or file over its size limit"),
    _C.LENGTH_REQUIRED: Entry(LengthRequired, "an upload that does not declare its length"),
    _C.REQUEST_TIMEOUT: Entry(RequestTimeout, "a request body that stopped arriving"),
    _C.AUTHENTICATION_FAILED: Entry(AuthenticationFailed,
                                    "no token, an unknown token or a disabled identity's"),
    _C.AUTHENTICATION_THROTTLED: Entry(AuthenticationThrottled,
                                       "too many failed authentications from this address"),
    _C.DENIED: Entry(Denied, "the identity may not do this (the sentence says why)"),
    _C.NOT_FOUND: Entry(NotFound, "no such project, key, version, identity or route"),
    _C.CONFLICT: Entry(Conflict, "a duplicate, or a state that forbids the action"),
    _C.KEYSTORE_ERROR: Entry(KeyStoreError, "the key store could not generate or sign"),
    _C.KEYSTORE_UNAVAILABLE: Entry(KeyStoreUnavailable,
                                   "the HSM (module, token or login) failed: nothing signed, "
                                   "retry"),
    _C.VERIFICATION_FAILED: Entry(VerificationFailed,
                                  "a signature or the audit chain did not verify"),
    _C.CONFIG_ERROR: Entry(ConfigError, "the data directory or a setting is unusable"),
    _C.UNAVAILABLE: Entry(Unavailable, "the server or the database cannot serve now"),
    _C.SCANNER_UNAVAILABLE: Entry(ScannerUnavailable,
                                  "a malware scanner gave no verdict: nothing signed"),
    _C.LIMIT_EXCEEDED: Entry(LimitExceeded, "a limit on concurrent use was reached"),
    _C.STORAGE_FULL: Entry(StorageFull, "no room to store the upload now"),
    _C.INVALID_REQUEST: Entry(InvalidInput,
                              "the JSON body, a field or a query parameter is invalid"),
    _C.METHOD_NOT_ALLOWED: Entry(SigngateError, "the path does not serve this method"),
    _C.HTTP_ERROR: Entry(SigngateError, "another refusal of the HTTP layer"),
    _C.INTERNAL_ERROR: Entry(SigngateError,
                             "a defect; nothing was signed, the server log has details"),
    _C.ARTIFACT_CHANGED: Entry(InvalidInput, "the file changed while it was signed"),
    _C.ARTIFACT_TOO_LARGE: Entry(PayloadTooLarge, "an upload over scan_max_bytes"),
    _C.BAD_CERTIFICATE: Entry(InvalidInput, "not a (PEM or DER) certificate or chain"),
    _C.BAD_CLAIM: Entry(InvalidInput, "an OIDC claim binding that is not NAME=VALUE[,VALUE]"),
    _C.BAD_DIGEST: Entry(InvalidInput, "a digest that is not hexadecimal"),
    _C.BAD_DIGEST_LENGTH: Entry(InvalidInput, "a digest of the wrong length"),
    _C.BAD_ISSUER_URL: Entry(InvalidInput, "an OIDC issuer or JWKS URL that is not https "
                             "(http only to 127.0.0.1 or localhost)"),
    _C.BAD_JAR: Entry(InvalidInput, "not a JAR signgate can sign"),
    _C.BAD_KEY_REF: Entry(InvalidInput, "a key not named PROJECT/NAME"),
    _C.BAD_KIND: Entry(InvalidInput, "an identity kind other than user or service"),
    _C.BAD_MANIFEST: Entry(InvalidInput, "a malformed JAR manifest"),
    _C.BAD_MERKLE_PROOF: Entry(VerificationFailed,
                               "an inclusion or consistency proof that does not verify"),
    _C.BAD_NAME: Entry(InvalidInput, "a name that does not match `[a-z0-9][a-z0-9-]*`"),
    _C.BAD_OPENPGP: Entry(InvalidInput, "malformed or unsupported OpenPGP data"),
    _C.BAD_OPENPGP_TIME: Entry(InvalidInput,
                               "an OpenPGP signature time too far from the server's"),
    _C.BAD_PUBLIC_KEY: Entry(InvalidInput, "not a supported PEM public key"),
    _C.BAD_SIGNATURE: Entry(InvalidInput, "the server's answer is not a JAR signature block"),
    _C.BAD_SIGNATURE_ENCODING: Entry(InvalidInput, "a signature that is not base64"),
    _C.BAD_SIGNATURE_LENGTH: Entry(InvalidInput, "a signature of an impossible length"),
    _C.BAD_TIME: Entry(InvalidInput, "a time that is not ISO 8601 or out of range"),
    _C.BAD_USER_ID: Entry(InvalidInput, "an empty or malformed OpenPGP user ID"),
    _C.BAD_VERIFIER_KEY: Entry(InvalidInput,
                               "a note verifier key that is malformed, unsupported or ambiguous"),
    _C.BROKEN_CHAIN: Entry(InvalidInput, "a certificate not issued by the next in its chain"),
    _C.CERTIFICATE_KEY_MISMATCH: Entry(InvalidInput,
                                       "a certificate for another key than the version's"),
    _C.CERTIFICATE_NOT_CODE_SIGNING: Entry(InvalidInput,
                                           "a certificate that does not allow code signing"),
    _C.CERTIFICATE_REQUIRED: Entry(InvalidInput,
                                   "verifying needs the signer's --certificate"),
    _C.DIGEST_MISMATCH: Entry(InvalidInput, "the digest sent is not the upload's"),
    _C.IDENTITY_DISABLED: Entry(AuthenticationFailed,
                                "audit log only: the token of a disabled identity "
                                "(answered as authentication_failed)"),
    _C.INPUT_CHANGED: Entry(InvalidInput, "the JAR changed while it was signed"),
    _C.INVALID_PE: Entry(InvalidInput, "not a PE file signgate can sign"),
    _C.KEYSTORE_UNSEAL_FAILED: Entry(KeyStoreError,
                                     "the master key does not open the sealed key"),
    _C.KEY_ROTATED: Entry(Conflict, "the key rotated since the request was prepared: retry"),
    _C.LOG_NOT_READY: Entry(Unavailable, "the transparency log has no key or checkpoint yet"),
    _C.MALFORMED_JAR: Entry(VerificationFailed, "verifying: not a readable JAR"),
    _C.MALFORMED_NOTE: Entry(InvalidInput,
                             "a signed note, checkpoint or tlog proof that breaks its format"),
    _C.MALFORMED_PE: Entry(VerificationFailed, "verifying: not a validly signed PE file"),
    _C.MALFORMED_SIGNATURE: Entry(VerificationFailed, "verifying: a malformed CMS signature"),
    _C.MANIFEST_TOO_LARGE: Entry(PayloadTooLarge, "a JAR manifest over its size limit"),
    _C.NESTED_SIGNATURE: Entry(VerificationFailed,
                               "verifying: a nested Authenticode signature"),
    _C.NOTE_NOT_VERIFIED: Entry(VerificationFailed,
                                "no trusted key's signature verifies on the signed note"),
    _C.OIDC_ALGORITHM: Entry(AuthenticationFailed, "a CI token signed with an algorithm "
                             "not allowed (none, HMAC, ...)"),
    _C.OIDC_AUDIENCE: Entry(AuthenticationFailed,
                            "a CI token without the issuer's configured audience"),
    _C.OIDC_DISCOVERY_FAILED: Entry(InvalidInput, "adding an OIDC issuer: its discovery "
                                    "document cannot be fetched or names no JWKS"),
    _C.OIDC_EXPIRED: Entry(AuthenticationFailed, "a CI token past its exp"),
    _C.OIDC_ISSUER_UNAVAILABLE: Entry(Unavailable, "the OIDC issuer's discovery document or "
                                      "JWKS cannot be fetched: nothing accepted"),
    _C.OIDC_MALFORMED: Entry(AuthenticationFailed,
                             "not a JWT, or a required claim (iss, aud, exp, iat, jti) missing"),
    _C.OIDC_NOT_YET_VALID: Entry(AuthenticationFailed,
                                 "a CI token whose nbf or iat is in the future"),
    _C.OIDC_NO_GRANT: Entry(AuthenticationFailed,
                            "a valid CI token whose claims match no OIDC grant"),
    _C.OIDC_REPLAYED: Entry(AuthenticationFailed, "a CI token (its jti) exchanged before"),
    _C.OIDC_SESSION_EXPIRED: Entry(AuthenticationFailed,
                                   "the short-lived token from an OIDC exchange expired"),
    _C.OIDC_SIGNATURE: Entry(AuthenticationFailed,
                             "a CI token whose signature does not verify"),
    _C.OIDC_UNKNOWN_ISSUER: Entry(AuthenticationFailed,
                                  "a CI token from an issuer signgate is not configured for"),
    _C.OIDC_UNKNOWN_KEY: Entry(AuthenticationFailed,
                               "a CI token signed by a key (kid) not in the issuer's JWKS"),
    _C.SCAN_FINDINGS: Entry(Denied, "a scanner found something: not signed"),
    _C.SCAN_REQUIRED: Entry(Denied, "the key signs only uploaded, scanned artifacts"),
    _C.SCAN_SIZE_LIMIT: Entry(PayloadTooLarge, "over the scanner's size limit"),
    _C.SHUTTING_DOWN: Entry(Unavailable, "the server is stopping: nothing signed, retry"),
    _C.SIGNATURE_REQUIRED: Entry(InvalidInput, "verifying a detached format needs --signature"),
    _C.SPOOL_DISK_FULL: Entry(StorageFull, "the spool's disk is full"),
    _C.SPOOL_FULL: Entry(StorageFull, "the upload spool budget is used up"),
    _C.TIMESTAMP_REQUIRED: Entry(InvalidInput, "the format needs an RFC 3161 timestamp"),
    _C.TOO_FEW_COSIGNATURES: Entry(VerificationFailed,
                                   "fewer witnesses cosigned the checkpoint than required"),
    _C.TOO_MANY_ENTRIES: Entry(PayloadTooLarge, "a JAR with more entries than allowed"),
    _C.TOO_MANY_UPLOADS: Entry(LimitExceeded, "too many uploads of one identity at once"),
    _C.TSA_UNAVAILABLE: Entry(KeyStoreError, "no time-stamp authority answered"),
    _C.UNKNOWN_ALGORITHM: Entry(InvalidInput, "an unknown key algorithm"),
    _C.UNKNOWN_DIGEST_ALGORITHM: Entry(InvalidInput, "an unknown digest algorithm"),
    _C.UNKNOWN_FORMAT: Entry(InvalidInput, "an unknown signature format"),
    _C.UNKNOWN_LOG: Entry(NotFound, "a checkpoint of a log the witness is not configured for"),
    _C.UNKNOWN_PADDING: Entry(InvalidInput, "an unknown RSA padding"),
    _C.UNKNOWN_PARAMS: Entry(InvalidInput, "a parameter the format does not take"),
    _C.UNKNOWN_ROLE: Entry(InvalidInput, "an unknown role"),
    _C.UNKNOWN_SCAN_POLICY: Entry(InvalidInput, "a scan policy other than required or off"),
    _C.UNKNOWN_SETTING: Entry(ConfigError, "a config.toml key signgate does not know"),
    _C.UNSTORABLE_VALUE: Entry(InvalidInput, "a value the database cannot store"),
    _C.UNSUPPORTED_FORMAT: Entry(InvalidInput,
                                 "the format cannot be made with this key or digest"),
    _C.VAULT_SEALED: Entry(ConfigError, "the master key does not open this database's vault"),
    _C.WITNESS_SIZE_MISMATCH: Entry(Conflict,
                                    "the old size is not the size the witness last cosigned"),
    _C.WITNESS_UNAVAILABLE: Entry(Unavailable, "signed and recorded, but too few witnesses "
                                  "cosigned the log's checkpoint: the signature is withheld"),
    _C.ZIP_BOMB: Entry(InvalidInput, "a JAR that inflates beyond its limit"),
    _C.ALREADY_APPROVED: Entry(Conflict, "this identity already approved the request"),
    _C.BAD_APPROVAL_POLICY: Entry(InvalidInput, "an approval policy out of range"),
    _C.REQUEST_CLOSED: Entry(Conflict, "the request is already approved, signed or denied"),
    _C.REQUEST_DENIED: Entry(Denied, "an approver denied the signing request"),
    _C.REQUEST_EXPIRED: Entry(Conflict, "the request expired before its approvals"),
    _C.SELF_APPROVAL: Entry(Denied, "the requester may not approve its own request"),
    _C.BAD_BUILDER_POLICY: Entry(InvalidInput, "a builder policy out of range"),
    _C.BUILDER_MISMATCH: Entry(Conflict, "a builder submitted a different digest for the "
                               "release: it is stopped"),
    _C.RELEASE_REQUIRED: Entry(InvalidInput, "the key needs independent builders: the "
                               "signing must name its release label"),
    _C.RELEASE_STOPPED: Entry(Conflict, "the release was stopped by a builder mismatch"),
    _C.BAD_RELEASE_POLICY: Entry(InvalidInput,
                                 "a release window or quota out of range"),
    _C.NO_RELEASE_WINDOW: Entry(Denied, "an offline key signs only inside an open release "
                                "window for the caller (the sentence says how to open one)"),
    _C.QUOTA_EXCEEDED: Entry(LimitExceeded,
                             "the identity's signatures per UTC day with this key are used up"),
    _C.WINDOW_CLOSED: Entry(Conflict, "the release window is closed or over (or, to "
                            "approve, no longer waiting for approvals)"),
    _C.INVALID_MSI: Entry(InvalidInput, "not an MSI (compound file) signgate can sign"),
    _C.UI_SIGN_IN_REFUSED: Entry(AuthenticationFailed, "a console sign-in through the OIDC "
                                 "provider whose state, code or nonce did not check out"),
    _C.UI_UNKNOWN_PERSON: Entry(AuthenticationFailed, "a person the OIDC provider vouched "
                                "for who is no enabled signgate identity of kind user"),
}


def class_of(code: str) -> type[SigngateError] | None:
    """The class the catalogue binds ``code`` (a wire string) to; None for a code this
    version does not know (a newer server's)."""
    try:
        return CATALOGUE[ErrorCode(code)].cls
    except ValueError:
        return None


def rebuild(cls: type[SigngateError], message: str, code: ErrorCode | None = None,
            details: Mapping[str, Any] | None = None) -> SigngateError:
    """An instance of ``cls`` with ``message`` and ``code``, made without the class's own
    constructor (some take other arguments, e.g. ``retry_after``): how a client turns an
    answer back into the error the server raised."""
    exc = cls.__new__(cls)
    SigngateError.__init__(exc, message, code=code if code is not None else cls.code,
                           **(details or {}))
    return exc


def family_by_name(name: str) -> type[SigngateError]:
    """The error class called ``name``."""
    for entry in CATALOGUE.values():
        if entry.cls.__name__ == name:
            return entry.cls
    return SigngateError
