"""Group commit, in general: many waiters, one writer thread, one batch at a time.

A result may be handed out only once the work that produced it is durable, and durable
work (a commit) is a point of serialisation. Doing it per request makes its fixed cost the
ceiling. Instead, jobs queue up while a batch is in flight, and one writer thread hands
the whole queue (up to ``max_batch``) to ``process`` in the next batch.

This module knows nothing of signing or databases: ``process(jobs, more)`` returns one result
or exception per job, in order, and is the one place the durable work happens. Waiters
are threads (:meth:`GroupCommitter.submit`) or event loops
(:meth:`GroupCommitter.submit_async`); none learns its outcome before ``process`` has
returned, and each event loop is woken once per batch, not once per job.

A caller with many jobs at once (:meth:`GroupCommitter.submit_many`, a batch signing)
queues them as one group: a group is never split across batches, so that it costs its
caller one commit. It is taken whole even when it makes the batch larger than
``max_batch`` (the limit bounds how much the queue piles into one transaction; a group is
bounded by whoever made it, and splitting it would only add commits that its caller
waits for one after the other).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

log = logging.getLogger("signgate.committer")

Job = TypeVar("Job")
Result = TypeVar("Result")


class _Waiter(Generic[Job, Result]):
    """One job and who waits for it: a thread (``future``) or a loop (``loop``+``waiter``).
    A group (``group``) waits for the list of its jobs' outcomes instead."""

    __slots__ = ("future", "group", "jobs", "loop", "waiter")

    def __init__(self, jobs: list[Job], group: bool = False) -> None:
        self.jobs = jobs
        self.group = group
        self.future: Future[Any] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.waiter: asyncio.Future[Any] | None = None


class GroupCommitter(Generic[Job, Result]):
    """A queue and the one thread that empties it into ``process``, batch by batch."""

    def __init__(self, process: Callable[[Sequence[Job], Callable[[], list[Job]]],
                                         Sequence[Result | Exception]],
                 max_batch: int = 256, name: str = "signgate-committer") -> None:
        self._process = process
        self.max_batch = max_batch
        self._name = name
        self._queue: queue.SimpleQueue[_Waiter[Job, Result] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._stop = False  # the close sentinel was taken with the current batch

    def submit(self, job: Job) -> Result:
        """``job``'s result once its batch has been processed (its exception, raised)."""
        waiter: _Waiter[Job, Result] = _Waiter([job])
        future: Future[Result] = Future()
        waiter.future = future
        self._enqueue(waiter)
        return future.result()

    async def submit_async(self, job: Job) -> Result:
        """The same for an event loop: waits without holding a thread."""
        waiter: _Waiter[Job, Result] = _Waiter([job])
        waiter.loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = waiter.loop.create_future()
        waiter.waiter = future
        self._enqueue(waiter)
        return await future

    def submit_many(self, jobs: Sequence[Job]) -> list[Result | Exception]:
        """The outcome of each of ``jobs``, in order, once the one batch holding them all
        has been processed (a job's exception is its outcome, not raised)."""
        if not jobs:
            return []
        waiter: _Waiter[Job, Result] = _Waiter(list(jobs), group=True)
        future: Future[list[Result | Exception]] = Future()
        waiter.future = future
        self._enqueue(waiter)
        return future.result()

    async def submit_many_async(self, jobs: Sequence[Job]) -> list[Result | Exception]:
        """:meth:`submit_many` for an event loop."""
        if not jobs:
            return []
        waiter: _Waiter[Job, Result] = _Waiter(list(jobs), group=True)
        waiter.loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Result | Exception]] = waiter.loop.create_future()
        waiter.waiter = future
        self._enqueue(waiter)
        return await future

    def close(self) -> None:
        """Process what is queued, then stop the thread; later submissions raise."""
        with self._lock:
            self._closed = True
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join()

    def _enqueue(self, waiter: _Waiter[Job, Result]) -> None:
        if self._thread is None:
            with self._lock:
                if self._closed:
                    raise RuntimeError(f"{self._name} is closed")
                if self._thread is None:
                    t = threading.Thread(target=self._run, name=self._name, daemon=True)
                    t.start()
                    self._thread = t
        self._queue.put(waiter)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            self._stop = False
            self._take(batch)
            _deliver(batch, self._outcomes(batch))
            if self._stop:
                return

    def _take(self, batch: list[_Waiter[Job, Result]]) -> list[Job]:
        """Move what waits in the queue into ``batch`` (up to ``max_batch`` jobs; a group
        whole); their jobs."""
        taken: list[Job] = []
        size = sum(len(w.jobs) for w in batch)
        while size < self.max_batch:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is None:
                self._stop = True
                break
            batch.append(nxt)
            taken.extend(nxt.jobs)
            size += len(nxt.jobs)
        return taken

    def _outcomes(self, batch: list[_Waiter[Job, Result]]) -> Sequence[Any]:
        """``process``'s outcomes, one per waiter (a group's: the list of its jobs'); if
        it raises (or miscounts), every job gets that failure: none of them may think it
        was done.

        ``process`` may call the ``more`` it is given once it holds what serialises the
        durable work (the chain's lock): the jobs that queued up while it waited join
        the batch, so that writers taking turns commit large batches, not many small
        ones. Their outcomes follow the first jobs', in order."""
        try:
            outcomes = self._process([job for w in batch for job in w.jobs],
                                     lambda: self._take(batch))
            jobs = sum(len(w.jobs) for w in batch)  # with those ``more`` added
            if len(outcomes) != jobs:
                raise RuntimeError(f"{len(outcomes)} outcomes for {jobs} jobs")
        except Exception as exc:
            jobs = sum(len(w.jobs) for w in batch)
            log.exception("batch of %d jobs failed", jobs)
            outcomes = [exc] * jobs
        if not any(w.group for w in batch):
            return outcomes
        per_waiter: list[Any] = []
        at = 0
        for w in batch:
            n = len(w.jobs)
            per_waiter.append(list(outcomes[at:at + n]) if w.group else outcomes[at])
            at += n
        return per_waiter


def _deliver(batch: list[_Waiter[Job, Result]], outcomes: Sequence[Any]) -> None:
    """Hand out the outcomes: threads directly, each event loop with one wake-up. (A
    group's outcome is a list: always a result, never raised.)"""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Waiter[Job, Result], Any]]] = {}
    for waiter, outcome in zip(batch, outcomes, strict=True):
        if waiter.loop is not None:
            by_loop.setdefault(waiter.loop, []).append((waiter, outcome))
        elif waiter.future is not None:
            if isinstance(outcome, Exception):
                waiter.future.set_exception(outcome)
            else:
                waiter.future.set_result(outcome)
    for loop, items in by_loop.items():
        # A closed loop raises RuntimeError: nobody is waiting there any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, items)


def _settle(items: list[tuple[_Waiter[Job, Result], Any]]) -> None:
    for waiter, outcome in items:
        future = waiter.waiter
        if future is None or future.done():  # a cancelled request
            continue
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
