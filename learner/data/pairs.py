"""Turning judgements into training examples: preference pairs (DPO, reward model) and unpaired
labelled completions (KTO). Pure functions, one per judgement kind; `derive` dispatches.

What each kind yields:
- vote a|b      → 1 pair (winner ≻ loser); unpaired: winner True, loser False.
- vote tie      → nothing: no preference, and nothing says either answer is good or bad.
- vote both_bad → no pair (neither is preferred), but both answers are negatives for KTO.
- ranking of k  → C(k, 2) pairs, every earlier choice ≻ every later one; unpaired: best True,
                  worst False (the middle of a ranking says nothing absolute).
- correction    → 1 pair (correction ≻ original) and the correction as a positive.
- thumb up|down → no pair (one answer alone has nothing to be compared with); 1 unpaired example.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

from learner.data.records import Correction, Judgement, Messages, RankingRecord, Thumb, Vote


@dataclass(frozen=True)
class PreferencePair:
    prompt: Messages
    chosen: str
    rejected: str
    source: str  # the judgement kind it came from, for the report

    def to_row(self) -> dict:
        """TRL's conversational preference format (DPOTrainer, RewardTrainer)."""
        return {
            "prompt": [dict(message) for message in self.prompt],
            "chosen": [{"role": "assistant", "content": self.chosen}],
            "rejected": [{"role": "assistant", "content": self.rejected}],
        }


@dataclass(frozen=True)
class UnpairedExample:
    prompt: Messages
    completion: str
    label: bool
    source: str

    def to_row(self) -> dict:
        """TRL's conversational unpaired preference format (KTOTrainer)."""
        return {
            "prompt": [dict(message) for message in self.prompt],
            "completion": [{"role": "assistant", "content": self.completion}],
            "label": self.label,
        }


def pairs_from_vote(vote: Vote) -> list[PreferencePair]:
    if vote.winner == "a":
        return [PreferencePair(vote.prompt, vote.text_a, vote.text_b, "vote")]
    if vote.winner == "b":
        return [PreferencePair(vote.prompt, vote.text_b, vote.text_a, "vote")]
    return []  # tie and both_bad never make a pair


def unpaired_from_vote(vote: Vote) -> list[UnpairedExample]:
    if vote.winner == "tie":
        return []
    if vote.winner == "both_bad":
        return [
            UnpairedExample(vote.prompt, vote.text_a, False, "vote"),
            UnpairedExample(vote.prompt, vote.text_b, False, "vote"),
        ]
    winner, loser = (vote.text_a, vote.text_b) if vote.winner == "a" else (vote.text_b, vote.text_a)
    return [UnpairedExample(vote.prompt, winner, True, "vote"), UnpairedExample(vote.prompt, loser, False, "vote")]


def pairs_from_ranking(ranking: RankingRecord) -> list[PreferencePair]:
    # combinations() keeps the order's positions, so i always comes before j: i ≻ j.
    return [
        PreferencePair(ranking.prompt, ranking.text_of(better), ranking.text_of(worse), "ranking")
        for better, worse in combinations(ranking.order, 2)
    ]


def unpaired_from_ranking(ranking: RankingRecord) -> list[UnpairedExample]:
    if len(ranking.order) < 2:
        return []
    best, worst = ranking.order[0], ranking.order[-1]
    return [
        UnpairedExample(ranking.prompt, ranking.text_of(best), True, "ranking"),
        UnpairedExample(ranking.prompt, ranking.text_of(worst), False, "ranking"),
    ]


def pairs_from_correction(correction: Correction) -> list[PreferencePair]:
    return [PreferencePair(correction.prompt, correction.corrected, correction.original, "correction")]


def unpaired_from_correction(correction: Correction) -> list[UnpairedExample]:
    return [UnpairedExample(correction.prompt, correction.corrected, True, "correction")]


def unpaired_from_thumb(thumb: Thumb) -> list[UnpairedExample]:
    return [UnpairedExample(thumb.prompt, thumb.text, thumb.rating == "up", "thumb")]


def derive(judgement: Judgement) -> tuple[list[PreferencePair], list[UnpairedExample]]:
    """The pairs and unpaired examples one judgement yields."""
    if isinstance(judgement, Vote):
        return pairs_from_vote(judgement), unpaired_from_vote(judgement)
    if isinstance(judgement, RankingRecord):
        return pairs_from_ranking(judgement), unpaired_from_ranking(judgement)
    if isinstance(judgement, Correction):
        return pairs_from_correction(judgement), unpaired_from_correction(judgement)
    if isinstance(judgement, Thumb):
        return [], unpaired_from_thumb(judgement)
    raise TypeError(f"unknown judgement {type(judgement).__name__}")
