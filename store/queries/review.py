"""Read-side queries for reviewers: the feedback list, aggregates for stats, vote outcomes for the leaderboard."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, select, true
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from store.models import (
    ApiKey,
    Comparison,
    ComparisonVote,
    Completion,
    CompletionChoice,
    Feedback,
    PolicyVersion,
    Ranking,
)


@dataclass(frozen=True)
class FeedbackFilter:
    rating: str | None = None
    policy_version: str | None = None  # a policy version's name
    since: datetime | None = None  # on updated_at: an edited verdict counts as new


def _feedback_where(f: FeedbackFilter):
    conditions = []
    if f.rating is not None:
        conditions.append(Feedback.rating == f.rating)
    if f.policy_version is not None:
        conditions.append(PolicyVersion.name == f.policy_version)
    if f.since is not None:
        conditions.append(Feedback.updated_at >= f.since)
    return and_(true(), *conditions)


async def list_feedback(session: AsyncSession, f: FeedbackFilter, *, before_id: int | None, limit: int) -> list[Row]:
    """Newest first by id (stable under edits); keyset pagination: pass the last id seen as `before_id`."""
    stmt = (
        select(
            Feedback.id, Feedback.api_key_id, ApiKey.name.label("key_name"), Feedback.completion_id,
            Feedback.choice_index, Feedback.rating, Feedback.reasons, Feedback.comment, Feedback.correction,
            Feedback.created_at, Feedback.updated_at, PolicyVersion.name.label("policy_version"),
            Completion.messages, CompletionChoice.text.label("response"),
        )  # fmt: skip
        .select_from(Feedback)
        .join(Completion, Completion.id == Feedback.completion_id)
        .join(PolicyVersion, PolicyVersion.id == Completion.policy_version_id)
        .join(ApiKey, ApiKey.id == Feedback.api_key_id)
        .outerjoin(
            CompletionChoice,
            (CompletionChoice.completion_id == Feedback.completion_id) & (CompletionChoice.index == Feedback.choice_index),
        )
        .where(_feedback_where(f))
        .order_by(Feedback.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        stmt = stmt.where(Feedback.id < before_id)
    return list((await session.execute(stmt)).all())


async def feedback_counts(session: AsyncSession, since: datetime | None) -> list[Row]:
    """(policy_version, rating, n) over current verdicts."""
    stmt = (
        select(PolicyVersion.name.label("policy_version"), Feedback.rating, func.count().label("n"))
        .select_from(Feedback)
        .join(Completion, Completion.id == Feedback.completion_id)
        .join(PolicyVersion, PolicyVersion.id == Completion.policy_version_id)
        .where(_feedback_where(FeedbackFilter(since=since)))
        .group_by(PolicyVersion.name, Feedback.rating)
    )
    return list((await session.execute(stmt)).all())


async def feedback_reasons(session: AsyncSession, since: datetime | None) -> list[Row]:
    """(policy_version, reasons) per verdict; JSON lists are counted in Python (no portable JSON unnest)."""
    stmt = (
        select(PolicyVersion.name.label("policy_version"), Feedback.reasons)
        .select_from(Feedback)
        .join(Completion, Completion.id == Feedback.completion_id)
        .join(PolicyVersion, PolicyVersion.id == Completion.policy_version_id)
        .where(_feedback_where(FeedbackFilter(since=since)))
    )
    return list((await session.execute(stmt)).all())


async def ranking_counts(session: AsyncSession, since: datetime | None) -> list[Row]:
    stmt = (
        select(PolicyVersion.name.label("policy_version"), func.count().label("n"))
        .select_from(Ranking)
        .join(Completion, Completion.id == Ranking.completion_id)
        .join(PolicyVersion, PolicyVersion.id == Completion.policy_version_id)
        .group_by(PolicyVersion.name)
    )
    if since is not None:
        stmt = stmt.where(Ranking.updated_at >= since)
    return list((await session.execute(stmt)).all())


async def vote_outcomes(session: AsyncSession, since: datetime | None) -> list[Row]:
    """(policy_a, policy_b, winner) per vote: the leaderboard's input."""
    completion_a, completion_b = aliased(Completion), aliased(Completion)
    policy_a, policy_b = aliased(PolicyVersion), aliased(PolicyVersion)
    stmt = (
        select(policy_a.name.label("policy_a"), policy_b.name.label("policy_b"), ComparisonVote.winner)
        .select_from(ComparisonVote)
        .join(Comparison, Comparison.id == ComparisonVote.comparison_id)
        .join(completion_a, completion_a.id == Comparison.completion_a_id)
        .join(completion_b, completion_b.id == Comparison.completion_b_id)
        .join(policy_a, policy_a.id == completion_a.policy_version_id)
        .join(policy_b, policy_b.id == completion_b.policy_version_id)
    )
    if since is not None:
        stmt = stmt.where(ComparisonVote.updated_at >= since)
    return list((await session.execute(stmt)).all())


async def shared_feedback_labels(session: AsyncSession, since: datetime | None) -> list[Row]:
    """(item, rating, n) for choices rated by two or more keys: the input of inter-user agreement."""
    where = _feedback_where(FeedbackFilter(since=since))
    shared = (
        select(Feedback.completion_id, Feedback.choice_index)
        .where(where)
        .group_by(Feedback.completion_id, Feedback.choice_index)
        .having(func.count() >= 2)
        .subquery()
    )
    stmt = (
        select(Feedback.completion_id, Feedback.choice_index, Feedback.rating.label("label"), func.count().label("n"))
        .join(
            shared,
            (shared.c.completion_id == Feedback.completion_id) & (shared.c.choice_index == Feedback.choice_index),
        )
        .where(where)
        .group_by(Feedback.completion_id, Feedback.choice_index, Feedback.rating)
    )
    return list((await session.execute(stmt)).all())


async def shared_vote_labels(session: AsyncSession, since: datetime | None) -> list[Row]:
    """(comparison, winner, n) for comparisons voted on by two or more keys."""
    where = true() if since is None else ComparisonVote.updated_at >= since
    shared = (
        select(ComparisonVote.comparison_id)
        .where(where)
        .group_by(ComparisonVote.comparison_id)
        .having(func.count() >= 2)
        .subquery()
    )
    stmt = (
        select(ComparisonVote.comparison_id, ComparisonVote.winner.label("label"), func.count().label("n"))
        .join(shared, shared.c.comparison_id == ComparisonVote.comparison_id)
        .where(where)
        .group_by(ComparisonVote.comparison_id, ComparisonVote.winner)
    )
    return list((await session.execute(stmt)).all())
