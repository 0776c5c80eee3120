from typing import Literal

from pydantic import BaseModel

from gateway.schemas.common import UtcDatetime


class ReviewFeedbackItem(BaseModel):
    id: int
    api_key_id: int
    key_name: str
    completion_id: str
    choice_index: int
    policy_version: str
    rating: str
    reasons: list[str]
    comment: str | None
    correction: str | None
    messages: list
    response: str | None
    created_at: UtcDatetime
    updated_at: UtcDatetime


class ReviewFeedbackPage(BaseModel):
    object: Literal["list"] = "list"
    data: list[ReviewFeedbackItem]
    next_cursor: str | None
    has_more: bool


class ReasonCount(BaseModel):
    reason: str
    count: int


class PolicyStats(BaseModel):
    policy_version: str
    feedback: int
    up: int
    down: int
    up_rate: float | None
    top_reasons: list[ReasonCount]
    rankings: int
    votes: int  # votes on comparisons where this version was one of the two sides
    wins: float  # ties count half, both_bad counts nothing (only votes between two different versions)


class Agreement(BaseModel):
    """Pairwise agreement over items judged by two or more keys: P(two judges of an item agree)."""

    items: int
    pairs: int
    agreeing_pairs: int
    rate: float | None


class VoteTotals(BaseModel):
    total: int
    a: int
    b: int
    tie: int
    both_bad: int


class ReviewStats(BaseModel):
    object: Literal["review.stats"] = "review.stats"
    feedback: int
    up: int
    down: int
    up_rate: float | None
    rankings: int
    votes: VoteTotals
    policies: list[PolicyStats]
    agreement: dict[str, Agreement]  # "feedback", "votes"


class LeaderboardEntry(BaseModel):
    rank: int
    policy_version: str
    score: float  # Bradley-Terry log-strength, mean zero over the listed versions
    ci_low: float
    ci_high: float
    elo: float
    games: float
    wins: float
    win_probability_vs_champion: float | None


class Leaderboard(BaseModel):
    object: Literal["review.leaderboard"] = "review.leaderboard"
    method: str
    confidence: float
    bootstrap_samples: int
    votes_used: int
    votes_skipped: int  # same version on both sides, or both_bad: no information on relative strength
    champion: str | None
    entries: list[LeaderboardEntry]
