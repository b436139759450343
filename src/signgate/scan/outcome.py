"""What signgate found out about an artifact before any key saw it: a pure value (the
verdicts of the scanners, or why they could not judge) that the signing path enforces
and records in the audit entry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from signgate.errors import Denied, ErrorCode, ScannerUnavailable, SigngateError
from signgate.scan.base import Verdict


@dataclass(frozen=True)
class ScanOutcome:
    """What signgate found out about an uploaded artifact before any key saw it."""

    sha256: str
    size: int
    verdicts: tuple[Verdict, ...] = ()
    error: SigngateError | None = None  # the scan (or the artifact) could not be judged

    @property
    def findings(self) -> list[str]:
        return [f"{v.engine}: {f}" for v in self.verdicts for f in v.findings]

    @property
    def verdict(self) -> str:
        if self.error is not None:
            return "unavailable" if isinstance(self.error, ScannerUnavailable) else "error"
        return "flagged" if self.findings else "clean"

    def details(self) -> dict[str, Any]:
        """For the audit entry: verdict, findings, every engine and rule-set version."""
        out: dict[str, Any] = {
            "verdict": self.verdict, "artifact_sha256": self.sha256,
            "artifact_size": self.size,
            "engines": [{"engine": v.engine, "engine_version": v.engine_version,
                         "ruleset_version": v.ruleset_version,
                         "seconds": round(v.seconds, 3), "findings": list(v.findings)}
                        for v in self.verdicts],
        }
        if self.findings:
            out["findings"] = self.findings
        if self.error is not None:
            out["error"] = str(self.error)
        return out

    def enforce(self, artifact: str) -> None:
        """Raise unless the artifact was scanned clean."""
        if self.error is not None:
            raise self.error
        if self.findings:
            raise Denied(f"{artifact} is refused: {'; '.join(self.findings)}",
                         code=ErrorCode.SCAN_FINDINGS)
