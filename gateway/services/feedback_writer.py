"""Group commit for feedback (see gateway.services.group_commit): each POST answers 2xx only after
its transaction committed; completions are checked in bulk, with what a check needs cached.
"""

from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.errors import ApiError
from gateway.services.auth import Caller
from gateway.services.group_commit import GroupCommit
from gateway.services.judgements import completion_not_found, may_judge, write_lock
from store.queries.feedback import (
    CompletionFacts,
    FeedbackWrite,
    StoredJudgement,
    completion_facts_many,
    upsert_feedback_many,
)

MAX_BATCH = 128
FACTS_CACHE_SIZE = 20_000


@dataclass
class _Pending:
    caller: Caller
    write: FeedbackWrite


class FeedbackWriter(GroupCommit[_Pending, StoredJudgement]):
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], max_batch: int = MAX_BATCH):
        super().__init__(max_batch)
        self._sessionmaker = sessionmaker
        # Completions never change once stored, so what a check needs about one can be remembered.
        self._facts: OrderedDict[str, CompletionFacts] = OrderedDict()

    async def write(self, caller: Caller, write: FeedbackWrite) -> StoredJudgement:
        return await self.submit(_Pending(caller, write))

    async def _failed_alone(self, pending: _Pending, exc: DBAPIError) -> StoredJudgement | Exception:
        self._facts.pop(pending.write.completion_id, None)  # e.g. the completion was deleted meanwhile
        if isinstance(exc, IntegrityError):
            try:
                return (await self._transaction([pending]))[0]
            except IntegrityError:
                return ApiError(409, "a concurrent write conflicted with this feedback; retry", code="conflict")
            except DBAPIError as again:
                exc = again
        return await super()._failed_alone(pending, exc)

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

