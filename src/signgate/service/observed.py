"""What the server's metrics (``signgate/metrics.py``) count of the service's work.

Signatures and refusals are counted from the audit entries a transaction committed, not
where the work happens: what the metrics say was signed or refused is then exactly what is
on the record, and a batch that rolled back is never counted.
"""

from __future__ import annotations

from collections.abc import Sequence

from signgate import metrics
from signgate.audit.model import Action, Outcome, Record
from signgate.errors import ErrorCode
from signgate.scan.outcome import ScanOutcome
from signgate.service.auth_failures import ANONYMOUS

# Refusals whose key, if named at all, came from the request and may not exist (or may
# not be visible to the caller): counted without it, so that a label value is never made
# for a key name someone invented.
_UNKNOWN_KEY = frozenset({ErrorCode.NOT_FOUND.value, ErrorCode.INVALID_INPUT.value})


def committed(records: Sequence[Record], commit_seconds: float) -> None:
    """One write transaction committed ``records`` in ``commit_seconds``."""
    metrics.COMMIT_SECONDS.observe(commit_seconds)
    for r in records:
        if r.outcome is Outcome.ALLOWED:
            if r.action is Action.SIGN:
                metrics.signed(r.key_ref or "", str(r.details.get("format", "")))
            continue
        code = str(r.details.get("code", ""))
        attempts = r.details.get("attempts", 1) if r.action is Action.AUTHENTICATE else 1
        key = r.key_ref or ""
        if r.actor == ANONYMOUS or code in _UNKNOWN_KEY:
            key = ""
        metrics.refused(key, r.action.value, code,
                        attempts if isinstance(attempts, int) and attempts > 0 else 1)


def scanned(outcome: ScanOutcome, seconds: float) -> None:
    """One artifact judged in ``seconds``: its overall verdict and each scanner's."""
    metrics.SCANS.labels(outcome.verdict).inc()
    metrics.SCAN_SECONDS.observe(seconds)
    for v in outcome.verdicts:
        metrics.SCANNER_VERDICTS.labels(v.engine, "clean" if v.clean else "flagged").inc()
        metrics.SCANNER_SECONDS.labels(v.engine).observe(v.seconds)
    engine = getattr(outcome.error, "engine", None)
    if isinstance(engine, str):  # the scanner that could not answer
        metrics.SCANNER_VERDICTS.labels(engine, "unavailable").inc()
