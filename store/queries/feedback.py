"""Judgements on stored completions: thumbs (with their history) and rankings. Callers own the transaction.

Writes are single INSERT .. ON CONFLICT DO UPDATE statements on the tables' unique keys, so concurrent
duplicate posts end as one row on SQLite and PostgreSQL alike, whoever commits first.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
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


async def completion_facts(session: AsyncSession, completion_id: str) -> CompletionFacts | None:
    row = (
        await session.execute(
            select(Completion.api_key_id, Completion.policy_version_id, func.count(CompletionChoice.id))
            .outerjoin(CompletionChoice, CompletionChoice.completion_id == Completion.id)
            .where(Completion.id == completion_id)
            .group_by(Completion.id, Completion.api_key_id, Completion.policy_version_id)
        )
    ).first()
    return CompletionFacts(completion_id, row[0], row[1], row[2]) if row else None


async def upsert_feedback(
    session: AsyncSession,
    *,
    api_key_id: int,
    completion_id: str,
    choice_index: int,
    rating: str,
    reasons: list[str],
    comment: str | None,
    correction: str | None,
    now: datetime | None = None,
) -> StoredJudgement:
    """Create or replace the caller's verdict on one choice, and append the post to its history."""
    now = now or utcnow()
    content = {"rating": rating, "reasons": reasons, "comment": comment, "correction": correction}
    insert = dialect_insert(session)
    stmt = insert(Feedback).values(
        api_key_id=api_key_id, completion_id=completion_id, choice_index=choice_index,
        created_at=now, updated_at=now, **content,
    )  # fmt: skip
    # ON CONFLICT ignores Column.onupdate, so updated_at is set explicitly (the learner's window reads it).
    stmt = stmt.on_conflict_do_update(
        index_elements=[Feedback.api_key_id, Feedback.completion_id, Feedback.choice_index],
        set_={**{name: stmt.excluded[name] for name in content}, "updated_at": stmt.excluded.updated_at},
    ).returning(Feedback.id, Feedback.created_at, Feedback.updated_at)
    row = (await session.execute(stmt)).one()
    await session.execute(FeedbackEvent.__table__.insert().values(feedback_id=row.id, created_at=now, **content))
    return StoredJudgement(row.id, row.created_at, row.updated_at)


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
