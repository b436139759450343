"""Scanner health: each configured engine with its version and whether it answers now
(the web console's overview shows it beside GET /healthz's database and key store).

Asking costs one short command per engine (clamd's VERSION over its socket; YARA's rule set
fingerprint, recompiled only if the rules changed), so it is done when a page is asked for,
never cached: a clamd that stopped shows as unreachable at once."""

from __future__ import annotations

from dataclasses import dataclass

from signgate.errors import SigngateError
from signgate.scan import denylist
from signgate.scan.clamd import ClamdScanner
from signgate.scan.scanners import Scanners
from signgate.scan.yara import YaraScanner


@dataclass(frozen=True)
class EngineHealth:
    engine: str  # "clamav", "yara", "denylist"
    version: str  # the engine's and its database's or rule set's versions, or ""
    reachable: bool
    detail: str = ""  # why it is not reachable


def engine_health(scanners: Scanners) -> list[EngineHealth]:
    """The configured engines, then the deny-list (always there); none configured: only
    the deny-list (signings that ask for a scan are then refused)."""
    out: list[EngineHealth] = []
    for engine in scanners.engines:
        try:
            if isinstance(engine, ClamdScanner):
                v = engine.version()
                version = f"ClamAV {v.engine} (database {v.database})"
            elif isinstance(engine, YaraScanner):
                version = f"YARA {engine.engine_version} (rules {engine.ruleset_version})"
            else:
                version = ""
            out.append(EngineHealth(engine.name, version, True))
        except SigngateError as exc:
            out.append(EngineHealth(engine.name, "", False, str(exc)))
    out.append(EngineHealth(denylist.ENGINE, f"deny-list {denylist.ENGINE_VERSION}", True))
    return out
