"""``GET /metrics``: the server's metrics (``signgate/metrics.py``) in Prometheus' text
format, for the caller ``config.toml``'s ``metrics`` lets read them.

With ``PROMETHEUS_MULTIPROC_DIR`` set (``serve --workers N``, N > 1) each worker writes
its values to a file of its own there and a scrape, whichever worker answers it, sums
them all: the answer is the whole server's. Otherwise it is this process's registry, with
the process and runtime metrics prometheus_client adds. The audit log's size is read from
the database at scrape time: it is the log's, not one process's.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from fastapi import APIRouter
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.responses import Response

from signgate.api.deps import Ctx, Who
from signgate.service import scrape

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# The classic text format, which every Prometheus version reads (generate_latest writes
# it: signgate's metric names need none of the newer format's escaping).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
router = APIRouter()


@router.get("/metrics", include_in_schema=False)
def read_metrics(ctx: Ctx, caller: Who) -> Response:
    """Prometheus text format; ``metrics = "token"`` wants a global auditor's token."""
    if ctx.settings.metrics == "public":
        entries = scrape.log_size(ctx)
    else:
        entries = scrape.authorize(ctx, caller)
    return Response(exposition(entries), media_type=CONTENT_TYPE)


class _Collected:
    """Another registry's metrics, as one collector of this scrape's registry."""

    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterable[Metric]:
        return self.source.collect()


class _LogSize:
    def __init__(self, entries: int) -> None:
        self.entries = entries

    def collect(self) -> Iterable[Metric]:
        yield GaugeMetricFamily("signgate_audit_log_entries",
                                "Entries in the audit log (its head's sequence number).",
                                value=self.entries)


def exposition(log_entries: int) -> bytes:
    """The text a scrape gets: every process's values (or this one's), and the log's size."""
    registry = CollectorRegistry(auto_describe=False)
    path = os.environ.get(MULTIPROC_ENV)
    collectors: list[Collector] = [_LogSize(log_entries)]
    if path:
        multiprocess.MultiProcessCollector(registry, path)  # type: ignore[no-untyped-call]
    else:
        collectors.append(_Collected(REGISTRY))
    for collector in collectors:
        registry.register(collector)
    return generate_latest(registry)


def process_ended() -> None:
    """A worker stops: its gauges stop counting (its counters and histograms stay)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
