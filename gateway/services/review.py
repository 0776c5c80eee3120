"""Reviewer read side: the feedback list (cursor-paginated and exportable), stats, and the leaderboard."""

import asyncio
import base64
import binascii
import csv
import io
import json
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.errors import ApiError
from gateway.schemas.common import as_utc
from gateway.schemas.review import (
    Agreement,
    Leaderboard,
    LeaderboardEntry,
    PolicyStats,
    ReasonCount,
    ReviewFeedbackItem,
    ReviewFeedbackPage,
    ReviewStats,
    VoteTotals,
)
from gateway.services import bradley_terry
from store.queries import review as queries
from store.queries.review import FeedbackFilter

EXPORT_BATCH = 500
TOP_REASONS = 5
CSV_COLUMNS = [
    "id", "created_at", "updated_at", "api_key_id", "key_name", "completion_id", "choice_index",
    "policy_version", "rating", "reasons", "comment", "correction", "messages", "response",
]  # fmt: skip


def make_filter(rating: str | None, policy_version: str | None, since: datetime | None) -> FeedbackFilter:
    return FeedbackFilter(rating=rating, policy_version=policy_version, since=as_utc(since) if since else None)


# ---- cursor: opaque to clients; today it is the last id seen, tomorrow it may be more ----------
def encode_cursor(before_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"before": before_id}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        before = data["before"]
        if not isinstance(before, int) or isinstance(before, bool):
            raise TypeError
        return before
    except (ValueError, TypeError, KeyError, binascii.Error, UnicodeDecodeError):
        raise ApiError(400, "invalid cursor; pass back the next_cursor of a previous page", code="invalid_cursor",
                       param="cursor") from None  # fmt: skip


def _item(row) -> ReviewFeedbackItem:
    return ReviewFeedbackItem.model_validate(row._asdict() | {"reasons": list(row.reasons or ())})


async def feedback_page(session: AsyncSession, f: FeedbackFilter, cursor: str | None, limit: int) -> ReviewFeedbackPage:
    rows = await queries.list_feedback(session, f, before_id=decode_cursor(cursor), limit=limit + 1)
    has_more = len(rows) > limit
    items = [_item(row) for row in rows[:limit]]
    return ReviewFeedbackPage(
        data=items, has_more=has_more, next_cursor=encode_cursor(items[-1].id) if has_more else None
    )


async def _export_items(sessionmaker: async_sessionmaker, f: FeedbackFilter) -> AsyncIterator[ReviewFeedbackItem]:
    # A short session per batch: a slow download never holds a connection (or a SQLite read snapshot) open.
    before = None
    while True:
        async with sessionmaker() as session:
            rows = await queries.list_feedback(session, f, before_id=before, limit=EXPORT_BATCH)
        for row in rows:
            yield _item(row)
        if len(rows) < EXPORT_BATCH:
            return
        before = rows[-1].id


async def export_jsonl(sessionmaker: async_sessionmaker, f: FeedbackFilter) -> AsyncIterator[bytes]:
    async for item in _export_items(sessionmaker, f):
        yield item.model_dump_json().encode() + b"\n"


def _csv_line(values: Iterable) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(values)
    return buffer.getvalue().encode()


async def export_csv(sessionmaker: async_sessionmaker, f: FeedbackFilter) -> AsyncIterator[bytes]:
    yield _csv_line(CSV_COLUMNS)
    async for item in _export_items(sessionmaker, f):
        data = item.model_dump(mode="json")
        data["reasons"] = ";".join(item.reasons)
        data["messages"] = json.dumps(item.messages, ensure_ascii=False)
        yield _csv_line(data[column] if data[column] is not None else "" for column in CSV_COLUMNS)


