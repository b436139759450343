"""A small synchronous client for the signgate API.

Besides one method per endpoint, two calls work on files: :meth:`SigngateClient.sign_file`
(the whole signing protocol, ``client/sign_file.py``) and :meth:`SigngateClient.verify_file`
(offline verification against signgate's root or given anchors, ``client/verify_file.py``).

Server errors (RFC 9457 problem+json) come back as the very :class:`SigngateError` class
the server raised, rebuilt from the problem's ``code`` through ``errors.CATALOGUE``, with
that code and the server's sentence as the message (:func:`_error_from`).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from signgate import errors
from signgate.client.answers import DEFAULT_URL, digest_body, error_from, error_of, key_path

if TYPE_CHECKING:
    from signgate.client.offline_verify import Report
    from signgate.client.sign_file import ProgressFactory, SignedFile
    from signgate.client.verify_file import RawVerdict
    from signgate.crypto.algorithms import DigestAlgorithm

UPLOAD_CHUNK = 1 << 20
# An upload is scanned before the answer comes: wait for as long as a scan may take.
UPLOAD_TIMEOUT = httpx.Timeout(30.0, read=3600.0)
# A batch of 1,000 signings (timestamped, witnessed) may take longer than one.
BATCH_TIMEOUT = httpx.Timeout(30.0, read=300.0)


def batch_error(item: Mapping[str, Any]) -> errors.SigngateError:
    """The refusal of one item of a batch signing's answer, as the error the single
    signing would have raised."""
    problem = item.get("problem") or {}
    return error_of(int(item.get("status") or 500), str(problem.get("detail") or "refused"),
                    str(problem.get("code") or ""))


def _hashes(proof: Any) -> list[bytes]:
    """The hashes of a proof answer (base64), checked for shape; not verified here."""
    try:
        hashes = [base64.b64decode(h, validate=True) for h in proof["hashes"]]
    except (KeyError, TypeError, ValueError):
        raise errors.Unavailable("the server answered a proof request with something that "
                                 "is not a proof") from None
    if any(len(h) != 32 for h in hashes):
        raise errors.Unavailable("the server's proof holds a hash that is not 32 bytes")
    return hashes


def _error_from(response: httpx.Response) -> errors.SigngateError:
    """The error a problem+json answer reports (``answers.error_from``)."""
    return error_from(response.status_code, response.reason_phrase, response.content)


def _event(line: str) -> dict[str, Any]:
    """One line of a progress stream: a JSON object, else the server is not signgate's."""
    try:
        event = json.loads(line)
    except ValueError:
        event = None
    if not isinstance(event, dict):
        raise errors.Unavailable("the server answered a progress stream with a line that is "
                                 "not a JSON object")
    return event


def _streamed_error(error: Any) -> errors.SigngateError:
    """The error a stream's last line reports, rebuilt as :func:`_error_from` does."""
    code = str(error.get("code", "")) if isinstance(error, dict) else ""
    detail = str(error.get("detail", "")) if isinstance(error, dict) else str(error)
    cls = errors.class_of(code)
    if cls is None:
        return errors.rebuild(errors.SigngateError, detail,
                              details={"server_code": code} if code else None)
    return errors.rebuild(cls, detail, errors.ErrorCode(code))


_key_path = key_path


