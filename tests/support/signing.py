"""Signing requests for the service-level tests, named the way the CLI names keys."""

from __future__ import annotations

from collections.abc import Mapping

from signgate.service.caller import Caller
from signgate.service.sign_request import SignRequest


def sign_request(caller: Caller, ref: str, digest_algorithm: str, digest: str,
                 artifact_name: str, metadata: Mapping[str, str] | None = None, *,
                 format: str = "raw", timestamp: bool = False,
                 params: Mapping[str, str] | None = None) -> SignRequest:
    """A :class:`SignRequest` for the key ``ref`` (``PROJECT/NAME``)."""
    project, _, key = ref.partition("/")
    return SignRequest(caller, project, key, digest_algorithm, digest, artifact_name,
                       metadata or {}, timestamp, format, params or {})
