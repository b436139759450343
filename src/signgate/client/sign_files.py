"""Sign many files with one key: a release's hundreds of files in one request.

Every file is hashed here and the digests go to the batch route (``/sign-batch``) in as
few requests as its limits allow (1,000 items, and well under the server's 1 MiB body
limit), each decided on its own and all signed in one group commit on the server. Each
signed file's outputs are written exactly as :func:`~signgate.client.sign_file.sign_file`
writes them (OUT, OUT.tsr, OUT.pem, OUT.proof, each atomically); a refused file gets
nothing written and its error in its :class:`FileOutcome`.

The formats that sign the file in place (authenticode, jar), an ``upload`` asked for, and
a key that signs only what signgate scanned itself (every file uploaded) go one request per
file through ``sign_file`` instead: an upload carries the file, not a digest.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signgate.client.answers import error_of
from signgate.client.sign_file import (
    ProgressFactory,
    SignedFile,
    SigningApi,
    SigningPending,
    await_result,
    current_key_info,
    default_output,
    is_request,
    no_progress,
    sign_file,
    signing_body,
    with_params,
    write_result,
)
from signgate.crypto.algorithms import DigestAlgorithm
from signgate.errors import InvalidInput, SigngateError
from signgate.formats import registry as formats
from signgate.formats.base import Prepared

MAX_ITEMS = 1000  # the batch route's limit
MAX_BODY = 768 << 10  # bytes of JSON per request: the server refuses bodies over 1 MiB


@dataclass(frozen=True)
class FileOutcome:
    """What became of one file: signed, waiting for approvals, or refused."""

    path: Path
    signed: SignedFile | None = None
    pending: Mapping[str, Any] | None = None  # the request that waits (not waited for)
    error: SigngateError | None = None


# Told ("hashed" or "signed", files done, files in all) as the work goes on.
Counter = Callable[[str, int, int], None]


def sign_files(client: SigningApi, paths: Sequence[Path], ref: str, fmt: str = "raw", *,
               digest: DigestAlgorithm = DigestAlgorithm.SHA256,
               metadata: Mapping[str, str] | None = None, upload: bool = False,
               timestamp: bool = True, progress: ProgressFactory | None = None,
               on_scan: Callable[[Mapping[str, Any]], None] | None = None,
               wait: float | None = None,
               on_pending: Callable[[Mapping[str, Any]], None] | None = None,
               release: str | None = None, counter: Counter | None = None,
               params: Mapping[str, str] | None = None) -> list[FileOutcome]:
    """Sign each of ``paths`` with ``ref`` in ``fmt``; one outcome per path, in order.
    Refusals of single files are outcomes, not raised; an error that stops the whole
    batch (the server unreachable, the batch refused whole) is raised before anything
    of its files was written. ``params``: as :func:`sign_file`'s."""
    if not paths:
        raise InvalidInput("no files to sign")
    side = formats.client(fmt)
    progress = progress or no_progress
    count: Counter = counter or (lambda _stage, _done, _total: None)
    # One question for the whole batch: a refusal before hundreds of files are read, and
    # whether the key signs only what signgate scanned (then every file is uploaded).
    policy = client.sign_policy(ref, paths[0].name)
    if side.embedded or upload or policy["scan_required"]:
        return [_one(client, p, ref, fmt, digest, metadata, upload, timestamp, progress,
                     on_scan, wait, on_pending, release, count, i, len(paths), params)
                for i, p in enumerate(paths)]
    key_info: list[Any] = []

    def key() -> Any:  # fetched once, for formats whose signed data names the key
        if not key_info:
            key_info.append(current_key_info(client, ref, bool(policy["one_time"])))
        return key_info[0]

    prepared: list[Prepared] = []
    for done, path in enumerate(paths, 1):
        with progress("hashing", path) as bar:
            prepared.append(with_params(side.prepare(path, digest, bar, key), params))
        count("hashed", done, len(paths))
    items = [signing_body(p.name, fmt, prep, metadata, timestamp, release)
             for p, prep in zip(paths, prepared, strict=True)]
    answers: list[Mapping[str, Any]] = []
    for chunk in _chunks(items):
        answer = client.sign_batch(ref, chunk)
        results = answer["results"]
        if len(results) != len(chunk):
            raise SigngateError(f"the server answered {len(results)} outcomes for "
                                f"{len(chunk)} files")
        answers.extend(results)
        count("signed", len(answers), len(paths))
    return [_outcome(client, path, fmt, prep, item, wait, on_pending)
            for path, prep, item in zip(paths, prepared, answers, strict=True)]


def _outcome(client: SigningApi, path: Path, fmt: str, prepared: Prepared,
             item: Mapping[str, Any], wait: float | None,
             on_pending: Callable[[Mapping[str, Any]], None] | None) -> FileOutcome:
    status = int(item.get("status") or 0)
    if status == 200:
        return FileOutcome(path, signed=write_result(path, fmt, prepared, item["result"],
                                                     default_output(path, fmt)))
    if status == 202 and is_request(item.get("request") or {}):
        try:
            result = await_result(client, item["request"], wait, on_pending)
        except SigningPending as held:
            return FileOutcome(path, pending=held.request)
        except SigngateError as exc:
            return FileOutcome(path, error=exc)
        return FileOutcome(path, signed=write_result(path, fmt, prepared, result,
                                                     default_output(path, fmt)))
    problem = item.get("problem") or {}
    return FileOutcome(path, error=error_of(status or 500, str(problem.get("detail")
                                                               or "refused"),
                                            str(problem.get("code") or "")))


def _one(client: SigningApi, path: Path, ref: str, fmt: str, digest: DigestAlgorithm,
         metadata: Mapping[str, str] | None, upload: bool, timestamp: bool,
         progress: ProgressFactory, on_scan: Callable[[Mapping[str, Any]], None] | None,
         wait: float | None, on_pending: Callable[[Mapping[str, Any]], None] | None,
         release: str | None, count: Counter, index: int, total: int,
         params: Mapping[str, str] | None) -> FileOutcome:
    """One file in a request of its own (an upload, or a format that signs in place)."""
    try:
        signed = sign_file(client, path, ref, fmt, digest=digest, metadata=metadata,
                           upload=upload, timestamp=timestamp, progress=progress,
                           on_scan=on_scan, wait=wait, on_pending=on_pending, release=release,
                           params=params)
    except SigningPending as held:
        return FileOutcome(path, pending=held.request)
    except SigngateError as exc:
        return FileOutcome(path, error=exc)
    finally:
        count("signed", index + 1, total)
    return FileOutcome(path, signed=signed)


def _chunks(items: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The items in requests of at most MAX_ITEMS items and about MAX_BODY bytes."""
    chunks: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    size = 0
    for item in items:
        n = len(json.dumps(item, separators=(",", ":"))) + 1
        if current and (len(current) >= MAX_ITEMS or size + n > MAX_BODY):
            chunks.append(current)
            current, size = [], 0
        current.append(item)
        size += n
    if current:
        chunks.append(current)
    return chunks
