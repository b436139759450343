"""Timestamps from external RFC 3161 authorities, for deployments that must use a public
TSA: the URLs are tried in order and the first valid answer wins (fallback on any
failure). No answer at all refuses the signing: a signature that must be timestamped is
never handed out without its token."""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime

import httpx
from asn1crypto import cms, tsp

from signgate.errors import ErrorCode, KeyStoreError
from signgate.pki import tsa as rfc3161

log = logging.getLogger("signgate.tsa")
TIMEOUT = httpx.Timeout(10.0, connect=3.0)
MAX_REPLY = 256 * 1024


@dataclass(frozen=True)
class ExternalToken:
    der: bytes  # the TimeStampResp
    serial: int
    gen_time: datetime
    url: str


def _query(imprint: bytes, nonce: int) -> bytes:
    return bytes(tsp.TimeStampReq({
        "version": "v1",
        "message_imprint": {"hash_algorithm": {"algorithm": "sha256"},
                            "hashed_message": imprint},
        "nonce": nonce,
        "cert_req": True,
    }).dump())


def _check(reply: bytes, imprint: bytes, nonce: int) -> tuple[int, datetime]:
    """The reply is granted and is about our imprint and nonce (RFC 3161 §2.4.2)."""
    response = rfc3161.TimeStampResp.load(reply)
    status = response["status"]["status"].native
    if status not in ("granted", "granted_with_mods"):
        raise ValueError(f"the TSA answered {status}")
    content = response["time_stamp_token"]["content"]
    if not isinstance(content, cms.SignedData):
        raise ValueError("the token is not SignedData")
    info = content["encap_content_info"]["content"].parsed
    if info["message_imprint"]["hashed_message"].native != imprint:
        raise ValueError("the token is for another imprint")
    if info["nonce"].native != nonce:
        raise ValueError("the token does not echo our nonce")
    return int(info["serial_number"].native), info["gen_time"].native


def fetch(urls: tuple[str, ...], signature: bytes,
          transport: httpx.BaseTransport | None = None) -> ExternalToken:
    """A token over ``signature`` from the first of ``urls`` that gives a valid one."""
    imprint = hashlib.sha256(signature).digest()
    failures = []
    with httpx.Client(timeout=TIMEOUT, transport=transport) as client:
        for url in urls:
            nonce = secrets.randbits(63)
            try:
                r = client.post(url, content=_query(imprint, nonce),
                                headers={"Content-Type": "application/timestamp-query"})
                if r.status_code != 200 or len(r.content) > MAX_REPLY:
                    raise ValueError(f"HTTP {r.status_code}")
                serial, gen_time = _check(r.content, imprint, nonce)
                return ExternalToken(r.content, serial, gen_time, url)
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                log.warning("time-stamp authority %s failed: %s", url, exc)
                failures.append(f"{url}: {exc}")
    raise KeyStoreError("no time-stamp authority answered: " + "; ".join(failures),
                        code=ErrorCode.TSA_UNAVAILABLE)
