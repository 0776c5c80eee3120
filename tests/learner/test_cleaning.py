"""The cleaning rules, property-tested over generated feedback (a few users judging a few items)."""

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from learner.data.cleaning import (
    CleaningConfig,
    CleaningReport,
    cap_per_user_per_day,
    clean_feedback,
    clean_judgements,
    clean_prompts,
    dedupe_latest,
    drop_excluded_users,
    drop_invalid,
    settle_conflicts,
)
from learner.data.records import Correction, LoggedPrompt, RankingRecord, Thumb, Vote, normalize_messages

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PROMPT = normalize_messages([{"role": "user", "content": "hi"}])

users = st.integers(0, 3)
# Minutes over two days, so daily caps and "latest" both get exercised.
moments = st.integers(0, 2 * 24 * 60).map(lambda minutes: T0 + timedelta(minutes=minutes))
items = st.sampled_from(["c0", "c1", "c2"])
short_texts = st.sampled_from(["", "yes", "no", "maybe", "yes "])


@st.composite
def times(draw):
    created = draw(moments)
    return created, created + timedelta(minutes=draw(st.integers(0, 600)))


@st.composite
def thumbs(draw):
    created, updated = draw(times())
    return Thumb(
        draw(users), PROMPT, created, updated, draw(items), draw(st.integers(0, 1)),
        draw(st.sampled_from(["up", "down", "meh"])), draw(short_texts),
    )


@st.composite
def votes(draw):
    created, updated = draw(times())
    return Vote(
        draw(users), PROMPT, created, updated, draw(items),
        draw(st.sampled_from(["a", "b", "tie", "both_bad", "x"])), draw(short_texts), draw(short_texts),
    )


@st.composite
def rankings(draw):
    created, updated = draw(times())
    # Mostly proper rankings (a permutation of 2-3 of the 3 choices), sometimes malformed ones.
    proper = st.permutations(range(3)).flatmap(lambda p: st.integers(2, 3).map(lambda k: tuple(p[:k])))
    order = draw(st.one_of(proper, proper, proper, st.lists(st.integers(0, 3), max_size=4).map(tuple)))
    texts = tuple((i, f"answer {i}") for i in range(3))
    return RankingRecord(draw(users), PROMPT, created, updated, draw(items), order, texts)


@st.composite
def corrections(draw):
    created, updated = draw(times())
    return Correction(
        draw(users), PROMPT, created, updated, draw(items), draw(st.integers(0, 1)),
        draw(short_texts), draw(short_texts),
    )


judgements = st.lists(st.one_of(thumbs(), votes(), rankings(), corrections()), max_size=40)
configs = st.builds(
    CleaningConfig,
    excluded_users=st.frozensets(users, max_size=2),
    max_per_user_per_day=st.integers(0, 5),
    conflicts=st.sampled_from(["majority", "drop"]),
)


@given(judgements)
def test_dedupe_is_idempotent_and_keeps_the_latest(js):
    once, _ = dedupe_latest(js)
    twice, why = dedupe_latest(once)
    assert twice == once and why == {}
    keys = [(j.user_id, j.item_key) for j in once]
    assert len(keys) == len(set(keys))
    for kept in once:
        same = [j for j in js if (j.user_id, j.item_key) == (kept.user_id, kept.item_key)]
        assert kept.updated_at == max(j.updated_at for j in same)


@given(judgements, configs)
def test_report_counts_add_up(js, config):
    result = clean_feedback(js, config)
    report = result.report
    assert report.input == len(js) == report.kept + report.dropped
    assert report.kept == len(result.judgements) == sum(report.kept_by_kind.values())
    seen = report.input
    for rule in report.rules:
        assert rule.seen == seen == rule.kept + rule.dropped
        assert sum(rule.why.values()) == rule.dropped
        seen = rule.kept
    assert seen == report.kept
    assert report.preference_pairs == len(result.preference) == sum(report.preference_by_source.values())
    assert report.unpaired_positive + report.unpaired_negative == len(result.unpaired)


@given(judgements, configs)
def test_cleaning_is_idempotent(js, config):
    kept, _ = clean_judgements(js, config)
    again, report = clean_judgements(kept, config)
    assert again == kept and report.dropped == 0


@given(judgements, configs)
def test_caps_and_exclusions_respected(js, config):
    kept, _ = clean_judgements(js, config)
    assert not any(j.user_id in config.excluded_users for j in kept)
    if config.max_per_user_per_day:
        per_day = Counter((j.user_id, j.updated_at.date()) for j in kept)
        assert max(per_day.values(), default=0) <= config.max_per_user_per_day


