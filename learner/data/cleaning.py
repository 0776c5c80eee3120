"""The cleaning rules between raw feedback and training data: one place, pure, every rule counted.

Rules run in this order; each sees only what the previous one kept and reports kept/dropped and why:

1. `valid`          — malformed judgements are dropped: a rating other than up/down, a winner other
                      than a/b/tie/both_bad, a ranking with fewer than two choices, a repeated or
                      unknown choice, a correction that is empty or identical to the original.
2. `excluded_users` — judgements by users in `excluded_users` (test keys, known spammers) are dropped.
3. `dedupe`         — one judgement per (user, item): the latest (`updated_at`, then `created_at`)
                      wins, earlier ones are superseded. The API already upserts, so this only
                      matters for merged sources; it makes the pipeline safe on any input.
4. `daily_cap`      — at most `max_per_user_per_day` judgements per user per UTC day (by
                      `updated_at`); the earliest ones are kept, so a burst cannot swamp the data.
5. `agreement`      — where several users judged the same item, their verdicts are compared
                      (pairwise agreement rate in the report). Conflicts are settled by the
                      `conflicts` setting: "majority" (default) keeps the verdict held by more than
                      half of the users and drops the rest; with no strict majority (e.g. 1 vs 1)
                      the whole item is dropped. "drop" drops every item with any disagreement.
                      Users who agree are merged into one judgement (the latest), so an item
                      weighs the same in training however many people judged it. Corrections are
                      free text and never conflict: each is kept.

Then each kept judgement becomes examples (see `learner.data.pairs`): `tie` never becomes a pair,
`both_bad` gives no pair but two negatives, a ranking of k gives C(k, 2) pairs, a correction gives
a pair (correction ≻ original) and a positive. Examples whose texts are empty, and pairs whose two
sides are the same text, teach nothing and are dropped (`degenerate`).

Settings come from the environment with the prefix `FEEDBACK_CLEAN_` (e.g.
`FEEDBACK_CLEAN_MAX_PER_USER_PER_DAY=100`, `FEEDBACK_CLEAN_EXCLUDED_USERS=3,7`,
`FEEDBACK_CLEAN_CONFLICTS=drop`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Annotated, Literal

from pydantic import field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from learner.data.pairs import PreferencePair, UnpairedExample, derive
from learner.data.records import Correction, Judgement, LoggedPrompt, Messages, as_utc


class CleaningConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FEEDBACK_CLEAN_", env_file=".env", extra="ignore")

    # Users (api key ids) whose judgements never reach training.
    excluded_users: Annotated[frozenset[int], NoDecode] = frozenset()
    # Judgements kept per user per UTC day; 0 means no cap.
    max_per_user_per_day: int = 200
    # How to settle users who disagree about the same item: keep the strict majority, or drop it.
    conflicts: Literal["majority", "drop"] = "majority"

    @field_validator("excluded_users", mode="before")
    @classmethod
    def _comma_separated(cls, value):
        # The env gives "3,7"; code gives any iterable of ints.
        if isinstance(value, str):
            return frozenset(int(part) for part in value.replace(" ", "").split(",") if part)
        return value


@dataclass
class RuleResult:
    rule: str
    seen: int
    kept: int
    dropped: int
    why: dict[str, int] = field(default_factory=dict)  # reason → dropped count; sums to `dropped`


@dataclass
class CleaningReport:
    config: dict = field(default_factory=dict)  # the settings the rules ran with
    input: int = 0
    input_by_kind: dict[str, int] = field(default_factory=dict)
    rules: list[RuleResult] = field(default_factory=list)
    kept: int = 0
    kept_by_kind: dict[str, int] = field(default_factory=dict)
    agreement: dict = field(default_factory=dict)
    # From kept judgements to examples.
    preference_pairs: int = 0
    preference_by_source: dict[str, int] = field(default_factory=dict)
    unpaired_positive: int = 0
    unpaired_negative: int = 0
    unpaired_by_source: dict[str, int] = field(default_factory=dict)
    no_pair_why: dict[str, int] = field(default_factory=dict)  # e.g. tie, both_bad, thumb
    degenerate_dropped: dict[str, int] = field(default_factory=dict)
    prompts: dict = field(default_factory=dict)

    @property
    def dropped(self) -> int:
        return sum(rule.dropped for rule in self.rules)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["dropped"] = self.dropped
        return out


@dataclass
class CleanedFeedback:
    judgements: list[Judgement]
    preference: list[PreferencePair]
    unpaired: list[UnpairedExample]
    report: CleaningReport


# --- the rules: each takes judgements, returns (kept, {reason: dropped}) -------------------------


def drop_invalid(judgements: Sequence[Judgement]) -> tuple[list[Judgement], dict[str, int]]:
    kept, why = [], Counter()
    for judgement in judgements:
        if judgement.is_valid():
            kept.append(judgement)
        else:
            why[f"invalid_{judgement.kind}"] += 1
    return kept, dict(why)


def drop_excluded_users(
    judgements: Sequence[Judgement], excluded: frozenset[int]
) -> tuple[list[Judgement], dict[str, int]]:
    kept = [j for j in judgements if j.user_id not in excluded]
    dropped = len(judgements) - len(kept)
    return kept, ({"excluded_user": dropped} if dropped else {})


def _recency(judgement: Judgement) -> tuple:
    return (as_utc(judgement.updated_at), as_utc(judgement.created_at))


def dedupe_latest(judgements: Sequence[Judgement]) -> tuple[list[Judgement], dict[str, int]]:
    """One judgement per (user, item), the most recent; on equal times the later one in the input."""
    latest: dict[tuple, int] = {}
    for position, judgement in enumerate(judgements):
        key = (judgement.user_id, judgement.item_key)
        if key not in latest or _recency(judgement) >= _recency(judgements[latest[key]]):
            latest[key] = position
    keep = set(latest.values())
    kept = [j for position, j in enumerate(judgements) if position in keep]  # input order preserved
    dropped = len(judgements) - len(kept)
    return kept, ({"superseded": dropped} if dropped else {})


def cap_per_user_per_day(
    judgements: Sequence[Judgement], cap: int
) -> tuple[list[Judgement], dict[str, int]]:
    """The first `cap` judgements of each user on each UTC day; 0 = no cap."""
    if cap <= 0:
        return list(judgements), {}
    order = sorted(
        range(len(judgements)),
        key=lambda i: (as_utc(judgements[i].updated_at), judgements[i].kind, repr(judgements[i].item_key)),
    )
    used: Counter = Counter()
    keep = set()
    for i in order:
        bucket = (judgements[i].user_id, as_utc(judgements[i].updated_at).date())
        if used[bucket] < cap:
            used[bucket] += 1
            keep.add(i)
    kept = [j for i, j in enumerate(judgements) if i in keep]
    dropped = len(judgements) - len(kept)
    return kept, ({"over_daily_cap": dropped} if dropped else {})


def agreement_stats(judgements: Sequence[Judgement]) -> dict:
    """How often two users who judged the same item said the same thing (corrections excluded)."""
    by_item: dict[tuple, list[Judgement]] = defaultdict(list)
    for judgement in judgements:
        if not isinstance(judgement, Correction):
            by_item[judgement.item_key].append(judgement)
    multi = [group for group in by_item.values() if len({j.user_id for j in group}) > 1]
    user_pairs = agreeing = 0
    for group in multi:
        for left, right in combinations(group, 2):
            if left.user_id != right.user_id:
                user_pairs += 1
                agreeing += left.verdict == right.verdict
    return {
        "items_judged_by_several_users": len(multi),
        "items_unanimous": sum(len({j.verdict for j in group}) == 1 for group in multi),
        "user_pairs": user_pairs,
        "user_pairs_agreeing": agreeing,
        "rate": (agreeing / user_pairs) if user_pairs else None,
    }


def settle_conflicts(
    judgements: Sequence[Judgement], policy: Literal["majority", "drop"]
) -> tuple[list[Judgement], dict[str, int]]:
    """One judgement per item judged by several users (after dedupe each user has one per item)."""
    by_item: dict[tuple, list[int]] = defaultdict(list)
    for position, judgement in enumerate(judgements):
        if not isinstance(judgement, Correction):
            by_item[judgement.item_key].append(position)
    drop_positions: dict[int, str] = {}
    for positions in by_item.values():
        if len(positions) < 2:
            continue
        votes = Counter(judgements[p].verdict for p in positions)
        verdict, count = votes.most_common(1)[0]
        has_majority = count * 2 > len(positions) and (policy == "majority" or len(votes) == 1)
        if not has_majority:
            for p in positions:
                drop_positions[p] = "conflict_no_majority" if policy == "majority" else "conflict"
            continue
        agreeing = [p for p in positions if judgements[p].verdict == verdict]
        representative = max(agreeing, key=lambda p: (_recency(judgements[p]), p))
        for p in positions:
            if p == representative:
                continue
            drop_positions[p] = "merged_agreeing" if judgements[p].verdict == verdict else "outvoted"
    kept = [j for position, j in enumerate(judgements) if position not in drop_positions]
    return kept, dict(Counter(drop_positions.values()))


# --- the pipeline ---------------------------------------------------------------------------------


def _apply(
    report: CleaningReport,
    name: str,
    judgements: list[Judgement],
    rule: Callable[[list[Judgement]], tuple[list[Judgement], dict[str, int]]],
) -> list[Judgement]:
    kept, why = rule(judgements)
    report.rules.append(RuleResult(name, len(judgements), len(kept), len(judgements) - len(kept), why))
    return kept


def clean_judgements(
    judgements: Iterable[Judgement], config: CleaningConfig | None = None
) -> tuple[list[Judgement], CleaningReport]:
    """Rules 1-5 (see the module docstring); pure: the same input always gives the same output."""
    config = config or CleaningConfig()
    judgements = list(judgements)
    report = CleaningReport(
        config=config.model_dump(mode="json"),
        input=len(judgements),
        input_by_kind=dict(Counter(j.kind for j in judgements)),
    )
    judgements = _apply(report, "valid", judgements, drop_invalid)
    judgements = _apply(
        report, "excluded_users", judgements, lambda js: drop_excluded_users(js, config.excluded_users)
    )
    judgements = _apply(report, "dedupe", judgements, dedupe_latest)
    judgements = _apply(
        report, "daily_cap", judgements, lambda js: cap_per_user_per_day(js, config.max_per_user_per_day)
    )
    report.agreement = agreement_stats(judgements) | {"conflicts": config.conflicts}
    judgements = _apply(report, "agreement", judgements, lambda js: settle_conflicts(js, config.conflicts))
    report.kept = len(judgements)
    report.kept_by_kind = dict(Counter(j.kind for j in judgements))
    return judgements, report


def _degenerate_pair(pair: PreferencePair) -> str | None:
    if not pair.chosen.strip() or not pair.rejected.strip():
        return "pair_empty_text"
    if pair.chosen.strip() == pair.rejected.strip():
        return "pair_identical_texts"
    return None


def build_examples(
    judgements: Iterable[Judgement], report: CleaningReport
) -> tuple[list[PreferencePair], list[UnpairedExample]]:
    """Kept judgements → pairs and unpaired examples, dropping degenerate ones; counts go to `report`."""
    preference: list[PreferencePair] = []
    unpaired: list[UnpairedExample] = []
    no_pair, degenerate = Counter(), Counter()
    for judgement in judgements:
        pairs, singles = derive(judgement)
        if not pairs:
            no_pair[getattr(judgement, "winner", judgement.kind)] += 1
        for pair in pairs:
            if reason := _degenerate_pair(pair):
                degenerate[reason] += 1
            else:
                preference.append(pair)
        for single in singles:
            if single.completion.strip():
                unpaired.append(single)
            else:
                degenerate["unpaired_empty_text"] += 1
    report.preference_pairs = len(preference)
    report.preference_by_source = dict(Counter(p.source for p in preference))
    report.unpaired_positive = sum(u.label for u in unpaired)
    report.unpaired_negative = len(unpaired) - report.unpaired_positive
    report.unpaired_by_source = dict(Counter(u.source for u in unpaired))
    report.no_pair_why = dict(no_pair)
    report.degenerate_dropped = dict(degenerate)
    return preference, unpaired


def clean_feedback(judgements: Iterable[Judgement], config: CleaningConfig | None = None) -> CleanedFeedback:
    kept, report = clean_judgements(judgements, config)
    preference, unpaired = build_examples(kept, report)
    return CleanedFeedback(kept, preference, unpaired, report)


def clean_prompts(
    prompts: Iterable[LoggedPrompt], config: CleaningConfig | None = None, report: CleaningReport | None = None
) -> list[Messages]:
    """Distinct prompts (first seen wins) from users not excluded; empty prompts dropped."""
    config = config or CleaningConfig()
    prompts = list(prompts)
    seen: set[str] = set()
    out: list[Messages] = []
    why = Counter()
    for logged in prompts:
        if logged.user_id in config.excluded_users:
            why["excluded_user"] += 1
            continue
        if not any(message["content"].strip() for message in logged.prompt):
            why["empty"] += 1
            continue
        key = repr(logged.prompt)
        if key in seen:
            why["duplicate"] += 1
            continue
        seen.add(key)
        out.append(logged.prompt)
    if report is not None:
        report.prompts = {"input": len(prompts), "kept": len(out), "dropped": dict(why)}
    return out
