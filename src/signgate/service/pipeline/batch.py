"""Group commit for signing: many signing requests, one durable transaction.

A signature may be returned only once its audit entry is committed, and the audit chain
orders every writer, so each commit is a point of serialisation. Committing each signing
on its own makes the fsync (SQLite) or the round trips (PostgreSQL) the ceiling. Instead,
requests queue up while a transaction is in flight (``committer.py``), and one writer
thread decides, signs and records the whole queue in the next transaction:

- every request is decided on its own (authentication, grants, key state, limits) with
  the state as of that transaction, through the steps authorize → produce → record, and
  refused ones get their refusal entry in the same transaction;
- identity, grant and key look-ups are made once and reused while the audit head says
  they cannot have changed (``lookups.py``); counters are kept in memory and written once;
- no request learns its result before the commit has returned. If the commit fails, every
  request of the batch fails and nothing of it was recorded or returned;
- each signature's receipt carries its entry's inclusion proof in the tree the commit's
  checkpoint signs, witnessed as ``log_witness_policy`` says (``receipts.py``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any

from signgate.errors import AuthenticationFailed, ErrorCode, SigngateError, Unavailable
from signgate.service.context import ANONYMOUS, Context, refusal_record
from signgate.service.pipeline import builds, hold, release
from signgate.service.pipeline.authorize import Authorized, authorize
from signgate.service.pipeline.committer import GroupCommitter
from signgate.service.pipeline.early import NEUTRAL, Early, EarlySigning, sign_early
from signgate.service.pipeline.lookups import Cache
from signgate.service.pipeline.produce import Produced, produce
from signgate.service.pipeline.receipts import deliver, prove
from signgate.service.pipeline.record import record
from signgate.service.pipeline.work import Work
from signgate.service.sign_request import SignOutcome, SignRequest
from signgate.service.views import RequestView, SignResult
from signgate.service.webhook import ApprovalWebhook

log = logging.getLogger("signgate.sign")

MAX_BATCH = 256


class Refusal(Exception):
    """A request refused inside a batch: who asked, and the error they get."""

    def __init__(self, actor: str, error: SigngateError) -> None:
        super().__init__(str(error))
        self.actor = actor
        self.error = error


def sign_one(work: Work, request: SignRequest) -> SignOutcome:
    """authorize → (hold for approvals) → produce → record, with every failure turned into
    a :class:`Refusal`."""
    try:
        identity_id, actor = work.lookups.actor(request.caller, work.ctx.clock.now())
    except SigngateError as exc:
        raise Refusal(ANONYMOUS, exc) from exc
    approval: dict[str, Any] | None = None
    try:
        if request.approval_request is not None:
            # An approved request: signed as its requester asked, with their grants now.
            found = hold.as_requester(work, request)
            if found is None:
                return hold.answered(work, request.approval_request)
            request, identity_id, actor = found
        authorized = authorize(work.lookups, request, identity_id, actor)
        # Release windows and quotas: checked before a request waits for builders or
        # approvals too, and counted when it is signed.
        admission = release.admit(work, authorized)
        if request.approval_request is None and builds.needed(authorized):
            view, agreed = builds.submit(work, request, authorized)
            if not agreed:
                return view
            # The N-th builder agreed and no approvals are needed: signed now, once, as
            # the first builder asked it (and admitted as that builder).
            request = dataclasses.replace(request, approval_request=view.request_id)
            found = hold.as_requester(work, request)
            if found is None:
                return hold.answered(work, view.request_id)
            request, identity_id, actor = found
            authorized = authorize(work.lookups, request, identity_id, actor)
            admission = release.admit(work, authorized)
        elif request.approval_request is None and hold.held(authorized):
            view, created = hold.hold(work, request, authorized)
            if created:
                work.held.append(view)
            return view
        if request.approval_request is not None:
            approval = hold.claim(work, request.approval_request)
        produced = produce(work, request, authorized)
    except SigngateError as exc:
        _unclaim(work, request, approval)
        raise Refusal(actor.name, exc) from exc
    except Exception as exc:
        _unclaim(work, request, approval)
        # A defect in one request (say, a format builder meeting input it did not expect)
        # refuses that request, recorded like any refusal; the rest of the batch goes on.
        log.exception("signing %s with %s failed", request.artifact_name, request.ref)
        raise Refusal(actor.name, SigngateError(
            "internal error while signing; nothing was signed", code=ErrorCode.INTERNAL_ERROR,
        )) from exc
    return finish(work, request, authorized, produced, approval, admission)


def finish(work: Work, request: SignRequest, authorized: Authorized, produced: Produced,
           approval: dict[str, Any] | None, admission: release.Admission) -> SignResult:
    """The signing on the record (its entry, its row, its window's count)."""
    result = record(work, request, authorized, produced, approval, admission.details())
    release.count(work, admission)
    if request.approval_request is not None:
        hold.store_result(work, request.approval_request, result)
    return result


def finish_early(work: Work, request: SignRequest, early: EarlySigning) -> SignResult:
    """A signing decided and made before the lock (``early.py``), recorded under it."""
    admission = release.admit(work, early.authorized)
    return finish(work, request, early.authorized, early.produced, None, admission)


def _unclaim(work: Work, request: SignRequest, approval: dict[str, Any] | None) -> None:
    if approval is not None and request.approval_request is not None:
        hold.unclaim(work, request.approval_request)


class Pipeline:
    """One writer thread per process; ``submit`` returns once the request's batch
    committed (``sign_request.SigningPipeline`` is what the use cases see of it)."""

    def __init__(self, ctx: Context, max_batch: int = MAX_BATCH) -> None:
        self.ctx = ctx
        self._cache = Cache()
        self._committer: GroupCommitter[SignRequest, SignOutcome] = GroupCommitter(
            self.process, max_batch, name="signgate-signer")
        # Approvers are told of each new pending request (approval_webhook_url).
        self.webhook = ApprovalWebhook.from_settings(ctx.settings)

    def submit(self, request: SignRequest) -> SignOutcome:
        return self._committer.submit(request)

    async def submit_async(self, request: SignRequest) -> SignOutcome:
        """The same for an event loop: waits without holding a thread."""
        return await self._committer.submit_async(request)

    def submit_many(self, requests: Sequence[SignRequest]) -> list[SignOutcome | Exception]:
        """Each request's outcome (a refusal: its exception, returned), all decided in one
        transaction: a batch signing costs one commit (``committer.submit_many``)."""
        return self._committer.submit_many(requests)

    async def submit_many_async(self, requests: Sequence[SignRequest],
                                ) -> list[SignOutcome | Exception]:
        """The same for an event loop."""
        return await self._committer.submit_many_async(requests)

    def close(self) -> None:
        self._committer.close()
        if self.webhook is not None:
            self.webhook.close()

    def process(self, requests: Sequence[SignRequest],
                more: Callable[[], list[SignRequest]] = list,
                ) -> list[SignOutcome | Exception]:
        """One transaction for ``requests`` and, once it holds the chain's lock, for what
        ``more`` adds (what queued up meanwhile): an outcome for each, in order."""
        return self.commit(requests, self.early(requests), more)

    def early(self, requests: Sequence[SignRequest]) -> Early:
        """What can be decided and signed before the lock (``early.py``)."""
        try:
            return sign_early(self.ctx, self._cache, list(requests))
        except Exception:  # decided under the lock instead, as always
            log.exception("signing before the lock failed")
            return Early(-1, {})

    def commit(self, requests: Sequence[SignRequest], early: Early,
               more: Callable[[], list[SignRequest]] = list,
               ) -> list[SignOutcome | Exception]:
        """The batch's transaction: ``early``'s signings recorded if nothing they read
        changed since, everything else decided, signed and recorded under the lock."""
        ctx = self.ctx
        requests = list(requests)
        outcomes: list[SignOutcome | Exception] = []
        held: list[RequestView] = []
        # Failed authentications recorded in this batch's transaction: if it does not
        # commit, they are counted in their window's summary instead.
        first_failures: list[tuple[SignRequest, AuthenticationFailed]] = []
        try:
            with ctx.transaction() as session:
                writer = ctx.audit_writer(session)
                # Another process's batch may have held the lock: what queued up while
                # this one waited for it joins (one commit, not two).
                requests.extend(more())
                # What was decided early stands only if nothing it read changed since.
                signed = (early.signed if early.signed
                          and writer.settled_since(early.seen, NEUTRAL) else {})
                self._cache.valid_at(writer.seq)
                work = Work(ctx, session, self._cache)
                for at, request in enumerate(requests):
                    try:
                        made = signed.get(at)
                        outcomes.append(sign_one(work, request) if made is None
                                        else finish_early(work, request, made))
                    except Refusal as refused:
                        outcomes.append(self._refused(work, request, refused, first_failures))
                work.flush()
                held = work.held
                head_after = writer.seq
                proofs = prove(writer, outcomes)  # in the tree the commit's checkpoint signs
        except Exception as exc:  # the commit or the batch failed: nothing was recorded
            if not isinstance(exc, SigngateError):
                log.exception("signing batch failed")
            self._cache.clear()
            for request, failure in first_failures:
                ctx.auth_failures.lost(request.caller, request.target(), failure)
            return [exc] * len(requests)
        self._cache.head_seq = head_after
        if self.webhook is not None:
            for view in held:  # after the commit: never for a request that was not made
                self.webhook.notify(view)
        try:
            return deliver(ctx, requests, outcomes, proofs, writer.checkpoint)
        except Exception:  # never hand out a signature whose receipt could not be made
            log.exception("completing the receipts of a signing batch failed")
            failed = Unavailable("signed and recorded, but its receipt (the log's inclusion "
                                 "proof) could not be completed: the signature is withheld")
            return [failed if isinstance(o, SignResult) else o for o in outcomes]

    @staticmethod
    def _refused(work: Work, request: SignRequest, refused: Refusal,
                 first_failures: list[tuple[SignRequest, AuthenticationFailed]],
                 ) -> Exception:
        """Put a refusal on the batch's record; returns the error the caller gets."""
        ctx = work.ctx
        if isinstance(refused.error, AuthenticationFailed):
            verdict = ctx.auth_failures.failed(request.caller, request.target(), refused.error)
            if verdict.record is not None:
                ctx.record(work.session, verdict.record)
                first_failures.append((request, refused.error))
            return verdict.error
        entry = refusal_record(request.caller, request.target(), refused.actor, refused.error)
        if request.scan is not None:  # the verdict, engines and digest with it
            entry.details["scan"] = request.scan.details()
        ctx.record(work.session, entry)
        return refused.error
