"""Schemathesis hooks for the conformance run in tests/e2e/test_openapi.py (loaded through
SCHEMATHESIS_HOOKS): a TimeStampReq body is opaque bytes, sent like octet-stream."""

from __future__ import annotations

import schemathesis

schemathesis.serializer.alias("application/timestamp-query", "application/octet-stream")