class SigngateClient:
    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = (url or os.environ.get("SIGNGATE_URL") or DEFAULT_URL).rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._transport = transport
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout,
                                  transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SigngateClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.raw_request(method, path, **kwargs)
        return response.json() if response.content else None

    def raw_request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The response of a successful request (errors raised as for :meth:`request`)."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise errors.Unavailable(f"cannot reach signgate at {self.url}: {exc}") from exc
        if response.status_code >= 400:
            raise _error_from(response)
        return response

    def streamed(self, method: str, path: str,
                 progress: Callable[[int, int], None] | None = None, **kwargs: Any) -> Any:
        """The result of a long operation the server streams as NDJSON progress lines
        (api/progress.py): each line resets the read timeout, so only a server that stops
        answering for that long times out, not one that works for an hour."""
        headers = {"Accept": "application/x-ndjson", **kwargs.pop("headers", {})}
        try:
            with self._http.stream(method, path, headers=headers, **kwargs) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _error_from(response)
                for line in response.iter_lines():
                    if not line.strip():
                        continue
                    event = _event(line)
                    if "progress" in event and progress is not None:
                        p = event["progress"]
                        progress(int(p["done"]), int(p["total"]))
                    elif "result" in event:
                        return event["result"]
                    elif "error" in event:
                        raise _streamed_error(event["error"])
        except httpx.TransportError as exc:
            raise errors.Unavailable(f"cannot reach signgate at {self.url}: {exc}") from exc
        raise errors.Unavailable("the server's answer ended before its result")

    # -- the transparency log (public: no token needed) ---------------------------------
    def log_checkpoint(self) -> bytes:
        """The latest signed checkpoint note, as served (not verified here)."""
        return self.raw_request("GET", "/log/checkpoint").content

    def log_public_key(self) -> Any:
        return self.request("GET", "/log/public-key")

    def log_inclusion(self, index: int, size: int) -> list[bytes]:
        found = self.request("GET", "/log/proof/inclusion", params={"index": index,
                                                                     "size": size})
        return _hashes(found)

    def log_consistency(self, old: int, new: int) -> list[bytes]:
        found = self.request("GET", "/log/proof/consistency", params={"old": old, "new": new})
        return _hashes(found)

    # -- projects ---------------------------------------------------------------------
    def create_project(self, name: str) -> Any:
        return self.request("POST", "/api/v1/projects", json={"name": name})

    def list_projects(self) -> Any:
        return self.request("GET", "/api/v1/projects")

    # -- keys -------------------------------------------------------------------------
    def create_key(self, ref: str, algorithm: str = "ecdsa-p256", rsa_padding: str = "pss",
                   rotate_every_days: int | None = None,
                   max_signatures: int | None = None,
                   cert_validity_days: int = 365,
                   require_timestamp: bool = False, one_time: bool = False,
                   scan: str | None = None, store: str | None = None) -> Any:
        project, _, name = ref.partition("/")
        _key_path(ref)
        body = {"name": name, "algorithm": algorithm, "rsa_padding": rsa_padding,
                "rotate_every_days": rotate_every_days, "max_signatures": max_signatures,
                "cert_validity_days": cert_validity_days,
                "require_timestamp": require_timestamp, "one_time": one_time, "scan": scan,
                "store": store}
        return self.request("POST", f"/api/v1/projects/{quote(project, safe='')}/keys",
                            json=body)

    def list_keys(self, project: str | None = None) -> Any:
        params = {"project": project} if project else None
        return self.request("GET", "/api/v1/keys", params=params)

    def show_key(self, ref: str) -> Any:
        return self.request("GET", _key_path(ref))

    def public_key(self, ref: str, version: int | None = None) -> Any:
        params = {"version": version} if version is not None else None
        return self.request("GET", _key_path(ref) + "/public", params=params)

    def key_certificate(self, ref: str, version: int | None = None) -> Any:
        params = {"version": version} if version is not None else None
        return self.request("GET", _key_path(ref) + "/certificate", params=params)

    def key_csr(self, ref: str, version: int | None = None) -> Any:
        params = {"version": version} if version is not None else None
        return self.request("POST", _key_path(ref) + "/csr", params=params)

    def openpgp_key(self, ref: str, version: int | None = None,
                    user_id: str | None = None) -> Any:
        params = {k: v for k, v in (("version", version), ("user_id", user_id))
                  if v is not None}
        return self.request("POST", _key_path(ref) + "/openpgp", params=params)

    def import_certificate(self, ref: str, chain_pem: str, version: int | None = None) -> Any:
        return self.request("POST", _key_path(ref) + "/certificate",
                            json={"chain_pem": chain_pem, "version": version})

    def ca_certificate(self) -> Any:
        return self.request("GET", "/api/v1/ca/certificate")

    def tsa_certificate(self) -> Any:
        return self.request("GET", "/api/v1/ca/tsa-certificate")

    def trusted_root(self) -> Any:
        return self.request("GET", "/api/v1/ca/trusted-root")

    def sign_policy(self, ref: str, artifact_name: str) -> Any:
        return self.request("GET", _key_path(ref) + "/sign-policy",
                            params={"artifact_name": artifact_name})

    def set_scan_policy(self, ref: str, scan: str) -> Any:
        return self.request("POST", f"{_key_path(ref)}/scan-policy", json={"scan": scan})

    def key_action(self, ref: str, action: str) -> Any:
        return self.request("POST", f"{_key_path(ref)}/{action}")

    def rotate_key(self, ref: str, store: str | None = None) -> Any:
        """A new current version (in key store ``store``, if given)."""
        body = {"store": store} if store is not None else None
        return self.request("POST", f"{_key_path(ref)}/rotate", json=body)

    def revoke_key(self, ref: str, compromised_at: str, reason: str | None) -> Any:
        return self.request("POST", _key_path(ref) + "/revoke",
                            json={"compromised_at": compromised_at, "reason": reason})

    def blast_radius(self, ref: str, since: str,
                     progress: Callable[[int, int], None] | None = None) -> Any:
        """What the key signed since ``since``, with proofs; streamed like
        :meth:`audit_verify` (a hundred thousand proofs take longer than a read timeout)."""
        return self.streamed("GET", _key_path(ref) + "/blast-radius", progress,
                             params={"since": since})

    def sign_digest(self, ref: str, digest_algorithm: str, digest_hex: str, artifact_name: str,
                    metadata: dict[str, str] | None = None, timestamp: bool = False,
                    format: str = "raw", params: dict[str, str] | None = None,
                    release: str | None = None) -> Any:
        body = digest_body(digest_algorithm, digest_hex, artifact_name, metadata, timestamp,
                           format, params, release)
        return self.request("POST", _key_path(ref) + "/sign", json=body)

    def sign_batch(self, ref: str, items: Sequence[Mapping[str, Any]]) -> Any:
        """Sign up to 1,000 digests with ``ref`` in one request and one group commit. Each
        item is what :meth:`sign_digest` sends (``digest`` and ``artifact_name``; the
        rest as defaulted by the server). The answer: ``results``, one per item in order,
        each with ``status`` and ``result`` (200), ``request`` (202, waiting for
        approvals) or ``problem`` (refused: :func:`batch_error` rebuilds its error)."""
        return self.request("POST", _key_path(ref) + "/sign-batch",
                            json={"items": [dict(i) for i in items]},
                            timeout=BATCH_TIMEOUT)

    # -- quorum approvals ---------------------------------------------------------------
    def set_approval_policy(self, ref: str, approvals: int,
                            approver_scope: str | None = None) -> Any:
        return self.request("POST", _key_path(ref) + "/policy",
                            json={"approvals": approvals, "approver_scope": approver_scope})

    def set_builder_policy(self, ref: str, builders: int) -> Any:
        return self.request("POST", _key_path(ref) + "/policy",
                            json={"require_builders": builders})

    # -- release windows and quotas -----------------------------------------------------
    def set_release_policy(self, ref: str, offline: bool | None = None,
                           max_per_identity_per_day: int | None = None,
                           window_approvals: int | None = None) -> Any:
        return self.request("POST", _key_path(ref) + "/release-policy",
                            json={"offline": offline,
                                  "max_per_identity_per_day": max_per_identity_per_day,
                                  "window_approvals": window_approvals})

    def approve_window(self, window_id: str, comment: str | None = None) -> Any:
        return self.request("POST",
                            f"/api/v1/release-windows/{quote(window_id, safe='')}/approve",
                            json={"comment": comment})

    def open_window(self, ref: str, until: str, max_signatures: int | None = None,
                    signers: list[str] | None = None, label: str | None = None) -> Any:
        return self.request("POST", _key_path(ref) + "/release-windows",
                            json={"until": until, "max_signatures": max_signatures,
                                  "signers": signers or [], "label": label})

    def close_window(self, window_id: str) -> Any:
        return self.request("POST",
                            f"/api/v1/release-windows/{quote(window_id, safe='')}/close")

    def list_windows(self, ref: str | None = None, open_only: bool = False) -> Any:
        path = _key_path(ref) + "/release-windows" if ref else "/api/v1/release-windows"
        return self.request("GET", path, params={"open": "true"} if open_only else None)

    def list_requests(self, pending: bool = False) -> Any:
        return self.request("GET", "/api/v1/requests",
                            params={"pending": "true"} if pending else None)

    def get_request(self, request_id: str) -> Any:
        return self.request("GET", f"/api/v1/requests/{quote(request_id, safe='')}")

    def approve(self, request_id: str, comment: str | None = None) -> Any:
        return self.request("POST", f"/api/v1/requests/{quote(request_id, safe='')}/approve",
                            json={"comment": comment})

    def deny(self, request_id: str, reason: str) -> Any:
        return self.request("POST", f"/api/v1/requests/{quote(request_id, safe='')}/deny",
                            json={"reason": reason})

    def verify_digest(self, ref: str, digest_algorithm: str, digest_hex: str,
                      signature_b64: str) -> Any:
        body = {"digest_algorithm": digest_algorithm, "digest": digest_hex,
                "signature": signature_b64}
        return self.request("POST", _key_path(ref) + "/verify", json=body)

    # -- identities and grants ----------------------------------------------------------
    def whoami(self) -> Any:
        return self.request("GET", "/api/v1/whoami")

    def create_identity(self, name: str, kind: str) -> Any:
        return self.request("POST", "/api/v1/identities", json={"name": name, "kind": kind})

    def list_identities(self) -> Any:
        return self.request("GET", "/api/v1/identities")

    def identity_action(self, name: str, action: str) -> Any:
        return self.request("POST", f"/api/v1/identities/{quote(name, safe='')}/{action}")

    def add_oidc_grant(self, issuer: str, claims: list[str], role: str, scope: str) -> Any:
        return self.request("POST", "/api/v1/grants",
                            json={"oidc": issuer, "claims": claims, "role": role,
                                  "scope": scope})

    def remove_oidc_grant(self, issuer: str, claims: list[str], role: str, scope: str) -> Any:
        return self.request("DELETE", "/api/v1/grants",
                            params={"oidc": issuer, "claim": claims, "role": role,
                                    "scope": scope})

    # -- OIDC issuers and the exchange ------------------------------------------------------
    def add_oidc_issuer(self, name: str, issuer: str, audience: str,
                        jwks_url: str | None = None) -> Any:
        return self.request("POST", "/api/v1/oidc/issuers",
                            json={"name": name, "issuer": issuer, "audience": audience,
                                  "jwks_url": jwks_url})

    def list_oidc_issuers(self) -> Any:
        return self.request("GET", "/api/v1/oidc/issuers")

    def remove_oidc_issuer(self, name: str) -> Any:
        return self.request("DELETE", f"/api/v1/oidc/issuers/{quote(name, safe='')}")

    def exchange_oidc_token(self, token: str) -> Any:
        """A short-lived signgate token for a CI job's OIDC token (needs no signgate token):
        ``{"token", "expires_at", "identity", "issuer", "grants", "claims"}``."""
        return self.request("POST", "/api/v1/oidc/token", json={"token": token})

    def add_grant(self, identity: str, role: str, scope: str) -> Any:
        return self.request("POST", "/api/v1/grants",
                            json={"identity": identity, "role": role, "scope": scope})

    def remove_grant(self, identity: str, role: str, scope: str) -> Any:
        return self.request("DELETE", "/api/v1/grants",
                            params={"identity": identity, "role": role, "scope": scope})

    def list_grants(self, identity: str | None = None) -> Any:
        return self.request("GET", "/api/v1/grants",
                            params={"identity": identity} if identity else None)

    # -- audit --------------------------------------------------------------------------
    def audit_page(self, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        return self.request("GET", "/api/v1/audit", params=clean)

    def audit_verify(self, progress: Callable[[int, int], None] | None = None) -> Any:
        """The verification's result; asked as a stream of progress lines (``progress`` is
        told entries checked, entries to check), so that it never times out however long
        the log (the server sends a line at least every half second)."""
        return self.streamed("GET", "/api/v1/audit/verify", progress)

    def signature_page(self, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        return self.request("GET", "/api/v1/reports/signatures", params=clean)

    def signature_totals(self, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        return self.request("GET", "/api/v1/reports/signatures/totals", params=clean)

    # -- scanning -----------------------------------------------------------------------
    def sign_upload(self, ref: str, path: Path, request: dict[str, Any],
                    progress: Callable[[int], None] | None = None,
                    hasher: Any = None) -> Any:
        """Upload ``path`` for signgate to scan, hash and sign (keys with scan required).
        ``hasher`` (a ``hashlib`` object) is fed every byte as it is sent."""
        header = json.dumps(request, ensure_ascii=True, separators=(",", ":"))
        return self._upload(_key_path(ref) + "/sign-upload", path, progress,
                            hasher, headers={"Signgate-Sign": header})

    def scan_upload(self, path: Path, name: str,
                    progress: Callable[[int], None] | None = None) -> Any:
        return self._upload("/api/v1/scan", path, progress, params={"name": name})

    def _upload(self, api_path: str, path: Path, progress: Callable[[int], None] | None,
                hasher: Any = None, **kwargs: Any) -> Any:
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise errors.InvalidInput(f"cannot read {path}: {exc.strerror}") from exc

        def chunks() -> Iterator[bytes]:
            with path.open("rb") as f:
                while chunk := f.read(UPLOAD_CHUNK):
                    if hasher is not None:
                        hasher.update(chunk)
                    if progress is not None:
                        progress(len(chunk))
                    yield chunk

        headers = {**kwargs.pop("headers", {}), "Content-Length": str(size),
                   "Content-Type": "application/octet-stream"}
        return self.request("POST", api_path, content=chunks(), headers=headers,
                            timeout=UPLOAD_TIMEOUT, **kwargs)

    def deny_list(self) -> Any:
        return self.request("GET", "/api/v1/deny-list")

    def deny_add(self, sha256: str, reason: str) -> Any:
        return self.request("POST", "/api/v1/deny-list", json={"sha256": sha256,
                                                               "reason": reason})

    def deny_remove(self, sha256: str) -> Any:
        return self.request("DELETE", f"/api/v1/deny-list/{sha256}")

    # -- files --------------------------------------------------------------------------
    def sign_file(self, path: Path, key: str, format: str = "raw", *,
                  digest: DigestAlgorithm | None = None, output: Path | None = None,
                  metadata: Mapping[str, str] | None = None,
                  artifact_name: str | None = None, upload: bool = False,
                  timestamp: bool = True, progress: ProgressFactory | None = None,
                  on_scan: Callable[[Mapping[str, Any]], None] | None = None,
                  wait: float | None = None,
                  on_pending: Callable[[Mapping[str, Any]], None] | None = None,
                  release: str | None = None,
                  params: Mapping[str, str] | None = None) -> SignedFile:
        """Sign the file ``path`` with ``key`` (PROJECT/NAME) in ``format`` (``digest``:
        the format's default unless given, SHA-256 but for sshsig's SHA-512; ``params``:
        the format's parameters, e.g. ``{"namespace": "file"}`` for sshsig); the receipt
        and the paths written. See :func:`signgate.client.sign_file.sign_file`."""
        # The file calls are imported when used: they pull in the formats and pki, which
        # the other commands of a short-lived CLI process do not need (cli/main.py).
        from signgate.client.sign_file import sign_file
        from signgate.formats.registry import default_digest

        return sign_file(self, path, key, format, digest=digest or default_digest(format),
                         output=output, metadata=metadata, artifact_name=artifact_name,
                         upload=upload, timestamp=timestamp, progress=progress, on_scan=on_scan,
                         wait=wait, on_pending=on_pending, release=release, params=params)

    def verify_file(self, path: Path, signature: Path | None = None,
                    format: str | None = None, *, ca_files: Sequence[Path] = (),
                    certificate_files: Sequence[Path] = (), crl_files: Sequence[Path] = (),
                    check_revocation: bool = True,
                    allow_untimestamped: bool = False) -> Report:
        """Verify the signed file ``path`` offline: chain to ``ca_files`` (default:
        signgate's root, fetched from this server), timestamp, revocation. A Report; its
        ``valid`` is False, with the reason, when the signature does not hold."""
        from signgate.client.verify_file import http_getter, verify_signed_file

        return verify_signed_file(
            path, signature, format, ca_files=ca_files, root=self.root_certificate,
            certificate_files=certificate_files, crl_files=crl_files, server_url=self.url,
            get=http_getter(self._transport), check_revocation=check_revocation,
            allow_untimestamped=allow_untimestamped)

    def verify_raw_file(self, path: Path, signature: Path, key: str,
                        digest: DigestAlgorithm | None = None,
                        progress: ProgressFactory | None = None) -> RawVerdict:
        """Check a raw signature of ``path`` against ``key``'s versions and revocation
        state on the server (which version signed, and whether before a compromise)."""
        from signgate.client.verify_file import verify_raw_file
        from signgate.crypto.algorithms import DigestAlgorithm

        return verify_raw_file(path, signature, digest or DigestAlgorithm.SHA256, key=key,
                               connect=lambda: nullcontext(self), progress=progress)

    def root_certificate(self) -> bytes:
        """signgate's root CA certificate, DER."""
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding

        pem = str(self.ca_certificate()["pem"])
        return x509.load_pem_x509_certificate(pem.encode()).public_bytes(Encoding.DER)
