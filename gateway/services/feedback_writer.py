"""Group commit for feedback: posts that arrive together share one transaction.

Each POST waits on a future that resolves only after its transaction committed (2xx after commit).
Nothing waits to fill a batch: a post that arrives when the writer is idle goes alone at once; posts
that arrive while a transaction is in flight are taken together by the next one. On SQLite (one
writer at a time) this turns N small transactions with N lock hand-overs into one; on PostgreSQL it
saves round trips. A failed batch is replayed one post per transaction, so one bad post fails alone.

The drain task runs only while posts are queued, so there is nothing to start or stop with the app.
"""

import asyncio
import logging
from collections import OrderedDict, deque
from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.errors import ApiError
from gateway.services.auth import Caller
from gateway.services.judgements import completion_not_found, may_judge, write_lock
from store.queries.feedback import (
    CompletionFacts,
    FeedbackWrite,
    StoredJudgement,
    completion_facts_many,
    upsert_feedback_many,
)

log = logging.getLogger(__name__)
MAX_BATCH = 128
FACTS_CACHE_SIZE = 20_000


@dataclass
class _Pending:
    caller: Caller
    write: FeedbackWrite
    future: asyncio.Future


class FeedbackWriter:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], max_batch: int = MAX_BATCH):
        self._sessionmaker, self._max_batch = sessionmaker, max_batch
        self._queue: deque[_Pending] = deque()
        self._task: asyncio.Task | None = None
        # Completions never change once stored, so what a check needs about one can be remembered.
        self._facts: OrderedDict[str, CompletionFacts] = OrderedDict()

    async def write(self, caller: Caller, write: FeedbackWrite) -> StoredJudgement:
        future = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(caller, write, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))]
            try:
                await self._commit(batch)
            except Exception as exc:  # never leave a request waiting forever
                log.exception("feedback batch failed unexpectedly")
                _settle(batch, exc)

    async def _commit(self, batch: list[_Pending]) -> None:
        try:
            outcomes = await self._transaction(batch)
        except DBAPIError as exc:  # integrity, lock timeout, lost connection: replay, then answer per post
            if len(batch) > 1:
                for pending in batch:  # replay alone: the failure belongs to one post, not to all
                    await self._commit([pending])
                return
            outcomes = [await self._retry_alone(batch[0], exc)]
        for pending, outcome in zip(batch, outcomes, strict=True):
            _settle([pending], outcome)

    async def _retry_alone(self, pending: _Pending, exc: Exception) -> StoredJudgement | Exception:
        self._facts.pop(pending.write.completion_id, None)  # e.g. the completion was deleted meanwhile
        if isinstance(exc, IntegrityError):
            try:
                return (await self._transaction([pending]))[0]
            except IntegrityError:
                return ApiError(409, "a concurrent write conflicted with this feedback; retry", code="conflict")
            except DBAPIError as again:
                exc = again
        log.error("feedback write failed: %s", exc)
        return ApiError(503, "the database is busy or unreachable; retry shortly", code="database_unavailable",
                        headers={"Retry-After": "1"})  # fmt: skip

    async def _transaction(self, batch: list[_Pending]) -> list[StoredJudgement | Exception]:
        async with self._sessionmaker() as session:
            async with write_lock(session):
                facts = await self._lookup(session, {p.write.completion_id for p in batch})
                outcomes: list[StoredJudgement | Exception | None] = [_check(p, facts.get(p.write.completion_id)) for p in batch]
                valid = [i for i, outcome in enumerate(outcomes) if outcome is None]
                for round_ in _distinct_key_rounds([batch[i].write for i in valid], valid):
                    stored = await upsert_feedback_many(session, [batch[i].write for i in round_])
                    for i, judgement in zip(round_, stored, strict=True):
                        outcomes[i] = judgement
                await session.commit()
        return outcomes  # type: ignore[return-value]

    async def _lookup(self, session: AsyncSession, ids: set[str]) -> dict[str, CompletionFacts]:
        found = {cid: self._facts[cid] for cid in ids if cid in self._facts}
        missing = ids - found.keys()
        if missing:
            loaded = await completion_facts_many(session, missing)
            found.update(loaded)
            self._facts.update(loaded)
            while len(self._facts) > FACTS_CACHE_SIZE:
                self._facts.popitem(last=False)
        return found


def _check(pending: _Pending, facts: CompletionFacts | None) -> ApiError | None:
    write = pending.write
    if facts is None or not may_judge(pending.caller, facts.api_key_id):
        return completion_not_found(write.completion_id)
    if write.choice_index >= facts.n_choices:
        return ApiError(
            400,
            f"choice_index {write.choice_index} is out of range: completion {write.completion_id!r} has "
            f"{facts.n_choices} choice(s) (0..{facts.n_choices - 1})",
            code="invalid_choice_index",
            param="choice_index",
        )
    return None


def _distinct_key_rounds(writes: list[FeedbackWrite], positions: list[int]) -> list[list[int]]:
    """Split into rounds of distinct keys, keeping arrival order per key (the last post wins)."""
    rounds: list[list[int]] = []
    depth: dict[tuple, int] = {}
    for write, position in zip(writes, positions, strict=True):
        level = depth.get(write.key, -1) + 1
        depth[write.key] = level
        if level == len(rounds):
            rounds.append([])
        rounds[level].append(position)
    return rounds


def _settle(batch: list[_Pending], outcome) -> None:
    for pending in batch:
        if pending.future.done():  # the client went away; its write still stands
            continue
        if isinstance(outcome, BaseException):
            pending.future.set_exception(outcome)
        else:
            pending.future.set_result(outcome)
