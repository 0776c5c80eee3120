"""Judgements on stored completions: thumbs (with their history) and rankings. Callers own the transaction.

Writes are single INSERT .. ON CONFLICT DO UPDATE statements on the tables' unique keys, so concurrent
duplicate posts end as one row on SQLite and PostgreSQL alike, whoever commits first.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from store.base import utcnow
from store.models import Completion, CompletionChoice, Feedback, FeedbackEvent, Ranking
from store.queries.upsert import dialect_insert


@dataclass(frozen=True)
class CompletionFacts:
    """What a judgement needs to know about a completion; completions never change once stored."""

    id: str
    api_key_id: int
    policy_version_id: int
    n_choices: int


@dataclass(frozen=True)
class StoredJudgement:
    id: int
    created_at: datetime
    updated_at: datetime


async def completion_facts_many(session: AsyncSession, completion_ids: Iterable[str]) -> dict[str, CompletionFacts]:
    ids = sorted(set(completion_ids))
    if not ids:
        return {}
    rows = await session.execute(
        select(Completion.id, Completion.api_key_id, Completion.policy_version_id, func.count(CompletionChoice.id))
        .outerjoin(CompletionChoice, CompletionChoice.completion_id == Completion.id)
        .where(Completion.id.in_(ids))
        .group_by(Completion.id, Completion.api_key_id, Completion.policy_version_id)
    )
    return {row[0]: CompletionFacts(*row) for row in rows}


async def completion_facts(session: AsyncSession, completion_id: str) -> CompletionFacts | None:
    return (await completion_facts_many(session, [completion_id])).get(completion_id)


@dataclass(frozen=True)
class FeedbackWrite:
    api_key_id: int
    completion_id: str
    choice_index: int
    rating: str
    reasons: list[str]
    comment: str | None = None
    correction: str | None = None

    @property
    def key(self) -> tuple[int, str, int]:
        return (self.api_key_id, self.completion_id, self.choice_index)

    def content(self) -> dict:
        return {"rating": self.rating, "reasons": self.reasons, "comment": self.comment, "correction": self.correction}


def _feedback_upsert(insert):
    table = Feedback.__table__
    stmt = insert(table)
    # ON CONFLICT ignores Column.onupdate, so updated_at is set explicitly (the learner's window reads it).
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.api_key_id, table.c.completion_id, table.c.choice_index],
        set_={name: stmt.excluded[name] for name in ("rating", "reasons", "comment", "correction", "updated_at")},
    )
    return stmt.returning(
        table.c.id, table.c.api_key_id, table.c.completion_id, table.c.choice_index, table.c.created_at,
        table.c.updated_at,
    )  # fmt: skip


# Built once per dialect and run with a list of parameter sets (executemany): one cached compilation,
# whatever the batch size; SQLAlchemy sends it as multi-row INSERT .. RETURNING ("insertmanyvalues").
_FEEDBACK_UPSERT = {"sqlite": _feedback_upsert(sqlite.insert), "postgresql": _feedback_upsert(postgresql.insert)}
_EVENT_INSERT = FeedbackEvent.__table__.insert()


async def upsert_feedback_many(
    session: AsyncSession, writes: Sequence[FeedbackWrite], now: datetime | None = None
) -> list[StoredJudgement]:
    """Create or replace each verdict and append each post to its history: two statements in all.

    Keys must be distinct within one call: one INSERT .. ON CONFLICT cannot update a row twice.
    """
    if not writes:
        return []
    now = now or utcnow()
    conn = await session.connection()
    stmt = _FEEDBACK_UPSERT.get(conn.dialect.name)
    if stmt is None:
        raise NotImplementedError(f"feedback upserts need INSERT .. ON CONFLICT, not available for {conn.dialect.name}")
    rows = await conn.execute(
        stmt,
        [{"api_key_id": w.api_key_id, "completion_id": w.completion_id, "choice_index": w.choice_index,
          "created_at": now, "updated_at": now, **w.content()} for w in writes],
    )  # fmt: skip
    by_key = {(r.api_key_id, r.completion_id, r.choice_index): r for r in rows}
    stored = [StoredJudgement(by_key[w.key].id, by_key[w.key].created_at, by_key[w.key].updated_at) for w in writes]
    await conn.execute(
        _EVENT_INSERT,
        [{"feedback_id": s.id, "created_at": now, **w.content()} for s, w in zip(stored, writes, strict=True)],
    )
    return stored


async def upsert_feedback(session: AsyncSession, write: FeedbackWrite, now: datetime | None = None) -> StoredJudgement:
    return (await upsert_feedback_many(session, [write], now))[0]


async def feedback_history(session: AsyncSession, feedback_id: int) -> list[FeedbackEvent]:
    return list(
        await session.scalars(
            select(FeedbackEvent).where(FeedbackEvent.feedback_id == feedback_id).order_by(FeedbackEvent.id)
        )
    )


async def get_feedback(
    session: AsyncSession, api_key_id: int, completion_id: str, choice_index: int = 0
) -> Feedback | None:
    return await session.scalar(
        select(Feedback).where(
            Feedback.api_key_id == api_key_id,
            Feedback.completion_id == completion_id,
            Feedback.choice_index == choice_index,
        )
    )


async def upsert_ranking(
    session: AsyncSession, *, api_key_id: int, completion_id: str, order: list[int], now: datetime | None = None
) -> StoredJudgement:
    now = now or utcnow()
    insert = dialect_insert(session)
    stmt = insert(Ranking).values(
        api_key_id=api_key_id, completion_id=completion_id, order=order, created_at=now, updated_at=now
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[Ranking.api_key_id, Ranking.completion_id],
        set_={"order": stmt.excluded.order, "updated_at": stmt.excluded.updated_at},
    ).returning(Ranking.id, Ranking.created_at, Ranking.updated_at)
    row = (await session.execute(stmt)).one()
    return StoredJudgement(row.id, row.created_at, row.updated_at)


async def get_ranking(session: AsyncSession, api_key_id: int, completion_id: str) -> Ranking | None:
    return await session.scalar(
        select(Ranking).where(Ranking.api_key_id == api_key_id, Ranking.completion_id == completion_id)
    )
