"""The server's Prometheus metrics: the metric objects and the tiny helpers that move them.

Why one module at the bottom of the layers: the things worth counting happen in low
layers (a key store signs, a group commit takes a batch) and in high ones (a request is
answered), and every layer may import this module without reaching up. It defines values
only; ``api/metrics.py`` exposes them (``GET /metrics``) and ``api/observe.py`` times the
requests. Only the server imports it: importing prometheus_client costs about 0.1 s, which
the command-line client must not pay.

Several processes. prometheus_client keeps values in memory, or, when the environment
variable ``PROMETHEUS_MULTIPROC_DIR`` is set before it is imported, in one memory-mapped
file per process in that directory, which ``/metrics`` then sums over (its multiprocess
mode). ``signgate serve --workers N`` (N > 1) sets it to ``DATA_DIR/metrics`` before the
workers start, so whichever worker answers a scrape reports the whole server.

Labels never carry secrets: key names (``project/name``), formats, error codes, route
templates, scanner and store names, all of bounded number. Keys named in refusals come
from the request, so their number is capped (:func:`key_label`): a caller cannot make
the server keep a label value per invented key name.
"""

from __future__ import annotations

import threading
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

# No ``*_created`` series: they double what every scrape carries and say only when the
# process started.
disable_created_metrics()  # type: ignore[no-untyped-call]

# Latency buckets, in seconds: from what a request costs at best (sub-millisecond) to the
# slow end of each kind of work.
_HTTP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                 5.0, 10.0, 30.0)
_COMMIT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                   0.25, 1.0, 5.0)
_STORE_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                  0.1, 0.5, 2.0)
_SCAN_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0)
_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000)

HTTP_REQUESTS = Histogram(
    "signgate_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response, by route template (never "
    "the raw path), method and status class.",
    ["route", "method", "status"], buckets=_HTTP_BUCKETS)
SIGNATURES = Counter(
    "signgate_signatures",
    "Signatures whose audit entry was committed, by key (project/name) and format.",
    ["key", "format"])
REFUSALS = Counter(
    "signgate_refusals",
    "Refusals recorded in the audit log, by key (empty when none or not known to exist), "
    "action and reason (the error code); failed authentications count every attempt.",
    ["key", "action", "reason"])
BATCH_SIZE = Histogram(
    "signgate_group_commit_batch_size",
    "Jobs (signing requests) per group-commit batch.",
    ["committer"], buckets=_BATCH_SIZES)
BATCH_SECONDS = Histogram(
    "signgate_group_commit_batch_seconds",
    "Time one group-commit batch takes: decide, sign, record and commit every job.",
    ["committer"], buckets=_COMMIT_BUCKETS)
QUEUE_DEPTH = Gauge(
    "signgate_group_commit_queue_depth",
    "Jobs that queued up while a group committer's last batch was processed (summed over "
    "live worker processes).",
    ["committer"], multiprocess_mode="livesum")
COMMIT_SECONDS = Histogram(
    "signgate_db_commit_seconds",
    "Time the database takes to commit one write transaction (with its audit entries).",
    buckets=_COMMIT_BUCKETS)
KEYSTORE_SIGN = Histogram(
    "signgate_keystore_sign_seconds",
    "Time a key store takes to sign one digest, by kind of store (soft, soft-once, pkcs11).",
    ["store"], buckets=_STORE_BUCKETS)
KEYSTORE_FAILURES = Counter(
    "signgate_keystore_sign_failures",
    "Signings a key store failed, by kind of store.", ["store"])
SCANS = Counter(
    "signgate_scans",
    "Artifacts scanned, by overall verdict (clean, flagged, unavailable, error).",
    ["verdict"])
SCAN_SECONDS = Histogram(
    "signgate_scan_seconds",
    "Time to judge one received artifact: the deny-list's look-up and every scanner "
    "(clamd's streamed verdict counts as it was given).", buckets=_SCAN_BUCKETS)
SCANNER_VERDICTS = Counter(
    "signgate_scanner_verdicts",
    "Each scanner's verdicts (clean, flagged, unavailable), by scanner.",
    ["scanner", "verdict"])
SCANNER_SECONDS = Histogram(
    "signgate_scanner_seconds",
    "Time one scanner took for one artifact, by scanner.",
    ["scanner"], buckets=_SCAN_BUCKETS)
WITNESS_COSIGNATURES = Counter(
    "signgate_witness_cosignatures",
    "Answers of the log's witnesses to a request to cosign a checkpoint, by witness and "
    "outcome (cosigned, past, skipped, or the error code).",
    ["witness", "outcome"])

# At most this many distinct keys are named in refusal labels per process; further ones
# are counted under OTHER_KEY.
MAX_KEY_LABELS = 2000
OTHER_KEY = "(other)"
_keys_seen: set[str] = set()
_keys_lock = threading.Lock()


def key_label(key: str) -> str:
    """``key`` as a label value, or :data:`OTHER_KEY` once :data:`MAX_KEY_LABELS` keys
    have been named (bounded cardinality, whatever the requests name)."""
    if key in _keys_seen or not key:
        return key
    with _keys_lock:
        if len(_keys_seen) >= MAX_KEY_LABELS:
            return OTHER_KEY
        _keys_seen.add(key)
    return key


class Children:
    """The labelled children of one metric, cached by their label values: ``labels()``
    validates and locks on every call, a dictionary look-up does not (hot paths)."""

    __slots__ = ("_children", "_metric")

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


_signatures = Children(SIGNATURES)
_refusals = Children(REFUSALS)


def signed(key: str, fmt: str) -> None:
    _signatures(key, fmt).inc()


def refused(key: str, action: str, reason: str, count: int = 1) -> None:
    _refusals(key_label(key), action, reason).inc(count)


_store_sign = Children(KEYSTORE_SIGN)


def keystore_signed(store: str, seconds: float) -> None:
    _store_sign(store).observe(seconds)


def keystore_failed(store: str) -> None:
    KEYSTORE_FAILURES.labels(store).inc()
