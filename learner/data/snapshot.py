"""Read feedback from the database into records, clean it, and hand the learner TRL-ready rows.

The window is a watermark: a judgement belongs to the snapshot when `since < updated_at <= until`
(so an edited judgement comes back in the next window), a logged prompt when
`since < created_at <= until`. `since=None` means from the beginning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from learner.data.cleaning import CleaningConfig, clean_feedback, clean_prompts
from learner.data.records import (
    Correction,
    Judgement,
    LoggedPrompt,
    RankingRecord,
    Thumb,
    Vote,
    as_utc,
    normalize_messages,
)
from store.models import Comparison, ComparisonVote, Completion, CompletionChoice, Feedback, Ranking


@dataclass
class Snapshot:
    preference: list[dict]
    unpaired: list[dict]
    prompts: list[dict]
    report: dict
    watermark_until: datetime
    new_items: int  # judgements in the window before cleaning
    watermark_since: datetime | None = field(default=None)

    def rows(self, kind: str) -> list[dict]:
        return {"preference": self.preference, "unpaired": self.unpaired, "prompt": self.prompts}[kind]


def _in_window(column, since: datetime | None, until: datetime | None):
    conditions = []
    if since is not None:
        conditions.append(column > as_utc(since))
    if until is not None:
        conditions.append(column <= as_utc(until))
    return and_(true(), *conditions)


async def _feedback_records(session: AsyncSession, since, until) -> tuple[list[Judgement], int]:
    """Thumbs, plus a Correction for every feedback that carries an edited answer."""
    rows = await session.execute(
        select(
            Feedback.api_key_id,
            Feedback.completion_id,
            Feedback.choice_index,
            Feedback.rating,
            Feedback.reasons,
            Feedback.correction,
            Feedback.created_at,
            Feedback.updated_at,
            Completion.messages,
            Completion.policy_version_id,
            CompletionChoice.text,
        )
        .join(Completion, Completion.id == Feedback.completion_id)
        .outerjoin(
            CompletionChoice,
            and_(
                CompletionChoice.completion_id == Feedback.completion_id,
                CompletionChoice.index == Feedback.choice_index,
            ),
        )
        .where(_in_window(Feedback.updated_at, since, until))
        .order_by(Feedback.updated_at, Feedback.id)
    )
    records: list[Judgement] = []
    count = 0
    for row in rows:
        count += 1
        prompt = normalize_messages(row.messages)
        created, updated = as_utc(row.created_at), as_utc(row.updated_at)
        text = row.text or ""
        records.append(
            Thumb(
                row.api_key_id, prompt, created, updated, row.completion_id, row.choice_index, row.rating, text,
                row.policy_version_id, tuple(row.reasons or ()),
            )
        )
        if row.correction is not None:
            records.append(
                Correction(
                    row.api_key_id, prompt, created, updated, row.completion_id, row.choice_index, text,
                    row.correction, row.policy_version_id,
                )
            )
    return records, count


async def _vote_records(session: AsyncSession, since, until) -> list[Judgement]:
    completion_a, completion_b = aliased(Completion), aliased(Completion)
    choice_a, choice_b = aliased(CompletionChoice), aliased(CompletionChoice)
    rows = await session.execute(
        select(
            ComparisonVote.api_key_id,
            ComparisonVote.comparison_id,
            ComparisonVote.winner,
            ComparisonVote.created_at,
            ComparisonVote.updated_at,
            Comparison.messages,
            completion_a.policy_version_id.label("policy_a"),
            completion_b.policy_version_id.label("policy_b"),
            choice_a.text.label("text_a"),
            choice_b.text.label("text_b"),
        )
        .join(Comparison, Comparison.id == ComparisonVote.comparison_id)
        .join(completion_a, completion_a.id == Comparison.completion_a_id)
        .join(completion_b, completion_b.id == Comparison.completion_b_id)
        # Each side of a comparison is a one-choice completion: choice index 0.
        .outerjoin(choice_a, and_(choice_a.completion_id == completion_a.id, choice_a.index == 0))
        .outerjoin(choice_b, and_(choice_b.completion_id == completion_b.id, choice_b.index == 0))
        .where(_in_window(ComparisonVote.updated_at, since, until))
        .order_by(ComparisonVote.updated_at, ComparisonVote.id)
    )
    return [
        Vote(
            row.api_key_id, normalize_messages(row.messages), as_utc(row.created_at), as_utc(row.updated_at),
            row.comparison_id, row.winner, row.text_a or "", row.text_b or "", row.policy_a, row.policy_b,
        )
        for row in rows
    ]


async def _ranking_records(session: AsyncSession, since, until) -> list[Judgement]:
    rows = (
        await session.execute(
            select(
                Ranking.api_key_id,
                Ranking.completion_id,
                Ranking.order,
                Ranking.created_at,
                Ranking.updated_at,
                Completion.messages,
                Completion.policy_version_id,
            )
            .join(Completion, Completion.id == Ranking.completion_id)
            .where(_in_window(Ranking.updated_at, since, until))
            .order_by(Ranking.updated_at, Ranking.id)
        )
    ).all()
    texts: dict[str, list[tuple[int, str]]] = {}
    completion_ids = sorted({row.completion_id for row in rows})
    for start in range(0, len(completion_ids), 500):  # stay under bind-parameter limits
        choices = await session.execute(
            select(CompletionChoice.completion_id, CompletionChoice.index, CompletionChoice.text).where(
                CompletionChoice.completion_id.in_(completion_ids[start : start + 500])
            )
        )
        for choice in choices:
            texts.setdefault(choice.completion_id, []).append((choice.index, choice.text or ""))
    return [
        RankingRecord(
            row.api_key_id, normalize_messages(row.messages), as_utc(row.created_at), as_utc(row.updated_at),
            row.completion_id, tuple(int(i) for i in (row.order or ())),
            tuple(sorted(texts.get(row.completion_id, ()))), row.policy_version_id,
        )
        for row in rows
    ]


async def _logged_prompts(session: AsyncSession, since, until) -> list[LoggedPrompt]:
    rows = await session.execute(
        select(Completion.api_key_id, Completion.messages, Completion.created_at)
        .where(_in_window(Completion.created_at, since, until))
        .order_by(Completion.created_at, Completion.id)
    )
    return [LoggedPrompt(row.api_key_id, normalize_messages(row.messages), as_utc(row.created_at)) for row in rows]


async def build_snapshot(
    session: AsyncSession,
    since: datetime | None,
    until: datetime,
    config: CleaningConfig | None = None,
) -> Snapshot:
    """Everything judged in (since, until], cleaned, as TRL conversational rows with a cleaning report."""
    config = config or CleaningConfig()
    feedback, feedback_rows = await _feedback_records(session, since, until)
    votes = await _vote_records(session, since, until)
    rankings = await _ranking_records(session, since, until)
    cleaned = clean_feedback([*feedback, *votes, *rankings], config)
    prompts = clean_prompts(await _logged_prompts(session, since, until), config, cleaned.report)
    report = cleaned.report.to_dict() | {
        "window": {"since": since.isoformat() if since else None, "until": until.isoformat()},
    }
    return Snapshot(
        preference=[pair.to_row() for pair in cleaned.preference],
        unpaired=[example.to_row() for example in cleaned.unpaired],
        prompts=[{"prompt": [dict(message) for message in prompt]} for prompt in prompts],
        report=report,
        watermark_until=as_utc(until),
        new_items=feedback_rows + len(votes) + len(rankings),
        watermark_since=as_utc(since) if since else None,
    )


async def count_new_feedback(session: AsyncSession, since: datetime | None) -> int:
    """Feedback rows, votes and rankings created or changed after `since` (all of them when None)."""
    total = 0
    for table in (Feedback, ComparisonVote, Ranking):
        changed = _in_window(table.updated_at, since, None)
        total += await session.scalar(select(func.count()).select_from(table).where(changed))
    return total