@given(judgements, configs)
def test_ties_never_paired_both_bad_gives_negatives(js, config):
    result = clean_feedback(js, config)
    kept_votes = [j for j in result.judgements if isinstance(j, Vote)]
    vote_pairs = [p for p in result.preference if p.source == "vote"]
    decisive = [v for v in kept_votes if v.winner in ("a", "b") and v.text_a.strip() != v.text_b.strip()
                and v.text_a.strip() and v.text_b.strip()]
    assert len(vote_pairs) == len(decisive)  # ties and both_bad add no pair
    both_bad_sides = sum(bool(v.text_a.strip()) + bool(v.text_b.strip()) for v in kept_votes if v.winner == "both_bad")
    decisive_sides = sum(bool(v.text_a.strip()) + bool(v.text_b.strip()) for v in kept_votes if v.winner in ("a", "b"))
    vote_examples = [u for u in result.unpaired if u.source == "vote"]
    assert len(vote_examples) == both_bad_sides + decisive_sides  # ties add no unpaired example
    assert all(p.chosen.strip() != p.rejected.strip() for p in result.preference)


@given(judgements, configs)
def test_settled_items_hold_a_majority_verdict(js, config):
    contested = drop_invalid(js)[0]
    contested = drop_excluded_users(contested, config.excluded_users)[0]
    contested = cap_per_user_per_day(dedupe_latest(contested)[0], config.max_per_user_per_day)[0]
    kept, _ = settle_conflicts(contested, config.conflicts)
    verdicts = defaultdict(Counter)
    for j in contested:
        if not isinstance(j, Correction):
            verdicts[j.item_key][j.verdict] += 1
    # Each non-correction item keeps at most one judgement, holding a strict majority (all, for "drop").
    item_keys = [j.item_key for j in kept if not isinstance(j, Correction)]
    assert len(item_keys) == len(set(item_keys))
    for j in kept:
        if isinstance(j, Correction):
            continue
        votes = verdicts[j.item_key]
        assert votes[j.verdict] * 2 > votes.total()
        if config.conflicts == "drop":
            assert len(votes) == 1
    assert [j for j in contested if isinstance(j, Correction)] == [j for j in kept if isinstance(j, Correction)]
    rate = clean_judgements(js, config)[1].agreement["rate"]
    assert rate is None or 0.0 <= rate <= 1.0


T = T0 + timedelta(hours=1)


def _vote(user: int, winner: str, minutes: int = 0) -> Vote:
    moment = T + timedelta(minutes=minutes)
    return Vote(user, PROMPT, moment, moment, "cmp-1", winner, "answer A", "answer B")


def test_majority_keeps_the_majority_verdict_once():
    result = clean_feedback([_vote(1, "a"), _vote(2, "a", 1), _vote(3, "b", 2)], CleaningConfig(conflicts="majority"))
    assert [(p.chosen, p.rejected) for p in result.preference] == [("answer A", "answer B")]
    assert result.report.rules[-1].why == {"merged_agreeing": 1, "outvoted": 1}
    assert result.report.agreement["rate"] == 1 / 3


def test_even_split_is_dropped_and_drop_policy_drops_any_conflict():
    split = clean_feedback([_vote(1, "a"), _vote(2, "b")], CleaningConfig(conflicts="majority"))
    assert split.preference == [] and split.report.rules[-1].why == {"conflict_no_majority": 2}
    strict = clean_feedback([_vote(1, "a"), _vote(2, "a"), _vote(3, "b")], CleaningConfig(conflicts="drop"))
    assert strict.preference == [] and strict.report.rules[-1].why == {"conflict": 3}


def test_latest_judgement_of_a_user_wins():
    result = clean_feedback([_vote(1, "a", 5), _vote(1, "b", 0)], CleaningConfig())
    assert [p.chosen for p in result.preference] == ["answer A"]
    assert result.report.rules[2].why == {"superseded": 1}


def test_daily_cap_keeps_the_earliest():
    js = [
        Thumb(1, PROMPT, T, T + timedelta(minutes=m), f"c{m}", 0, "up", f"text {m}") for m in (30, 10, 20)
    ]
    kept, report = clean_judgements(js, CleaningConfig(max_per_user_per_day=2))
    assert sorted(j.completion_id for j in kept) == ["c10", "c20"]
    assert report.rules[3].why == {"over_daily_cap": 1}


def test_config_from_environment(monkeypatch):
    monkeypatch.setenv("FEEDBACK_CLEAN_EXCLUDED_USERS", "3, 7")
    monkeypatch.setenv("FEEDBACK_CLEAN_MAX_PER_USER_PER_DAY", "9")
    monkeypatch.setenv("FEEDBACK_CLEAN_CONFLICTS", "drop")
    config = CleaningConfig()
    assert config.excluded_users == frozenset({3, 7})
    assert config.max_per_user_per_day == 9 and config.conflicts == "drop"


@settings(max_examples=50)
@given(st.lists(st.tuples(users, st.sampled_from(["hi", "hello", " "])), max_size=20), st.frozensets(users))
def test_prompts_are_distinct_and_counted(logged, excluded):
    prompts = [
        LoggedPrompt(user, normalize_messages([{"role": "user", "content": text}]), T0) for user, text in logged
    ]
    report = CleaningReport()
    out = clean_prompts(prompts, CleaningConfig(excluded_users=excluded), report)
    assert len(out) == len({repr(p) for p in out})
    assert report.prompts["input"] == report.prompts["kept"] + sum(report.prompts["dropped"].values())
