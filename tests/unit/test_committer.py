"""The generic group committer: batches form under load, each waiter gets its own result,
a failing batch fails its waiters only, close drains and stops; no database involved."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from signgate.service.pipeline.committer import GroupCommitter


class Recorder:
    """A ``process`` that doubles numbers, refuses negative ones, and keeps its batches;
    ``gate`` holds the first batch until released, so that others queue behind it."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.fail_batch = False
        # Take what queued up once past the gate, as the signing pipeline does once it
        # holds the chain's lock.
        self.drain = False

    def __call__(self, jobs: Sequence[int],
                 more: Callable[[], list[int]] = list) -> list[int | Exception]:
        self.entered.set()
        self.gate.wait(10)
        jobs = [*jobs, *(more() if self.drain else [])]
        self.batches.append(jobs)
        if self.fail_batch:
            raise OSError("commit lost")
        return [ValueError(f"negative {j}") if j < 0 else 2 * j for j in jobs]


def wait_queued(committer: GroupCommitter[int, int], n: int) -> None:
    """Until ``n`` jobs wait in the queue (at most 5 s: a test must not hang)."""
    for _ in range(500):
        if committer._queue.qsize() >= n:
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"{committer._queue.qsize()} jobs queued, not {n}")


def test_each_thread_gets_its_own_result() -> None:
    rec = Recorder()
    committer: GroupCommitter[int, int] = GroupCommitter(rec)
    try:
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(committer.submit, range(200)))
        assert results == [2 * i for i in range(200)]
        assert sorted(j for b in rec.batches for j in b) == list(range(200))
    finally:
        committer.close()


def test_jobs_queued_behind_a_batch_form_one_batch() -> None:
    rec = Recorder()
    rec.gate.clear()
    committer: GroupCommitter[int, int] = GroupCommitter(rec, max_batch=8)
    with ThreadPoolExecutor(21) as pool:
        first = pool.submit(committer.submit, 0)
        assert rec.entered.wait(5)
        rest = [pool.submit(committer.submit, i) for i in range(1, 21)]
        wait_queued(committer, 20)  # all queued behind the held batch
        rec.gate.set()
        assert first.result(5) == 0
        assert [f.result(5) for f in rest] == [2 * i for i in range(1, 21)]
    committer.close()
    assert [len(b) for b in rec.batches] == [1, 8, 8, 4]


def test_jobs_queued_while_a_batch_waits_for_its_lock_join_it() -> None:
    rec = Recorder()
    rec.gate.clear()
    rec.drain = True
    committer: GroupCommitter[int, int] = GroupCommitter(rec, max_batch=8)
    with ThreadPoolExecutor(21) as pool:
        first = pool.submit(committer.submit, 0)
        assert rec.entered.wait(5)  # the first batch (one job) waits for its "lock"
        rest = [pool.submit(committer.submit, i) for i in range(1, 21)]
        wait_queued(committer, 20)
        rec.gate.set()
        assert first.result(5) == 0
        assert [f.result(5) for f in rest] == [2 * i for i in range(1, 21)]
    committer.close()
    assert [len(b) for b in rec.batches] == [8, 8, 5]  # 1 + 7 joined, then the rest


def test_a_failing_batch_fails_the_jobs_that_joined_it() -> None:
    rec = Recorder()
    rec.gate.clear()
    rec.drain = True
    rec.fail_batch = True
    committer: GroupCommitter[int, int] = GroupCommitter(rec, max_batch=8)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(committer.submit, 0)
        assert rec.entered.wait(5)
        rest = [pool.submit(committer.submit, i) for i in range(1, 4)]
        wait_queued(committer, 3)
        rec.gate.set()
        for f in [first, *rest]:
            with pytest.raises(OSError, match="commit lost"):
                f.result(5)
    committer.close()
    assert rec.batches == [[0, 1, 2, 3]]


def test_a_refused_job_fails_alone() -> None:
    committer: GroupCommitter[int, int] = GroupCommitter(Recorder())
    try:
        with pytest.raises(ValueError, match="negative -3"):
            committer.submit(-3)
        assert committer.submit(3) == 6
    finally:
        committer.close()


def test_a_failing_process_fails_every_waiter_of_its_batch() -> None:
    rec = Recorder()
    rec.gate.clear()
    rec.fail_batch = True
    committer: GroupCommitter[int, int] = GroupCommitter(rec)
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(committer.submit, i) for i in range(4)]
        assert rec.entered.wait(5)
        rec.gate.set()
        for f in futures:
            with pytest.raises(OSError, match="commit lost"):
                f.result(5)
    rec.fail_batch = False
    assert committer.submit(5) == 10  # the thread survived
    committer.close()


def test_a_miscounting_process_fails_the_batch() -> None:
    committer: GroupCommitter[int, int] = GroupCommitter(lambda jobs, more: [])
    with pytest.raises(RuntimeError, match="0 outcomes for 1 jobs"):
        committer.submit(1)
    committer.close()


