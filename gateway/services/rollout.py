"""Canary decisions on evidence: Bradley-Terry win probability of the canary over the champion with a
95% bootstrap interval from A/B votes, and whether its thumbs-down rate is credibly worse.

- promote  when the interval's lower bound is above 0.5 (enough votes);
- roll back when its upper bound is below 0.5, or P(canary down-rate > champion's) >= 0.95;
- otherwise keep collecting. Every decision carries the numbers it was taken on.
"""

import asyncio
import logging
from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np
from scipy.special import expit
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.errors import ApiError
from gateway.policy import PolicyManager
from gateway.services.bradley_terry import fit, tally
from store.models import PolicyVersion
from store.queries.rollout import head_to_head, thumbs

log = logging.getLogger(__name__)

_SCORE = {"win": 1.0, "loss": 0.0, "tie": 0.5}


@dataclass
class RolloutPolicy:
    min_votes: int = 20
    min_thumbs: int = 20
    n_boot: int = 1000
    level: float = 0.95
    worse_probability: float = 0.95


@dataclass
class Evidence:
    votes: int
    wins: int
    losses: int
    ties: int
    both_bad: int
    win_probability: float | None
    low: float | None
    high: float | None
    canary_thumbs: tuple[int, int]
    champion_thumbs: tuple[int, int]
    p_down_rate_worse: float | None


@dataclass
class Decision:
    action: str | None  # "promote" | "rollback" | None (keep collecting)
    reason: str
    evidence: Evidence


def win_probability_interval(
    results: list[str], n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float] | None:
    """BT P(challenger beats champion) and its percentile-bootstrap interval; ties count half."""
    scores = [_SCORE[r] for r in results if r in _SCORE]
    if not scores:
        return None
    outcomes = [(0, 1, s) for s in scores]
    point = float(expit(np.subtract(*fit(tally(outcomes, 2)))))
    # Only three kinds of outcome exist, so resample their counts (multinomial) rather than every vote.
    kinds = [(0, 1, 1.0), (0, 1, 0.0), (0, 1, 0.5)]
    counts = np.array([scores.count(1.0), scores.count(0.0), scores.count(0.5)], dtype=float)
    draws = np.random.default_rng(seed).multinomial(len(scores), counts / counts.sum(), size=n_boot)
    samples = [float(expit(np.subtract(*fit(tally(kinds, 2, weights=draw))))) for draw in draws]
    tail = (1 - level) / 2 * 100
    return point, float(np.percentile(samples, tail)), float(np.percentile(samples, 100 - tail))


def p_down_rate_worse(canary: tuple[int, int], champion: tuple[int, int], draws: int = 20000, seed: int = 0) -> float:
    """P(canary's down-rate > champion's) under Beta(1+down, 1+up) posteriors."""
    rng = np.random.default_rng(seed)
    canary_rate = rng.beta(1 + canary[1], 1 + canary[0], draws)
    champion_rate = rng.beta(1 + champion[1], 1 + champion[0], draws)
    return float(np.mean(canary_rate > champion_rate))


def decide(results: list[str], canary_thumbs, champion_thumbs, policy: RolloutPolicy) -> Decision:
    counted = [r for r in results if r in _SCORE]
    interval = win_probability_interval(counted, policy.n_boot, policy.level) if counted else None
    worse = p_down_rate_worse(canary_thumbs, champion_thumbs) if sum(canary_thumbs) >= policy.min_thumbs else None
    evidence = Evidence(
        votes=len(counted), wins=results.count("win"), losses=results.count("loss"), ties=results.count("tie"),
        both_bad=results.count("both_bad"),
        win_probability=interval[0] if interval else None, low=interval[1] if interval else None,
        high=interval[2] if interval else None,
        canary_thumbs=tuple(canary_thumbs), champion_thumbs=tuple(champion_thumbs), p_down_rate_worse=worse,
    )  # fmt: skip
    if worse is not None and worse >= policy.worse_probability:
        return Decision("rollback", f"thumbs-down rate credibly worse (P={worse:.3f})", evidence)
    if interval is None or len(counted) < policy.min_votes:
        return Decision(None, f"{len(counted)}/{policy.min_votes} votes so far", evidence)
    point, low, high = interval
    if low > 0.5:
        return Decision("promote", f"wins {point:.2f} of votes vs champion, 95% CI [{low:.2f}, {high:.2f}] > 0.5", evidence)
    if high < 0.5:
        return Decision("rollback", f"wins {point:.2f} of votes vs champion, 95% CI [{low:.2f}, {high:.2f}] < 0.5", evidence)
    return Decision(None, f"undecided: 95% CI [{low:.2f}, {high:.2f}] contains 0.5", evidence)


async def gather_evidence(sessionmaker: async_sessionmaker[AsyncSession], canary_id: int, champion_id: int):
    async with sessionmaker() as session:
        canary = await session.get(PolicyVersion, canary_id)
        since = canary.updated_at if canary else None  # thumbs on what it served as canary
        results = await head_to_head(session, canary_id, champion_id)
        return results, await thumbs(session, canary_id), await thumbs(session, champion_id, since)


async def gather_and_decide(
    sessionmaker: async_sessionmaker[AsyncSession], canary_id: int, champion_id: int, policy: RolloutPolicy
) -> Decision:
    evidence = await gather_evidence(sessionmaker, canary_id, champion_id)
    # The bootstrap refits Bradley-Terry many times: keep it off the event loop.
    return await asyncio.to_thread(decide, *evidence, policy)


async def judge_canaries(manager: PolicyManager, sessionmaker, policy: RolloutPolicy, interval_s: float) -> None:
    """Background loop: decide on the live canary whenever the evidence is conclusive."""
    last_seen = None
    while True:
        await asyncio.sleep(interval_s)
        canary, champion = manager.canary, manager.champion
        if canary is None or champion is None:
            continue
        try:
            evidence = await gather_evidence(sessionmaker, canary.version_id, champion.version_id)
            key = (canary.version_id, champion.version_id, Counter(evidence[0]), evidence[1], evidence[2])
            if key == last_seen:
                continue  # nothing new since the last look
            last_seen = key
            decision = await asyncio.to_thread(decide, *evidence, policy)
            if decision.action is None:
                continue
            evidence = asdict(decision.evidence)
            if decision.action == "promote":
                await manager.promote(canary.version_id, reason=decision.reason, evidence=evidence)
            else:
                await manager.rollback(canary.version_id, reason=decision.reason, evidence=evidence)
        except ApiError as exc:
            log.warning("canary decision for %s not applied: %s", canary.name, exc.message)
        except Exception:
            log.exception("canary judging failed; will retry")
