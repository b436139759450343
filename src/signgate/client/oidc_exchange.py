"""A CI job's OIDC token turned into a signgate token, once per CI token.

signgate accepts each CI token (its ``jti``) in one exchange only, but a job runs several
``signgate`` commands with the same ``SIGNGATE_OIDC_TOKEN``. So the short-lived token an
exchange returns is kept in the user's cache directory (``$XDG_CACHE_HOME/signgate/oidc``
or ``~/.cache/signgate/oidc``, mode 0700, files 0600), named by the SHA-256 of the CI
token, and reused until a minute before it expires. Expired entries are removed on the
way. The CI token itself is never written anywhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from signgate.client.client import SigngateClient

MARGIN = timedelta(seconds=60)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "signgate" / "oidc"


def _expires(entry: dict[str, object]) -> datetime | None:
    try:
        return datetime.fromisoformat(str(entry["expires_at"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return None


def signgate_token(url: str, ci_token: str,
                   transport: httpx.BaseTransport | None = None) -> str:
    """A signgate token for ``ci_token``: the cached one for this server and CI token if it
    is still good for a minute, else a new exchange (whose refusal is raised as is)."""
    now = datetime.now(UTC)
    name = hashlib.sha256(f"{url}\n{ci_token}".encode()).hexdigest()
    folder = cache_dir()
    path = folder / f"{name}.json"
    with contextlib.suppress(OSError, ValueError):
        entry = json.loads(path.read_text("utf-8"))
        ends = _expires(entry)
        if ends is not None and ends - MARGIN > now and isinstance(entry.get("token"), str):
            return str(entry["token"])
    with SigngateClient(url, None, transport=transport) as c:
        answer = c.exchange_oidc_token(ci_token)
    token = str(answer["token"])
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        _forget_expired(folder, now)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"token": token, "expires_at": answer["expires_at"]}, f)
    return token


def _forget_expired(folder: Path, now: datetime) -> None:
    for old in folder.glob("*.json"):
        with contextlib.suppress(OSError, ValueError):
            ends = _expires(json.loads(old.read_text("utf-8")))
            if ends is None or ends <= now:
                old.unlink()