# ---- stats --------------------------------------------------------------------------------------
def pairwise_agreement(label_counts: Iterable[tuple[object, int]]) -> Agreement:
    """`(item, n)` rows, one per (item, label): the chance that two judges of the same item agree."""
    per_item: dict[object, list[int]] = defaultdict(list)
    for item, n in label_counts:
        per_item[item].append(n)
    pairs = agreeing = 0
    for counts in per_item.values():
        total = sum(counts)
        pairs += total * (total - 1) // 2
        agreeing += sum(n * (n - 1) // 2 for n in counts)
    return Agreement(items=len(per_item), pairs=pairs, agreeing_pairs=agreeing, rate=agreeing / pairs if pairs else None)


def _rate(up: int, total: int) -> float | None:
    return up / total if total else None


async def stats(session: AsyncSession, since: datetime | None) -> ReviewStats:
    since = as_utc(since) if since else None
    counts: dict[str, Counter] = defaultdict(Counter)
    for row in await queries.feedback_counts(session, since):
        counts[row.policy_version][row.rating] += row.n
    reasons: dict[str, Counter] = defaultdict(Counter)
    for row in await queries.feedback_reasons(session, since):
        reasons[row.policy_version].update(row.reasons or ())
    rankings = {row.policy_version: row.n for row in await queries.ranking_counts(session, since)}
    outcomes = await queries.vote_outcomes(session, since)
    totals = Counter(row.winner for row in outcomes)
    votes: Counter = Counter()
    wins: Counter = Counter()
    for row in outcomes:
        for side in {row.policy_a, row.policy_b}:
            votes[side] += 1
        if row.policy_a != row.policy_b and row.winner != "both_bad":
            score_a = {"a": 1.0, "b": 0.0, "tie": 0.5}[row.winner]
            wins[row.policy_a] += score_a
            wins[row.policy_b] += 1 - score_a
    names = sorted(set(counts) | set(rankings) | set(votes))
    policies = [
        PolicyStats(
            policy_version=name,
            feedback=counts[name].total(),
            up=counts[name]["up"],
            down=counts[name]["down"],
            up_rate=_rate(counts[name]["up"], counts[name].total()),
            top_reasons=[ReasonCount(reason=r, count=c) for r, c in reasons[name].most_common(TOP_REASONS)],
            rankings=rankings.get(name, 0),
            votes=votes[name],
            wins=wins[name],
        )
        for name in names
    ]
    up, down = sum(c["up"] for c in counts.values()), sum(c["down"] for c in counts.values())
    feedback_labels = await queries.shared_feedback_labels(session, since)
    vote_labels = await queries.shared_vote_labels(session, since)
    return ReviewStats(
        feedback=up + down, up=up, down=down, up_rate=_rate(up, up + down),
        rankings=sum(rankings.values()),
        votes=VoteTotals(total=len(outcomes), a=totals["a"], b=totals["b"], tie=totals["tie"], both_bad=totals["both_bad"]),
        policies=policies,
        agreement={
            "feedback": pairwise_agreement(((r.completion_id, r.choice_index), r.n) for r in feedback_labels),
            "votes": pairwise_agreement((r.comparison_id, r.n) for r in vote_labels),
        },
    )  # fmt: skip


# ---- leaderboard --------------------------------------------------------------------------------
_SCORE_A = {"a": 1.0, "b": 0.0, "tie": 0.5}


def build_leaderboard(
    votes: Iterable[tuple[str, str, str]], *, live: Iterable[str] = (), champion: str | None = None,
    n_boot: int = 200, confidence: float = 0.95, seed: int = 0,
) -> Leaderboard:  # fmt: skip
    """`(policy_a, policy_b, winner)` votes → Bradley-Terry strengths with bootstrap intervals.

    Only votes between two different versions that name a winner or a tie carry information on relative
    strength; the rest (self-comparisons, both_bad) are counted as skipped.
    """
    used: list[tuple[str, str, float]] = []
    skipped = 0
    for policy_a, policy_b, winner in votes:
        if policy_a == policy_b or winner not in _SCORE_A:
            skipped += 1
        else:
            used.append((policy_a, policy_b, _SCORE_A[winner]))
    players = sorted({p for a, b, _ in used for p in (a, b)} | set(live) | ({champion} if champion else set()))
    index = {name: i for i, name in enumerate(players)}
    outcomes = [(index[a], index[b], s) for a, b, s in used]
    board = bradley_terry.leaderboard(players, outcomes, n_boot=n_boot, level=confidence, seed=seed)
    champion_score = next((s.score for s in board if s.player == champion), None)
    entries = [
        LeaderboardEntry(
            rank=rank, policy_version=s.player, score=s.score, ci_low=s.low, ci_high=s.high, elo=s.elo,
            games=s.games, wins=s.wins,
            win_probability_vs_champion=(
                bradley_terry.win_probability(s.score, champion_score) if champion_score is not None else None
            ),
        )  # fmt: skip
        for rank, s in enumerate(board, start=1)
    ]
    return Leaderboard(
        method="bradley-terry (MAP, L2 prior) with percentile bootstrap", confidence=confidence,
        bootstrap_samples=n_boot, votes_used=len(used), votes_skipped=skipped, champion=champion, entries=entries,
    )  # fmt: skip


async def leaderboard(
    session: AsyncSession, since: datetime | None, *, live: list[str], champion: str | None, n_boot: int
) -> Leaderboard:
    rows = await queries.vote_outcomes(session, as_utc(since) if since else None)
    votes = [(row.policy_a, row.policy_b, row.winner) for row in rows]
    # The bootstrap is CPU work (n_boot fits): keep it off the event loop.
    return await asyncio.to_thread(build_leaderboard, votes, live=live, champion=champion, n_boot=n_boot)
