"""A/B comparisons and their votes. Callers own the transaction."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from store.base import utcnow
from store.models import Comparison, ComparisonVote, Completion, CompletionChoice, PolicyVersion
from store.queries.feedback import StoredJudgement
from store.queries.upsert import dialect_insert


@dataclass(frozen=True)
class ComparisonView:
    """A comparison with both candidates' texts and (for revealing after a vote) their policy versions."""

    id: str
    api_key_id: int
    created_at: datetime
    content_a: str
    content_b: str
    policy_a: str
    policy_b: str


def add_comparison(
    session: AsyncSession,
    *,
    comparison_id: str,
    api_key_id: int,
    messages: list,
    params: dict,
    completion_a_id: str,
    completion_b_id: str,
) -> Comparison:
    comparison = Comparison(
        id=comparison_id, api_key_id=api_key_id, messages=messages, params=params,
        completion_a_id=completion_a_id, completion_b_id=completion_b_id,
    )  # fmt: skip
    session.add(comparison)
    return comparison


async def get_comparison(session: AsyncSession, comparison_id: str) -> Comparison | None:
    return await session.get(Comparison, comparison_id)


async def comparison_view(session: AsyncSession, comparison_id: str) -> ComparisonView | None:
    completion_a, completion_b = aliased(Completion), aliased(Completion)
    choice_a, choice_b = aliased(CompletionChoice), aliased(CompletionChoice)
    policy_a, policy_b = aliased(PolicyVersion), aliased(PolicyVersion)
    row = (
        await session.execute(
            select(
                Comparison.id, Comparison.api_key_id, Comparison.created_at,
                choice_a.text, choice_b.text, policy_a.name, policy_b.name,
            )  # fmt: skip
            .join(completion_a, completion_a.id == Comparison.completion_a_id)
            .join(completion_b, completion_b.id == Comparison.completion_b_id)
            .join(policy_a, policy_a.id == completion_a.policy_version_id)
            .join(policy_b, policy_b.id == completion_b.policy_version_id)
            # Each side is a one-choice completion: choice index 0.
            .outerjoin(choice_a, (choice_a.completion_id == completion_a.id) & (choice_a.index == 0))
            .outerjoin(choice_b, (choice_b.completion_id == completion_b.id) & (choice_b.index == 0))
            .where(Comparison.id == comparison_id)
        )
    ).first()
    if row is None:
        return None
    return ComparisonView(row[0], row[1], row[2], row[3] or "", row[4] or "", row[5], row[6])


async def upsert_vote(
    session: AsyncSession,
    *,
    comparison_id: str,
    api_key_id: int,
    winner: str,
    reason: str | None,
    now: datetime | None = None,
) -> StoredJudgement:
    now = now or utcnow()
    insert = dialect_insert(session)
    stmt = insert(ComparisonVote).values(
        comparison_id=comparison_id, api_key_id=api_key_id, winner=winner, reason=reason, created_at=now, updated_at=now
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[ComparisonVote.comparison_id, ComparisonVote.api_key_id],
        set_={"winner": stmt.excluded.winner, "reason": stmt.excluded.reason, "updated_at": stmt.excluded.updated_at},
    ).returning(ComparisonVote.id, ComparisonVote.created_at, ComparisonVote.updated_at)
    row = (await session.execute(stmt)).one()
    return StoredJudgement(row.id, row.created_at, row.updated_at)


async def get_vote(session: AsyncSession, comparison_id: str, api_key_id: int) -> ComparisonVote | None:
    return await session.scalar(
        select(ComparisonVote).where(
            ComparisonVote.comparison_id == comparison_id, ComparisonVote.api_key_id == api_key_id
        )
    )
