"""Evidence for canary decisions: A/B votes between two versions, and thumbs per version."""

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from store.models import Comparison, ComparisonVote, Completion, Feedback


async def head_to_head(session: AsyncSession, challenger_id: int, champion_id: int) -> list[str]:
    """Each vote on a comparison of these two versions, as the challenger's result: win|loss|tie|both_bad."""
    a, b = aliased(Completion), aliased(Completion)
    rows = await session.execute(
        select(a.policy_version_id, b.policy_version_id, ComparisonVote.winner)
        .join(Comparison, ComparisonVote.comparison_id == Comparison.id)
        .join(a, Comparison.completion_a_id == a.id)
        .join(b, Comparison.completion_b_id == b.id)
        .where(
            ((a.policy_version_id == challenger_id) & (b.policy_version_id == champion_id))
            | ((a.policy_version_id == champion_id) & (b.policy_version_id == challenger_id))
        )
    )
    results = []
    for version_a, _, winner in rows:
        if winner in ("tie", "both_bad"):
            results.append(winner)
        else:
            challenger_label = "a" if version_a == challenger_id else "b"
            results.append("win" if winner == challenger_label else "loss")
    return results


async def thumbs(session: AsyncSession, version_id: int, since: datetime | None = None) -> tuple[int, int]:
    """(ups, downs) on completions served by a version (optionally only those served since a time)."""
    query = (
        select(Feedback.rating, func.count())
        .join(Completion, Feedback.completion_id == Completion.id)
        .where(Completion.policy_version_id == version_id)
        .group_by(Feedback.rating)
    )
    if since is not None:
        query = query.where(Completion.created_at >= since)
    counts = dict((await session.execute(query)).all())
    return counts.get("up", 0), counts.get("down", 0)