def test_close_drains_the_queue_then_refuses() -> None:
    rec = Recorder()
    rec.gate.clear()
    committer: GroupCommitter[int, int] = GroupCommitter(rec)
    with ThreadPoolExecutor(6) as pool:
        # The first job alone in the held batch, then four queued behind it (submitted
        # only once the writer is held, so none of them can join the first batch).
        futures = [pool.submit(committer.submit, 0)]
        assert rec.entered.wait(5)
        futures += [pool.submit(committer.submit, i) for i in range(1, 5)]
        wait_queued(committer, 4)
        closing = pool.submit(committer.close)
        rec.gate.set()
        closing.result(5)
        assert sorted(f.result(5) for f in futures) == [0, 2, 4, 6, 8]
    assert committer._thread is None
    with pytest.raises(RuntimeError, match="closed"):
        committer.submit(1)


def test_async_waiters_get_their_own_results_with_one_wakeup_per_batch() -> None:
    rec = Recorder()
    committer: GroupCommitter[int, int] = GroupCommitter(rec)

    async def many() -> list[int | BaseException]:
        return await asyncio.gather(*(committer.submit_async(i) for i in range(-5, 50)),
                                    return_exceptions=True)

    results = asyncio.run(many())
    committer.close()
    for i, r in zip(range(-5, 50), results, strict=True):
        if i < 0:
            assert isinstance(r, ValueError)
        else:
            assert r == 2 * i


def test_threads_and_loops_share_a_batch() -> None:
    rec = Recorder()
    rec.gate.clear()
    committer: GroupCommitter[int, int] = GroupCommitter(rec)

    async def waiting() -> list[int]:
        return list(await asyncio.gather(*(committer.submit_async(i) for i in range(10, 13))))

    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(committer.submit, 0)
        assert rec.entered.wait(5)
        thread_job = pool.submit(committer.submit, 1)
        loop_jobs = pool.submit(asyncio.run, waiting())
        wait_queued(committer, 4)
        rec.gate.set()
        assert first.result(5) == 0
        assert thread_job.result(5) == 2
        assert loop_jobs.result(5) == [20, 22, 24]
    committer.close()
    assert sorted(rec.batches[1]) == [1, 10, 11, 12]


def test_a_cancelled_async_waiter_does_not_disturb_the_others() -> None:
    rec = Recorder()
    rec.gate.clear()
    committer: GroupCommitter[int, int] = GroupCommitter(rec)

    async def run() -> int:
        doomed = asyncio.ensure_future(committer.submit_async(1))
        kept = asyncio.ensure_future(committer.submit_async(2))
        await asyncio.sleep(0.05)
        doomed.cancel()
        rec.gate.set()
        return await kept

    assert asyncio.run(run()) == 4
    committer.close()


def test_a_group_is_one_batch_with_each_jobs_own_outcome() -> None:
    rec = Recorder()
    committer: GroupCommitter[int, int] = GroupCommitter(rec, max_batch=8)
    try:
        outcomes = committer.submit_many([1, -2, 3, *range(10, 30)])
        assert outcomes[0] == 2
        assert outcomes[2] == 6
        assert isinstance(outcomes[1], ValueError)  # returned, not raised
        assert outcomes[3:] == [2 * i for i in range(10, 30)]
        # Larger than max_batch, and still not split: one process call.
        assert rec.batches == [[1, -2, 3, *range(10, 30)]]
        assert committer.submit_many([]) == []
    finally:
        committer.close()


def test_groups_and_single_jobs_queued_together_share_a_batch_unsplit() -> None:
    rec = Recorder()
    rec.gate.clear()
    committer: GroupCommitter[int, int] = GroupCommitter(rec, max_batch=4)

    async def group() -> list[int | Exception]:
        return await committer.submit_many_async([100, 101, 102])

    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(committer.submit, 0)
        assert rec.entered.wait(5)
        single = pool.submit(committer.submit, 1)
        wait_queued(committer, 1)
        from_loop = pool.submit(asyncio.run, group())
        wait_queued(committer, 2)
        from_thread = pool.submit(committer.submit_many, [200, 201, 202])
        wait_queued(committer, 3)
        rec.gate.set()
        assert first.result(5) == 0
        assert single.result(5) == 2
        assert from_loop.result(5) == [200, 202, 204]
        assert from_thread.result(5) == [400, 402, 404]
    committer.close()
    # 1 + 3 reaches max_batch 4: the second group waits whole for the next batch.
    assert rec.batches == [[0], [1, 100, 101, 102], [200, 201, 202]]


def test_a_failing_process_fails_every_job_of_a_group() -> None:
    rec = Recorder()
    rec.fail_batch = True
    committer: GroupCommitter[int, int] = GroupCommitter(rec)
    outcomes = committer.submit_many([1, 2])
    assert len(outcomes) == 2
    assert all(isinstance(o, OSError) for o in outcomes)
    committer.close()


def test_a_group_of_one_still_gets_a_list() -> None:
    rec = Recorder()
    rec.gate.clear()
    committer: GroupCommitter[int, int] = GroupCommitter(rec)
    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(committer.submit, 0)
        assert rec.entered.wait(5)
        single = pool.submit(committer.submit, 1)
        wait_queued(committer, 1)
        group = pool.submit(committer.submit_many, [2])
        wait_queued(committer, 2)
        rec.gate.set()
        assert first.result(5) == 0
        assert single.result(5) == 2
        assert group.result(5) == [4]
    committer.close()
